"""Compute cost of any model of the zoo: parameters, MACs, synaptic operations, energy, CPU latency.

What is counted, and how:

* **MACs** (multiply-accumulates) of every ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d`` and
  ``Linear`` layer, counted by forward hooks from the shapes of each call's actual input and
  output. A layer run on a ``(T*B, C, H, W)`` batch, or called once per time step, is therefore
  counted for all ``T`` steps. Bias additions, normalisation, activations, pooling and neuron
  updates are not counted, as in the literature cited below. Matrix products that run outside
  such layers (``torch.bmm`` in attention, ``F.conv2d`` in a custom block, ``torch.cdist``) are
  found by the op census below and reported as one
  extra dense row, ``(functional ops)``, so that no multiply is silently left out.
  The whole pass runs under :class:`~seg_core.op_census.OpCensus`, which gives every ATen op a
  rule: MACs from the shapes (convolutions, matrix products, ``torch.cdist``, fused attention),
  "uncounted" (listed in the report with its size), or "free" (views). An op with no rule is
  reported in ``unclassified_ops``, never counted as 0.
* **Input spike rate** of each layer call: the fraction of ones in the layer's input when every
  value of that input is 0 or 1 (spikes). Each call is classified on its own. An all-zero input
  is ambiguous (a silent spike map, or an analog map that happens to be zero, such as a ReLU
  over one hidden unit), so it follows the layer's other calls: silent steps of a spiking layer
  cost no SOPs, while a layer that ever receives analog input pays dense MACs for them too.
* **Synaptic operations**: for a call whose input is spikes, ``SOPs = MACs x rate``: a binary
  input only triggers an accumulate of the weight for each spike, never a multiply. Summed over
  the ``T`` calls this is ``MACs per step x mean rate x T`` (Yao et al. 2023; Zhou et al. 2023).
* **Energy**: ``dense MACs x E_MAC_PJ + SOPs x E_AC_PJ``. Horowitz (2014) gives, for 32-bit
  floating point in 45 nm CMOS, 3.7 pJ per multiply and 0.9 pJ per add, hence 4.6 pJ per MAC
  and 0.9 pJ per accumulate. Memory access is left out (it usually dominates on real hardware),
  so the figures compare operation counts in a common unit; they do not predict a chip's power.

Conventions:

* **Direct encoding.** A spiking model receives the analog image, repeated over time steps; its
  first layer therefore performs real multiplies and is counted as dense MACs (its input is not
  binary), while every later layer fed by spiking neurons is counted as SOPs. This is the
  convention of the spiking-segmentation and attention-SNN papers the zoo follows.
* **Data-dependent rates.** Spike rates depend on the input, so the default sample is a
  synthetic head-like phantom (skull, grey and white matter, ventricles, an enhancing tumour
  with oedema), normalised to [0, 1] as the app normalises real scans: random noise would
  drive neurons very differently from an MRI slice. Pass ``sample=`` a real preprocessed slice
  for figures on real data.
* **Whole input.** Counts are for the whole input batch; the default batch is 1, so they are
  per image.
* A layer input that is not exactly binary (graded spikes, sums of spikes, membrane potentials)
  is counted as dense MACs: the conservative choice.

References:
    M. Horowitz. Computing's energy problem (and what we can do about it). IEEE ISSCC 2014,
    pp. 10-14.
    M. Yao et al. Attention Spiking Neural Networks. IEEE TPAMI 45(8), 2023 (energy per SOP/MAC).
    Z. Zhou et al. Spikformer: When Spiking Neural Network Meets Transformer. ICLR 2023.

Example:
    >>> from seg_core.energy import profile, format_table
    >>> report = profile("unet", size=64, repeats=1, threads=1)
    >>> report.macs > 0 and report.sops == 0
    True
    >>> print(format_table(report))          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from seg_core.op_census import OpCensus

__all__ = [
    "E_MAC_PJ",
    "E_AC_PJ",
    "LayerCost",
    "CostReport",
    "profile_model",
    "profile",
    "count_layer_macs",
    "measure_latency",
    "phantom_sample",
    "format_table",
]

logger = logging.getLogger(__name__)

#: Energy of one 32-bit floating-point multiply-accumulate in 45 nm CMOS, picojoules
#: (3.7 pJ multiply + 0.9 pJ add; Horowitz, ISSCC 2014). Change it to model other hardware.
E_MAC_PJ = 4.6
#: Energy of one 32-bit floating-point accumulate (add) in 45 nm CMOS, picojoules (Horowitz 2014).
E_AC_PJ = 0.9

#: Layers whose multiply-accumulates are counted. Lazy variants become these once materialised.
COUNTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)

FUNCTIONAL_ROW = "(functional ops)"

# Intensities of each tissue in each MRI contrast, relative (0..1); rough textbook appearance,
# enough to give the network the edges and flat regions of a real slice.
_TISSUES = ("scalp", "skull", "grey", "white", "csf", "oedema", "enhancing", "necrosis")
_CONTRASTS = {
    "t1": (0.90, 0.05, 0.60, 0.80, 0.20, 0.45, 0.55, 0.30),
    "t1c": (0.90, 0.05, 0.60, 0.80, 0.20, 0.45, 1.00, 0.30),
    "t2": (0.50, 0.05, 0.55, 0.40, 1.00, 0.85, 0.70, 0.95),
    "flair": (0.60, 0.05, 0.65, 0.50, 0.10, 0.95, 0.80, 0.50),
}


@dataclass
class LayerCost:
    """Cost of one counted layer, summed over all its calls in one forward pass.

    Attributes:
        name: qualified module name in the model (``"encoders.0.0"``), or ``"(functional ops)"``.
        type: module class name (``"Conv2d"``).
        calls: times the layer ran in the pass (``T`` for a layer called once per time step).
        macs: multiply-accumulates over all calls, whatever the input.
        dense_macs: the part of ``macs`` whose input was analog, executed as real multiplies.
        input_spike_rate: mean fraction of ones in the binary inputs, weighted by MACs;
            ``None`` when the layer never received spikes.
        sops: synaptic operations (accumulates) over all calls: ``sum(MACs_call x rate_call)``.
        energy_pj: ``dense_macs x e_mac_pj + sops x e_ac_pj``, picojoules.
        spiking: every call's input was spikes (a spiking layer); False for dense layers.
    """

    name: str
    type: str
    calls: int
    macs: int
    dense_macs: int
    input_spike_rate: float | None
    sops: float
    energy_pj: float
    spiking: bool


@dataclass
class CostReport:
    """Cost of one forward pass of a model on one input; see the module docstring for conventions.

    Attributes:
        model: a display name (registry name, weights id or class name).
        input_shape: shape of the profiled input, ``(B, C, H, W)`` for the 2D zoo.
        spiking: whether spike detection was on (False: every layer counted as dense MACs).
        time_steps: the model's time steps when known (registry spec or config), else ``None``.
        params: number of parameters.
        macs: multiply-accumulates of all counted layers and functional ops, over all time steps.
        dense_macs: the part of ``macs`` executed as real multiplies (analog inputs).
        sops: synaptic operations (accumulates triggered by spikes).
        energy_pj: estimated energy of the operations, picojoules.
        latency_runs_ms: wall time of each timed forward pass, milliseconds (empty if not timed).
        threads: CPU threads used for the timing.
        e_mac_pj: energy per MAC used, picojoules.
        e_ac_pj: energy per accumulate (SOP) used, picojoules.
        sample: what the input was (``"phantom"`` or ``"user sample"``).
        config: which configuration was profiled (``"lite"``, ``"paper"``, ``"weights"``, ``""``).
        layers: per-layer rows in the order the layers first ran (the functional-ops row last,
            when present); ``layers[0]`` is the layer that received the image.
        uncounted_ops: the ops left out of the energy by convention (element-wise, normalisation,
            pooling, interpolation, copies), each ``{op, category, calls, macs, output_elements}``,
            largest first: what the estimate does not include, and how large it is.
        unclassified_ops: ops that ran with no cost rule in :mod:`seg_core.op_census`; their cost
            is unknown, not zero (the energy tests fail on any).
    """

    model: str
    input_shape: tuple[int, ...]
    spiking: bool
    time_steps: int | None
    params: int
    macs: int
    dense_macs: int
    sops: float
    energy_pj: float
    latency_runs_ms: list[float]
    threads: int
    e_mac_pj: float
    e_ac_pj: float
    sample: str = "phantom"
    config: str = ""
    layers: list[LayerCost] = field(default_factory=list)
    uncounted_ops: list[dict[str, Any]] = field(default_factory=list)
    unclassified_ops: list[str] = field(default_factory=list)

    @property
    def energy_uj(self) -> float:
        """Estimated energy, microjoules."""
        return self.energy_pj * 1e-6

    @property
    def ann_energy_uj(self) -> float:
        """Energy if every MAC were a dense multiply (the model run as an ANN), microjoules."""
        return self.macs * self.e_mac_pj * 1e-6

    @property
    def latency_ms(self) -> float | None:
        """Median wall time of one forward pass, milliseconds; ``None`` when not timed."""
        return statistics.median(self.latency_runs_ms) if self.latency_runs_ms else None

    @property
    def latency_min_ms(self) -> float | None:
        return min(self.latency_runs_ms) if self.latency_runs_ms else None

    @property
    def latency_max_ms(self) -> float | None:
        return max(self.latency_runs_ms) if self.latency_runs_ms else None

    @property
    def spiking_layers(self) -> list[LayerCost]:
        return [layer for layer in self.layers if layer.spiking]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the fields, the derived totals, and one dict per layer (no NaN)."""
        info = asdict(self)
        info["input_shape"] = list(self.input_shape)
        info.update(
            energy_uj=self.energy_uj,
            ann_energy_uj=self.ann_energy_uj,
            latency_ms=self.latency_ms,
            latency_min_ms=self.latency_min_ms,
            latency_max_ms=self.latency_max_ms,
            spiking_layer_count=len(self.spiking_layers),
        )
        return info


