"""How long an explanation will take, said before it starts.

:func:`~seg_core.explain.explain_slice` is a fixed sequence of forward and backward passes whose count
follows from the methods and their settings (Integrated Gradients' path steps, Occlusion's patches,
the deletion curves' points). :func:`estimate_explanation` times the cheap parts once on the model
itself (a private copy, one forward pass alone and in a batch, one forward + backward pass), then
multiplies by those counts. The estimate therefore follows the model, its input size and this
machine's load at the time of asking; it is an estimate, not a promise (a busy CPU can double it).

Example:
    >>> estimate = estimate_explanation(segmenter, ("saliency", "occlusion"))   # doctest: +SKIP
    >>> estimate.words()                                                        # doctest: +SKIP
    'about 6 s'
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from seg_core.explain.captum import METHOD_INFO, METHODS
from seg_core.explain.faithfulness import DELETION_FRACTIONS
from seg_core.explain.spikes import is_spiking

if TYPE_CHECKING:
    from seg_core.inference import Segmenter

__all__ = ["ExplainEstimate", "estimate_explanation", "explanation_passes"]

#: Images per batched pass in the timing probe: enough to see what batching gains (Integrated
#: Gradients runs 8 at a time, Occlusion and the deletion curves 16), small enough that the probe
#: costs a few percent of the explanation.
PROBE_BATCH = 4


@dataclass(frozen=True)
class Passes:
    """Work of one step of an explanation, in passes over one image.

    Attributes:
        forward: forward passes without gradients, run one image at a time.
        batched: forward passes without gradients, run in batches.
        gradient: forward + backward passes (gradients with respect to the input).
        copies: private copies of the model (Captum's hooks never touch the shared model).
    """

    forward: int = 0
    batched: int = 0
    gradient: int = 0
    copies: int = 0


def explanation_passes(
    methods: tuple[str, ...] | list[str] = METHODS,
    *,
    input_size: tuple[int, int] = (128, 128),
    n_steps: int = 16,
    random_repeats: int = 2,
    faithfulness: bool = True,
    spiking: bool = False,
) -> dict[str, Passes]:
    """The passes :func:`~seg_core.explain.explain_slice` runs, step by step (same arguments).

    Returns:
        ``{"setup": ..., <method>: ..., "deletion_curves": ..., "spiking": ...}`` in the order they run.

    Raises:
        ValueError: for an unknown method.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown explanation method(s) {unknown}; choose from: {', '.join(METHODS)}")
    height, width = input_size
    # The prediction on the slice, then gradcam_layers' probe: a copy run on a batch of two.
    steps = {"setup": Passes(forward=3, copies=1)}
    side = max(4, min(height, width) // 8)  # captum.py's default Occlusion window, stride = window
    patches = (math.ceil((height - side) / side) + 1) * (math.ceil((width - side) / side) + 1)
    per_method = {
        "saliency": Passes(gradient=1, copies=1),
        # The path's images with gradients, then the score of the scan and the black image, twice
        # (Captum's convergence delta and ours).
        "integrated_gradients": Passes(gradient=n_steps, forward=4, copies=1),
        "gradcam": Passes(gradient=1, copies=1),
        # One pass per patch position, plus the unoccluded image.
        "occlusion": Passes(batched=patches + 1, copies=1),
    }
    for method in methods:
        steps[method] = per_method[method]
    if faithfulness:
        curves = len(DELETION_FRACTIONS) * (len(methods) + random_repeats)
        steps["deletion_curves"] = Passes(batched=curves)
    if spiking:
        steps["spiking"] = Passes(forward=1)
    return steps


@dataclass(frozen=True)
class ExplainEstimate:
    """The expected duration of an explanation on this machine, now.

    Attributes:
        seconds: the whole explanation.
        steps: seconds per step, ``{"setup": ..., "saliency": ..., "deletion_curves": ..., "spiking": ...}``.
        forward_ms: one forward pass of one image, measured.
        batched_forward_ms: one image's share of a batched forward pass, measured.
        gradient_ms: one forward + backward pass of one image, measured.
        copy_ms: one private copy of the model, measured.
        probe_seconds: what the measurement itself took.
    """

    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    forward_ms: float = 0.0
    batched_forward_ms: float = 0.0
    gradient_ms: float = 0.0
    copy_ms: float = 0.0
    probe_seconds: float = 0.0

    def words(self) -> str:
        """``"about 20 s"``, ``"about 2 min"``, or ``"under a second"``, for a label before the button."""
        if self.seconds < 1:
            return "under a second"
        if self.seconds < 90:
            return f"about {self.seconds:.0f} s"
        return f"about {self.seconds / 60:.0f} min"

    def step_words(self) -> dict[str, str]:
        """Per step, its title and expected seconds, for a progress display."""
        titles = {"setup": "Preparing", "deletion_curves": "Deletion curves", "spiking": "Spiking activity"}
        return {
            key: f"{titles.get(key) or METHOD_INFO[key]['title']}: about {seconds:.1f} s" for key, seconds in self.steps.items()
        }


def _best_of(runs: int, work) -> float:
    # The fastest of a few runs: the least disturbed by other processes on a shared CPU.
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _gradient_pass(model: torch.nn.Module, x: torch.Tensor) -> None:
    image = x.clone().requires_grad_(True)
    # No gradient path to the input (the naive prior) raises: the forward pass is then all it costs.
    with contextlib.suppress(RuntimeError):
        torch.autograd.grad(model(image)[:, 0].sum(), image)


def estimate_explanation(
    segmenter: Segmenter,
    methods: tuple[str, ...] | list[str] = METHODS,
    *,
    n_steps: int = 16,
    random_repeats: int = 2,
    faithfulness: bool = True,
    spiking: bool = True,
    runs: int = 2,
) -> ExplainEstimate:
    """Time the model's cheap passes and estimate :func:`~seg_core.explain.explain_slice` with these settings.

    Args:
        segmenter: the loaded model the explanation will run on.
        methods, n_steps, random_repeats, faithfulness, spiking: as for ``explain_slice``.
        runs: timings of the single-image passes; the fastest counts (one outlier on a shared CPU
            would otherwise set the estimate). The batched pass, four images long already, runs once.

    Returns:
        The :class:`ExplainEstimate`. The probe costs one copy of the model and about
        ``1 + PROBE_BATCH + runs * (1 + 3)`` single-image forward passes (a backward pass counting about
        two), a few percent of the explanation it estimates.
    """
    start = time.perf_counter()
    model = segmenter.model
    input_size = tuple(segmenter.input_size)
    x = torch.rand(1, len(segmenter.modalities), *input_size)
    copy_start = time.perf_counter()
    private = copy.deepcopy(model).eval()  # the probe's own copy: the shared model is never run here
    copy_s = time.perf_counter() - copy_start
    for parameter in private.parameters():
        parameter.requires_grad_(False)
    with torch.inference_mode():
        private(x)  # warm-up: first-call allocations are not part of the steady cost
        forward_s = _best_of(runs, lambda: private(x))
        batch = x.expand(PROBE_BATCH, *x.shape[1:]).contiguous()
        batched_s = _best_of(1, lambda: private(batch)) / PROBE_BATCH
    gradient_s = _best_of(runs, lambda: _gradient_pass(private, x))
    passes = explanation_passes(
        methods,
        input_size=input_size,  # type: ignore[arg-type]
        n_steps=n_steps,
        random_repeats=random_repeats,
        faithfulness=faithfulness,
        spiking=spiking and is_spiking(model),
    )
    # Batched backward passes gain what batched forward passes gain over single images.
    batch_gain = batched_s / forward_s if forward_s > 0 else 1.0
    steps = {}
    for key, work in passes.items():
        gradient = work.gradient * gradient_s * (batch_gain if work.gradient > 1 else 1.0)
        steps[key] = work.forward * forward_s + work.batched * batched_s + gradient + work.copies * copy_s
    return ExplainEstimate(
        seconds=float(sum(steps.values())),
        steps={key: float(value) for key, value in steps.items()},
        forward_ms=forward_s * 1000,
        batched_forward_ms=batched_s * 1000,
        gradient_ms=gradient_s * 1000,
        copy_ms=copy_s * 1000,
        probe_seconds=time.perf_counter() - start,
    )
