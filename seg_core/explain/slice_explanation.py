"""One slice, everything: region, attributions, their deletion curves and spiking activity."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from seg_core.explain.captum import METHOD_INFO, METHODS, Attribution, attribute
from seg_core.explain.faithfulness import DeletionCurve, deletion_curve, random_deletion_curve
from seg_core.explain.inputs import region_from_logits, slice_input
from seg_core.explain.layers import LayerInfo, gradcam_layers
from seg_core.explain.spike_words import SpikingSummary, describe_spiking
from seg_core.explain.spikes import SpikingExplanation, explain_spiking, is_spiking

if TYPE_CHECKING:
    from seg_core.inference import Segmenter
    from seg_core.scans import Scan

__all__ = ["SliceExplanation", "explain_slice"]


@dataclass
class SliceExplanation:
    """Everything :func:`explain_slice` computed for one slice, at the model's input resolution.

    Attributes:
        model_id: the weights explained.
        index: slice index in the scan.
        image: the model's input ``(C, h, w)``, normalised.
        probability: the model's tumor probability on it ``(h, w)`` (no test-time flipping).
        region: the explained region ``(h, w)`` bool; ``region_source`` says where it came from.
        layers: the layers Grad-CAM can use.
        threshold: the probability threshold used for the region and the Dice.
        attributions: method -> :class:`~seg_core.explain.captum.Attribution`.
        curves: method -> :class:`~seg_core.explain.faithfulness.DeletionCurve`, plus ``"random"``.
        spiking: the spiking activity, for spiking models.
    """

    model_id: str
    index: int
    image: np.ndarray
    probability: np.ndarray
    region: np.ndarray
    region_source: str
    layers: list[LayerInfo]
    threshold: float
    attributions: dict[str, Attribution] = field(default_factory=dict)
    curves: dict[str, DeletionCurve] = field(default_factory=dict)
    spiking: SpikingExplanation | None = None

    def spiking_summary(self) -> SpikingSummary | None:
        """The spiking activity in words (busiest block, tumor vs background, time steps); None if not spiking."""
        return None if self.spiking is None else describe_spiking(self.spiking, self.region)

    def faithfulness_table(self) -> list[dict[str, Any]]:
        """One row per curve: method, area under the Dice and probability curves (lower is better), and
        the completeness error where the method has one (Integrated Gradients; None otherwise)."""
        rows = []
        for method, curve in self.curves.items():
            attribution = self.attributions.get(method)
            rows.append(
                {
                    "method": METHOD_INFO[method]["title"] if method in METHOD_INFO else "Random order (reference)",
                    "key": method,
                    "auc_dice": round(curve.auc_dice, 4),
                    "auc_probability": round(curve.auc_probability, 4),
                    "seconds": round(attribution.seconds, 2) if attribution is not None else None,
                    "completeness_error": attribution.convergence_delta if attribution is not None else None,
                }
            )
        return rows


def explain_slice(
    segmenter: Segmenter,
    scan: Scan,
    index: int,
    methods: tuple[str, ...] | list[str] = METHODS,
    *,
    layer: str | None = None,
    threshold: float | None = None,
    n_steps: int = 16,
    random_repeats: int = 2,
    faithfulness: bool = True,
    spiking: bool = True,
    progress: Callable[[int, int, str], Any] | None = None,
) -> SliceExplanation:
    """Explain one slice: region, the chosen attributions, their deletion curves, and spiking activity.

    Args:
        segmenter: the loaded model (its modalities, normaliser and input size are used).
        scan: the scan; ``index`` picks the slice.
        methods: any of :data:`~seg_core.explain.captum.METHODS`.
        layer: Grad-CAM layer (default: the bottleneck).
        threshold: probability threshold (default: the weights' own).
        n_steps: Integrated Gradients steps (16: about 2 s for a lite U-Net at 128 px on two cores).
        random_repeats: random deletion orders averaged for the reference curve.
        faithfulness: compute the deletion curves (one batched pass per method, plus the random orders).
        spiking: record spiking activity when the model is spiking.
        progress: optional ``callback(done, total, label)``, called before each step and at the end.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown explanation method(s) {unknown}; choose from: {', '.join(METHODS)}")
    model = segmenter.model
    threshold = segmenter.threshold if threshold is None else float(threshold)
    x = slice_input(segmenter, scan, index)
    with torch.inference_mode():
        logits = model(x)[0, 0].float()
    region, source = region_from_logits(logits, threshold)
    # The explanation is filled step by step: attributions, then their curves, then spiking activity.
    explanation = SliceExplanation(
        model_id=segmenter.model_id,
        index=index,
        image=x[0].numpy(),
        probability=torch.sigmoid(logits).numpy(),
        region=region.numpy(),
        region_source=source,
        layers=gradcam_layers(model, x),
        threshold=threshold,
    )
    spiking = spiking and is_spiking(model)
    report = _progress_reporter(progress, total=len(methods) + int(faithfulness) + int(spiking))
    for method in methods:
        report(METHOD_INFO[method]["title"])
        explanation.attributions[method] = attribute(
            model, x, method, region, layer=layer, n_steps=n_steps, layers=explanation.layers
        )
    if faithfulness:
        report("deletion curves")
        for method, result in explanation.attributions.items():
            explanation.curves[method] = deletion_curve(model, x, result.heatmap, region, method=method, threshold=threshold)
        explanation.curves["random"] = random_deletion_curve(model, x, region, repeats=random_repeats, threshold=threshold)
    if spiking:
        report("spiking activity")
        explanation.spiking = explain_spiking(model, x, region)
    report("done")
    return explanation


def _progress_reporter(progress: Callable[[int, int, str], Any] | None, total: int) -> Callable[[str], None]:
    """``report(label)``: tells ``progress`` how many of ``total`` steps are done as the next one starts."""
    steps_done = itertools.count()

    def report(label: str) -> None:
        done = next(steps_done)
        if progress is not None:
            progress(done, total, label)

    return report