def count_layer_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a counted layer, from the call's real shapes.

    Convolution: every output element is a dot product over ``in_channels / groups x kernel``
    inputs. Transposed convolution: every input element is multiplied into ``out_channels /
    groups x kernel`` outputs. Linear: every output element is a dot product over
    ``in_features``. Leading dimensions (batch, time) are part of ``numel``, so ``(T*B)``
    batches count every step. Bias additions are not counted.

    Args:
        module: one of :data:`COUNTED_LAYERS`.
        inputs: the tensor the layer received.
        output: the tensor it returned.

    Returns:
        The number of MACs (an exact integer).
    """
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    kernel = math.prod(module.kernel_size)
    if module.transposed:
        return inputs.numel() * (module.out_channels // module.groups) * kernel
    return output.numel() * (module.in_channels // module.groups) * kernel


def _spike_ones(inputs: torch.Tensor) -> int | None:
    """Number of ones when every value of ``inputs`` is 0 or 1 (spikes), else ``None``."""
    from torch.utils._python_dispatch import _disable_current_modes

    if inputs.numel() == 0 or inputs.is_complex():
        return None
    # The measurement's own ops are not the model's: keep them out of the op census.
    with _disable_current_modes():
        if not bool(torch.logical_or(inputs == 0, inputs == 1).all()):
            return None
        return int(torch.count_nonzero(inputs))


@dataclass
class _Tally:
    type: str
    first_call: int = -1
    calls: int = 0
    macs: int = 0
    dense_macs: int = 0
    spike_macs: int = 0
    silent_macs: int = 0
    sops: float = 0.0
    pending: list[tuple[torch.Tensor | None, int | None]] = field(default_factory=list)


class _Recorder:
    """Forward hooks counting MACs and input spikes on every counted layer of a model."""

    def __init__(self, model: nn.Module, detect_spikes: bool) -> None:
        self.detect_spikes = detect_spikes
        self.tallies: dict[str, _Tally] = {}
        self.call_count = 0
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in model.named_modules():
            if isinstance(module, COUNTED_LAYERS):
                tally = self.tallies.setdefault(name or type(module).__name__, _Tally(type(module).__name__))
                self.handles.append(module.register_forward_pre_hook(self._before(tally), with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._after(module, tally), with_kwargs=True))

    def _before(self, tally: _Tally):
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs = args[0] if args else kwargs.get("input")
            if not isinstance(inputs, torch.Tensor):
                tally.pending.append((None, None))
                return
            # Spikes are checked before the call, in case a custom subclass edits its input.
            ones = _spike_ones(inputs) if self.detect_spikes else None
            tally.pending.append((inputs, ones))

        return hook

    def _after(self, module: nn.Module, tally: _Tally):
        def hook(module_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            inputs, ones = tally.pending.pop() if tally.pending else (None, None)
            if inputs is None or not isinstance(output, torch.Tensor):
                return
            macs = count_layer_macs(module, inputs, output)
            if tally.first_call < 0:
                tally.first_call = self.call_count
            self.call_count += 1
            tally.calls += 1
            tally.macs += macs
            if ones is None:
                tally.dense_macs += macs
            elif ones == 0:
                tally.silent_macs += macs  # classified with the layer's other calls, at the end
            else:
                tally.spike_macs += macs
                tally.sops += macs * ones / inputs.numel()

        return hook

    def reset(self) -> None:
        for tally in self.tallies.values():
            tally.calls = tally.macs = tally.dense_macs = tally.spike_macs = tally.silent_macs = 0
            tally.first_call = -1
            tally.sops = 0.0
            tally.pending.clear()
        self.call_count = 0

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _reset_neurons(model: nn.Module) -> None:
    # snnTorch neurons created with init_hidden keep the last membrane on the module; a stale
    # membrane from earlier use would change the measured rates. Reset only this model's
    # neurons (snntorch.utils.reset would reset every neuron in the process).
    try:
        from snntorch import SpikingNeuron
    except ImportError:  # no snnTorch: no snnTorch neurons to reset
        return
    for module in model.modules():
        if isinstance(module, SpikingNeuron) and hasattr(module, "reset_mem"):
            # A neuron that has not run yet may have no state to reset.
            with contextlib.suppress(AttributeError, RuntimeError):
                module.reset_mem()


def _phantom_slice(height: int, width: int, modality: str, rng: np.random.Generator, z: float = 0.0) -> np.ndarray:
    """One axial slice of the head phantom in scanner-like units, ``(H, W)`` float32, 0 outside."""
    from scipy.ndimage import gaussian_filter

    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    # Slices away from the centre of the head are smaller, as in an ellipsoid.
    scale = math.sqrt(max(1.0 - (z / 1.3) ** 2, 0.05))
    head = (y / (0.85 * scale)) ** 2 + (x / (0.70 * scale)) ** 2
    # Wobbly white-matter border so the slice has curved edges at several scales.
    wobble = 0.06 * np.sin(6 * np.arctan2(y, x)) + 0.04 * np.sin(11 * np.arctan2(y, x) + 1.0)
    labels = np.full((height, width), -1, dtype=np.int64)
    labels[head < 1.0] = _TISSUES.index("scalp")
    labels[head < 0.90] = _TISSUES.index("skull")
    labels[head < 0.80] = _TISSUES.index("grey")
    labels[head < 0.55 + wobble] = _TISSUES.index("white")
    for side in (-1, 1):
        ventricle = ((y + 0.05) / (0.22 * scale)) ** 2 + ((x - side * 0.11) / (0.06 * scale)) ** 2 < 1
        labels[ventricle] = _TISSUES.index("csf")
    tumour = ((y - 0.30) ** 2 + (x + 0.28) ** 2 + z**2) / scale
    labels[(tumour < 0.09) & (head < 0.80)] = _TISSUES.index("oedema")
    labels[(tumour < 0.035) & (head < 0.80)] = _TISSUES.index("enhancing")
    labels[(tumour < 0.015) & (head < 0.80)] = _TISSUES.index("necrosis")
    contrast = np.asarray(_CONTRASTS.get(modality, _CONTRASTS["t1c"]), dtype=np.float32)
    image = np.where(labels >= 0, contrast[np.clip(labels, 0, None)], 0.0).astype(np.float32)
    # Smooth tissue texture (bias field and anatomy) plus acquisition noise, inside the head only.
    texture = gaussian_filter(rng.standard_normal((height, width)), sigma=max(height, width) / 40)
    texture /= texture.std() + 1e-8
    image = image * (1 + 0.08 * texture) + 0.03 * rng.standard_normal((height, width))
    image = gaussian_filter(image, sigma=max(height, width) / 512)  # partial-volume blur
    return np.where(labels >= 0, np.clip(image, 0.01, None) * 1000.0, 0.0).astype(np.float32)


def phantom_sample(
    input_shape: Sequence[int],
    modalities: Sequence[str] | None = None,
    normalization: dict[str, Any] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """A synthetic head-like input, normalised as the app normalises scans.

    Args:
        input_shape: ``(B, C, H, W)`` for slices or ``(B, C, D, H, W)`` for volumes.
        modalities: contrast of each channel (``"t1"``, ``"t1c"``, ``"t2"``, ``"flair"``);
            default ``t1c`` for every channel.
        normalization: an :class:`~seg_core.preprocess.IntensityNormalizer` config; default
            percentile normalisation to [0, 1] (the training default).
        seed: seed of the texture and noise; batch item ``b`` uses ``seed + b``.

    Returns:
        Float32 tensor of ``input_shape``.

    Raises:
        ValueError: for other ranks (pass a real ``sample=`` to :func:`profile_model`).
    """
    from seg_core.preprocess import IntensityNormalizer

    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (4, 5):
        raise ValueError(f"the phantom covers (B, C, H, W) and (B, C, D, H, W) inputs, got {shape}; pass sample= instead")
    channels = shape[1]
    modalities = list(modalities) if modalities else ["t1c"] * channels
    if len(modalities) != channels:
        raise ValueError(f"{channels} channels but {len(modalities)} modalities: {modalities}")
    normalize = IntensityNormalizer.from_dict(normalization)
    depths = np.linspace(-0.6, 0.6, shape[2]) if len(shape) == 5 else np.zeros(1)
    height, width = shape[-2:]
    items = []
    for b in range(shape[0]):
        rng = np.random.default_rng(seed + b)
        slices = [normalize(np.stack([_phantom_slice(height, width, m, rng, z=float(z)) for m in modalities])) for z in depths]
        items.append(np.stack(slices, axis=1) if len(shape) == 5 else slices[0])
    return torch.from_numpy(np.stack(items)).float()


def measure_latency(
    model: nn.Module, sample: torch.Tensor, repeats: int = 5, warmup: int = 1, threads: int | None = None
) -> list[float]:
    """Wall time of ``repeats`` forward passes after ``warmup`` untimed ones, milliseconds.

    Runs under :func:`torch.inference_mode` in eval mode. ``torch.set_num_threads`` is global to
    the process, so the thread count is restored afterwards; other work in the process shares
    the setting while this runs.

    Args:
        model: any module taking ``sample``.
        sample: the input, e.g. ``(1, C, 256, 256)``.
        repeats: timed runs (0: none).
        warmup: untimed runs first (allocation, kernel choice).
        threads: CPU threads; ``None`` keeps the current setting.

    Returns:
        One time per run, milliseconds; take the median to compare models.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(sample)
            for _ in range(repeats):
                start = time.perf_counter()
                model(sample)
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return times


def _forward_pass(model: nn.Module, sample: torch.Tensor) -> OpCensus:
    """Run one recorded pass under an :class:`~seg_core.op_census.OpCensus` of every op it dispatches.

    ``no_grad`` rather than ``inference_mode``: only then do composite ops (``conv2d``, ``cdist``)
    reach the census decomposed into the ops its rules know.
    """
    _reset_neurons(model)
    with torch.no_grad(), OpCensus() as census:
        model(sample)
    if census.unclassified:
        logger.warning("ops without a cost rule (their cost is unknown, not 0): %s", ", ".join(census.unclassified))
    return census


def profile_model(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    spiking: bool | None = None,
    sample: torch.Tensor | None = None,
    repeats: int = 5,
    warmup: int = 1,
    threads: int | None = None,
    e_mac_pj: float | None = None,
    e_ac_pj: float | None = None,
    name: str | None = None,
    time_steps: int | None = None,
    modalities: Sequence[str] | None = None,
    normalization: dict[str, Any] | None = None,
) -> CostReport:
    """Parameters, MACs, synaptic operations, energy and CPU latency of ``model`` on one input.

    The model is profiled on a deep copy in eval mode on the CPU, so hooks never touch the
    caller's model (which may be serving other threads) and its neuron state is left alone.

    Args:
        model: any ``nn.Module`` taking one tensor.
        input_shape: ``(B, C, H, W)``; default ``(1, 1, 256, 256)``, or the shape of ``sample``.
        spiking: ``False`` counts every layer as dense MACs (a conventional network); ``True``
            or ``None`` (auto) count each layer call whose input is binary as SOPs. With
            ``True`` a warning is logged when no layer received spikes.
        sample: a real, preprocessed input; default the phantom of :func:`phantom_sample`.
        repeats: timed forward passes for the latency (0: not timed).
        warmup: untimed passes before timing.
        threads: CPU threads for the timing; ``None`` keeps the current setting.
        e_mac_pj: energy per dense MAC, picojoules; default :data:`E_MAC_PJ` (read at call time).
        e_ac_pj: energy per synaptic operation, picojoules; default :data:`E_AC_PJ`.
        name: display name for the report (default the class name).
        time_steps: recorded in the report for reference.
        modalities: channel contrasts for the phantom.
        normalization: intensity normalisation config for the phantom.

    Returns:
        A :class:`CostReport` for the whole input batch.

    Example:
        >>> import torch.nn as nn
        >>> net = nn.Conv2d(1, 4, 3, padding=1)
        >>> profile_model(net, (1, 1, 8, 8), repeats=0).macs   # 8 * 8 * 4 * 9
        2304
    """
    e_mac_pj = E_MAC_PJ if e_mac_pj is None else float(e_mac_pj)
    e_ac_pj = E_AC_PJ if e_ac_pj is None else float(e_ac_pj)
    if sample is None:
        sample = phantom_sample(input_shape or (1, 1, 256, 256), modalities, normalization)
        sample_kind = "phantom"
    else:
        if input_shape is not None and tuple(input_shape) != tuple(sample.shape):
            raise ValueError(f"input_shape {tuple(input_shape)} differs from sample shape {tuple(sample.shape)}")
        sample_kind = "user sample"
        if spiking is not False and _spike_ones(sample) is not None:
            logger.warning("the sample is binary: the first layer will be counted as spiking, not as a dense encoder")
    params = sum(p.numel() for p in model.parameters())
    try:
        work = copy.deepcopy(model)
    except Exception as error:  # noqa: BLE001 - e.g. a module holding a lock or a file
        raise TypeError(f"cannot profile {type(model).__name__}: it cannot be deep-copied ({error})") from error
    work = work.to("cpu").eval()
    first = next(work.parameters(), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    sample = sample.detach().to("cpu", dtype)

    recorder = _Recorder(work, detect_spikes=spiking is not False)
    try:
        census = _forward_pass(work, sample)
    finally:
        recorder.remove()

    layers = []
    # Rows in the order the layers first ran, so the first row is the layer that saw the image.
    for layer_name, tally in sorted(recorder.tallies.items(), key=lambda item: item[1].first_call):
        if tally.calls == 0:
            continue
        # Silent (all-zero) calls join the dense part of a layer that ever saw analog input, and
        # the spiking part (zero SOPs) otherwise.
        if tally.dense_macs:
            tally.dense_macs += tally.silent_macs
        else:
            tally.spike_macs += tally.silent_macs
        rate = tally.sops / tally.spike_macs if tally.spike_macs else None
        layers.append(
            LayerCost(
                name=layer_name,
                type=tally.type,
                calls=tally.calls,
                macs=tally.macs,
                dense_macs=tally.dense_macs,
                input_spike_rate=rate,
                sops=tally.sops,
                energy_pj=tally.dense_macs * e_mac_pj + tally.sops * e_ac_pj,
                spiking=tally.dense_macs == 0 and tally.spike_macs > 0,
            )
        )
    hooked = sum(layer.macs for layer in layers)
    functional = census.macs - hooked
    if functional > 0:
        layers.append(
            LayerCost(FUNCTIONAL_ROW, "matmul/conv/cdist", 1, functional, functional, None, 0.0, functional * e_mac_pj, False)
        )
    elif functional < 0:
        logger.warning("hooked layers count %d MACs more than the op census; check custom layers", -functional)
    if spiking and not any(layer.sops or layer.input_spike_rate is not None for layer in layers):
        logger.warning("%s is declared spiking but no layer received binary (spike) inputs", name or type(model).__name__)

    latency = measure_latency(work, sample, repeats=repeats, warmup=warmup, threads=threads) if repeats > 0 else []
    return CostReport(
        model=name or type(model).__name__,
        input_shape=tuple(sample.shape),
        spiking=spiking is not False and any(layer.input_spike_rate is not None for layer in layers),
        time_steps=time_steps,
        params=params,
        macs=sum(layer.macs for layer in layers),
        dense_macs=sum(layer.dense_macs for layer in layers),
        sops=sum(layer.sops for layer in layers),
        energy_pj=sum(layer.energy_pj for layer in layers),
        latency_runs_ms=latency,
        threads=threads or torch.get_num_threads(),
        e_mac_pj=e_mac_pj,
        e_ac_pj=e_ac_pj,
        sample=sample_kind,
        layers=layers,
        uncounted_ops=[asdict(record) for record in census.uncounted()],
        unclassified_ops=census.unclassified,
    )


def _first_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, COUNTED_LAYERS):
            return module.in_features if isinstance(module, nn.Linear) else module.in_channels
    return 1


def profile(
    model_or_id: str | Path | nn.Module,
    size: int | tuple[int, int] = 256,
    *,
    config: str | None = None,
    batch: int = 1,
    sample: torch.Tensor | None = None,
    repeats: int = 5,
    warmup: int = 1,
    threads: int | None = None,
    e_mac_pj: float | None = None,
    e_ac_pj: float | None = None,
    weights_dir: str | Path | None = None,
) -> CostReport:
    """Profile a registry architecture, trained weights, or a module, on a ``size`` x ``size`` input.

    Args:
        model_or_id: a registry name (``"unet"``), built in its ``lite_config`` (or
            ``paper_config`` with ``config="paper"``) with its default modalities as channels; a
            weights id (``"unet.figshare"``) or folder, loaded with its trained weights, its
            modalities and normalisation; or an ``nn.Module`` (channels from its first layer).
        size: side of the square input in pixels, or ``(H, W)``.
        config: ``"lite"`` (default) or ``"paper"``; only for registry names.
        batch: images per forward pass.
        sample: a real preprocessed input ``(B, C, H, W)`` instead of the phantom.
        repeats, warmup, threads, e_mac_pj, e_ac_pj: as in :func:`profile_model`.
        weights_dir: where weights ids are looked up (default ``weights/``).

    Returns:
        The :class:`CostReport`; spiking detection follows ``ModelSpec.spiking`` for registry
        models and weights, and is automatic for bare modules.

    Raises:
        KeyError: unknown name, listing the architectures and weights.
        ValueError: ``config`` not ``lite``/``paper``, or given for weights.
    """
    from seg_core.models import create_model, get_spec, list_models
    from seg_core.weights import WEIGHTS_DIR, list_weights, load_model

    height, width = (size, size) if isinstance(size, int) else size
    options = {
        "sample": sample,
        "repeats": repeats,
        "warmup": warmup,
        "threads": threads,
        "e_mac_pj": e_mac_pj,
        "e_ac_pj": e_ac_pj,
    }
    if config not in (None, "lite", "paper"):
        raise ValueError(f"config must be 'lite' or 'paper', got {config!r}")
    if isinstance(model_or_id, nn.Module):
        if config is not None:
            raise ValueError("config applies to registry names; a module is profiled as built")
        channels = _first_in_channels(model_or_id)
        shape = (batch, channels, height, width) if sample is None else None
        return profile_model(model_or_id, shape, **options)

    text = str(model_or_id)
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    if text in list_models():
        spec = get_spec(text)
        model_config = dict(spec.paper_config if config == "paper" else spec.lite_config)
        modalities = list(spec.default_modalities)
        model = create_model(text, **{"in_channels": len(modalities), **model_config})
        normalization, label, config_label = None, text, config or "lite"
    elif "." in text or Path(text).is_dir():
        if config is not None:
            raise ValueError(
                f"config applies to architecture names; weights {text!r} are profiled in their trained configuration"
            )
        loaded = load_model(text, weights_dir)
        spec = get_spec(loaded.config["architecture"])
        model, model_config = loaded.model, loaded.config["model_config"]
        modalities, normalization = list(loaded.config["modalities"]), loaded.config.get("normalization")
        label, config_label = loaded.model_id, "weights"
    else:
        raise KeyError(
            f"unknown model {text!r}; architectures: {', '.join(list_models())}; "
            f"weights: {', '.join(list_weights(weights_dir)) or 'none'}"
        )
    shape = (batch, len(modalities), height, width) if sample is None else None
    report = profile_model(
        model,
        shape,
        spiking=spec.spiking,
        name=label,
        time_steps=int(model_config.get("time_steps", spec.time_steps)) if spec.spiking else None,
        modalities=modalities,
        normalization=normalization,
        **options,
    )
    report.config = config_label
    return report


def _si(value: float) -> str:
    """``1.23 G`` style number for tables."""
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f} {suffix}"
    return f"{value:.0f}"


def format_table(report: CostReport, top: int = 15) -> str:
    """The ``top`` layers by energy and the totals, as plain text for a terminal."""
    header = f"{report.model}" + (f" ({report.config})" if report.config else "")
    kind = f"spiking, T={report.time_steps}" if report.time_steps else ("spiking" if report.spiking else "dense (ANN)")
    lines = [f"{header}: input {tuple(report.input_shape)} [{report.sample}], {kind}"]
    total = report.energy_pj or 1.0
    rows = sorted(report.layers, key=lambda layer: layer.energy_pj, reverse=True)[: max(top, 0)]
    lines.append(f"{'layer':<34}{'type':<17}{'calls':>6}{'MACs':>11}{'rate':>7}{'SOPs':>11}{'energy uJ':>11}{'share':>7}")
    for layer in rows:
        rate = f"{layer.input_spike_rate:.3g}" if layer.input_spike_rate is not None else "-"
        sops = _si(layer.sops) if layer.input_spike_rate is not None else "-"
        lines.append(
            f"{layer.name[-33:]:<34}{layer.type[:16]:<17}{layer.calls:>6}{_si(layer.macs):>11}{rate:>7}{sops:>11}"
            f"{layer.energy_pj * 1e-6:>11.3f}{100 * layer.energy_pj / total:>6.1f}%"
        )
    if len(report.layers) > len(rows):
        lines.append(f"({len(rows)} of {len(report.layers)} layers shown, by energy)")
    lines.append(
        f"params {_si(report.params)} | MACs {_si(report.macs)} (dense {_si(report.dense_macs)}) | "
        f"SOPs {_si(report.sops)} | energy {report.energy_uj:.2f} uJ (as ANN {report.ann_energy_uj:.2f} uJ)"
    )
    if report.latency_runs_ms:
        lines.append(
            f"CPU latency {report.latency_ms:.1f} ms median of {len(report.latency_runs_ms)} "
            f"(min {report.latency_min_ms:.1f}, max {report.latency_max_ms:.1f}) on {report.threads} thread(s)"
        )
    if report.uncounted_ops:
        shown = ", ".join(
            f"{op['op'].removeprefix('aten.')} ({_si(op['output_elements'])} values)" for op in report.uncounted_ops[:5]
        )
        lines.append(f"left out by convention (element-wise, normalisation, pooling, copies): {shown}, ...")
    if report.unclassified_ops:
        lines.append(f"WARNING: ops with no cost rule, their cost unknown (not 0): {', '.join(report.unclassified_ops)}")
    if report.spiking and report.config in ("lite", "paper"):
        lines.append("note: spike rates of an untrained (randomly initialised) network; profile a weights id for trained rates")
    lines.append(
        f"energy model: {report.e_mac_pj} pJ/MAC, {report.e_ac_pj} pJ/SOP (45 nm CMOS, Horowitz ISSCC 2014); "
        "first layer dense (direct encoding); memory access not included"
    )
    return "\n".join(lines)
