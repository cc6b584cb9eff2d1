"""Why did the model mark this region? Captum attributions, a faithfulness check, and spiking activity.

Three kinds of explanation, for any model of the zoo (:func:`seg_core.models.list_models`):

* **Attributions** (Captum): which input pixels the model's tumor score depends on.

  * ``saliency``: the absolute gradient of the score with respect to each pixel (Simonyan et al. 2014).
  * ``integrated_gradients``: gradients averaged along a straight path from a black image to the
    scan, times the pixel's value (Sundararajan et al. 2017); the attributions add up to the
    score's change from the black image (``convergence_delta`` says how closely they do).
  * ``gradcam``: Grad-CAM on a chosen layer (Selvaraju et al. 2017; for segmentation, Vinogradova
    et al. 2020): that layer's feature maps weighted by the score's average gradient, upsampled.
  * ``occlusion``: the drop of the score when a square patch is blacked out (Zeiler & Fergus 2014),
    slid over the image; no gradients, so it works for every model, differentiable or not.

  The **target** is one number per image: the sum of the tumor logits over the region the model
  itself predicts on this input (:class:`RegionLogitSum`), so the maps answer "what makes the
  model call *this* region tumor". When the model predicts no tumor, the region falls back to the
  pixels with the highest logits (the ``region_source`` says which).

* **Faithfulness** (:func:`deletion_curve`): the most salient pixels are deleted first (set to
  black, the background of a normalised scan) and the prediction re-measured (its Dice against the
  original region, and its mean tumor probability there). A faithful map makes the curve fall
  fast; random deletion order is the reference. The area under the curve (lower is better) ranks
  methods on this scan (Petsiuk et al. 2018, RISE; Samek et al. 2017).

* **Spiking activity** (:func:`explain_spiking`), for the spiking ResNets: per block and time step,
  the temporal / channel / spatial attention weights, spike-rate maps (fraction of a block's
  channels firing at each position) and a raster of sampled neurons, from
  :func:`seg_core.spiking.record`. The attention of these blocks multiplies the block's current by
  ``temporal[t] * channel[c] * spatial[h, w]`` (:class:`~seg_core.models.blocks.spiking.SpikingAttention`),
  so the spatial weighting applied at step ``t`` is ``temporal[t] * spatial``: channel and spatial
  attention are shared by all steps by design, only temporal attention and the spikes vary over time.

Gradients flow through spiking models by their surrogate gradients (the logits are the mean over
``T`` steps, so the target covers every step). Attributions run on a private copy of the model, so
the hooks Captum needs never touch a model shared by other threads (the app's cached models).

References:
    K. Simonyan, A. Vedaldi, A. Zisserman. Deep Inside Convolutional Networks. ICLR workshop 2014.
    M. Sundararajan, A. Taly, Q. Yan. Axiomatic Attribution for Deep Networks. ICML 2017.
    R. R. Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks. ICCV 2017.
    K. Vinogradova, A. Dibrov, G. Myers. Towards Interpretable Semantic Segmentation via
    Gradient-weighted Class Activation Mapping. AAAI 2020.
    M. D. Zeiler, R. Fergus. Visualizing and Understanding Convolutional Networks. ECCV 2014.
    V. Petsiuk, A. Das, K. Saenko. RISE: Randomized Input Sampling for Explanation of Black-box
    Models. BMVC 2018.
    W. Samek et al. Evaluating the Visualization of What a Deep Neural Network Has Learned. IEEE
    TNNLS 28(11), 2017.
    N. Kokhlikyan et al. Captum: A unified and generic model interpretability library for PyTorch. 2020.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("unet", width=8).eval()
    >>> x = torch.rand(1, 1, 64, 64)
    >>> region, source = tumor_region(net, x)
    >>> result = attribute(net, x, "saliency", region)
    >>> result.heatmap.shape, float(result.heatmap.max()) <= 1.0
    ((64, 64), True)
    >>> curve = deletion_curve(net, x, result.heatmap, region)
    >>> 0.0 <= curve.auc_probability <= 1.0
    True
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.preprocess import resize_images

if TYPE_CHECKING:
    from seg_core.inference import Segmenter
    from seg_core.scans import Scan

__all__ = [
    "METHODS",
    "METHOD_INFO",
    "DELETION_FRACTIONS",
    "Attribution",
    "DeletionCurve",
    "LayerInfo",
    "RegionLogitSum",
    "SliceExplanation",
    "BlockActivity",
    "SpikeRaster",
    "SpikingExplanation",
    "SPIKING_CAPTIONS",
    "attribute",
    "deletion_curve",
    "random_deletion_curve",
    "explain_slice",
    "explain_spiking",
    "gradcam_layers",
    "default_gradcam_layer",
    "is_spiking",
    "slice_input",
    "tumor_region",
    "resize_map",
]

logger = logging.getLogger(__name__)

METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion")

#: Title and a plain-language caption per method, for the app and reports.
METHOD_INFO: dict[str, dict[str, str]] = {
    "saliency": {
        "title": "Saliency",
        "caption": "How strongly a tiny change of each pixel would change the tumor score (the gradient). "
        "Sharp and fast, but noisy: it shows sensitivity, not how much a pixel contributed.",
    },
    "integrated_gradients": {
        "title": "Integrated Gradients",
        "caption": "How much each pixel contributed to the tumor score, compared with a black image: the "
        "contributions add up to the score's change. Warm pixels push towards 'tumor'.",
    },
    "gradcam": {
        "title": "Grad-CAM",
        "caption": "Which regions one inner layer of the network found relevant for the tumor score; coarse "
        "(that layer's resolution), good for 'where did the network look'.",
    },
    "occlusion": {
        "title": "Occlusion",
        "caption": "How much the tumor score drops when a small square of the scan is blacked out. Slow but "
        "model-agnostic: it asks the model directly instead of reading its gradients.",
    },
}

#: Fractions of the image's pixels deleted at each point of a deletion curve. Tumors cover a few
#: percent of a slice, so the curve is sampled densely at small fractions.
DELETION_FRACTIONS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)

#: Captions for the spiking views, for an educator to teach from.
SPIKING_CAPTIONS: dict[str, str] = {
    "spike_rate": "Spike rate: the share of this block's neurons (one per feature map) that fired at each "
    "position during the chosen time step. Bright = busy. Spiking networks are sparse: most neurons are "
    "silent most of the time, which is what makes them cheap on neuromorphic chips.",
    "spatial": "Spatial attention: how strongly the block lets each position through (0 = suppressed, "
    "1 = passed on). Computed from the block's own activity, so it highlights where the block 'looks'.",
    "temporal": "Temporal attention: how much each time step counts in this block. The scan is shown to the "
    "network once per time step; this weight scales the whole block's output at that step.",
    "channel": "Channel attention: how much each feature map (channel) counts in this block, the same "
    "for every time step and position. A few high bars mean the block relies on a few features.",
    "raster": "Spike raster: each row is one neuron picked at random (half inside the predicted tumor, "
    "half outside), each column a time step; a dot is a spike. Neurons either fire (1) or stay silent (0).",
    "step_attention": "The spatial weighting the block applies at this time step: temporal weight of the "
    "step times the spatial map (models without temporal attention use the same map at every step).",
}


# --------------------------------------------------------------------------------------------------
# Inputs and the target


def slice_input(segmenter: Segmenter, scan: Scan, index: int) -> torch.Tensor:
    """The model's input for slice ``index`` of ``scan``: ``(1, C, h, w)`` float32, normalised and resized.

    Exactly what :class:`~seg_core.inference.Segmenter` feeds the network for that slice (its
    modalities, normaliser and input size), without test-time flipping.
    """
    if not 0 <= index < scan.num_slices:
        raise ValueError(f"slice index {index} is outside the scan's 0..{scan.num_slices - 1}")
    image = torch.from_numpy(segmenter.normalize.slice(segmenter.prepare(scan), index))[None]
    return resize_images(image, segmenter.input_size).float()


class RegionLogitSum(nn.Module):
    """Forward wrapper: the sum of a segmentation model's tumor logits over a fixed region.

    Captum attributes scalar outputs; this turns the per-pixel logits ``(B, 1, H, W)`` into one
    number per image, ``(B,)``: how strongly the model calls the region tumor.

    Args:
        model: a segmentation network returning logits ``(B, 1, H, W)``.
        region: bool or 0/1 map ``(H, W)``, the pixels whose logits are summed.
    """

    def __init__(self, model: nn.Module, region: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("region", region.detach().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)[:, 0]
        return (logits * self.region).sum(dim=(-2, -1))


def tumor_region(
    model: nn.Module, x: torch.Tensor, threshold: float = 0.5, fallback_fraction: float = 0.005
) -> tuple[torch.Tensor, str]:
    """The region an explanation targets: the model's own tumor prediction on ``x``.

    Args:
        model: segmentation network.
        x: one input ``(1, C, H, W)``.
        threshold: probability at or above which a pixel is tumor.
        fallback_fraction: when nothing reaches the threshold, this fraction of the pixels with the
            highest logits (at least 16) is used instead.

    Returns:
        ``(region, source)``: bool ``(H, W)`` and ``"prediction"`` or ``"top_logits"``.
    """
    _check_input(x)
    with torch.inference_mode():
        logits = model(x)[0, 0].float()
    return _region_from_logits(logits, threshold, fallback_fraction)


def _region_from_logits(logits: torch.Tensor, threshold: float, fallback_fraction: float = 0.005) -> tuple[torch.Tensor, str]:
    region = torch.sigmoid(logits) >= threshold
    if region.any():
        return region.clone(), "prediction"
    count = min(logits.numel(), max(16, int(round(fallback_fraction * logits.numel()))))
    flat = torch.zeros(logits.numel(), dtype=torch.bool)
    flat[torch.topk(logits.flatten(), count).indices] = True
    return flat.view_as(logits), "top_logits"


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"explanations take one image shaped (1, C, H, W), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------------
# Layers for Grad-CAM


@dataclass(frozen=True)
class LayerInfo:
    """A layer Grad-CAM can explain.

    Attributes:
        name: module name in ``model.named_modules()``.
        channels: feature maps (for time-first spiking layers: channels per step).
        size: ``(h, w)`` of its feature maps.
        time_steps: ``T`` for a spiking layer whose output is time-first ``(T, B, C, h, w)``, else 1.
        time_first: the output is time-first (a spiking block), even when ``T`` is 1.
    """

    name: str
    channels: int
    size: tuple[int, int]
    time_steps: int = 1
    time_first: bool = False

    @property
    def label(self) -> str:
        steps = f" x {self.time_steps} steps" if self.time_steps > 1 else ""
        return f"{self.name} ({self.channels} maps{steps}, {self.size[0]}x{self.size[1]})"


_SKIPPED_LAYER_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Upsample,
)


def gradcam_layers(model: nn.Module, x: torch.Tensor, max_depth: int = 3) -> list[LayerInfo]:
    """Layers of ``model`` that Grad-CAM can explain on input ``x``, in the order they run.

    A layer qualifies when it is a block (a module with sub-modules, not a single convolution), runs
    once per forward pass and returns feature maps per image, ``(B, C, h, w)``, or time-first
    ``(T, B, C, h, w)`` (the spiking blocks), at least 2x2 with at least 2 channels, and its name is
    at most ``max_depth`` levels deep.
    """
    _check_input(x)
    probe = copy.deepcopy(model).eval()
    batch = 2  # two images, so a (T * B, ...) time-flattened output is not mistaken for (B, ...)
    calls: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    handles = []

    def hook(name: str):
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape)
                if name not in order:
                    order.append(name)

        return record

    for name, module in probe.named_modules():
        # Blocks (modules with children), not every convolution inside them.
        if not name or name.count(".") >= max_depth or not any(True for _ in module.children()):
            continue
        if isinstance(module, _SKIPPED_LAYER_TYPES) or type(module).__name__ == "LIF":
            continue
        handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.inference_mode():
            probe(x.expand(batch, *x.shape[1:]))
    finally:
        for handle in handles:
            handle.remove()

    layers = []
    for name in order:
        shape = shapes[name]
        if calls[name] != 1:
            continue
        if len(shape) == 4 and shape[0] == batch:
            info = LayerInfo(name, shape[1], (shape[2], shape[3]))
        elif len(shape) == 5 and shape[1] == batch:
            info = LayerInfo(name, shape[2], (shape[3], shape[4]), time_steps=shape[0], time_first=True)
        else:
            continue
        if min(info.size) < 2 or info.channels < 2:
            continue
        layers.append(info)
    return layers


def default_gradcam_layer(layers: list[LayerInfo]) -> LayerInfo | None:
    """The bottleneck: the last layer at the coarsest resolution (the classic Grad-CAM choice)."""
    if not layers:
        return None
    coarsest = min(info.size[0] * info.size[1] for info in layers)
    return [info for info in layers if info.size[0] * info.size[1] == coarsest][-1]


class _TimeFolded(nn.Module):
    """Wraps a time-first layer so Grad-CAM sees ``(B, T * C, h, w)``; its output is unchanged.

    The permutations are exact (no arithmetic), so the wrapped model computes the same numbers.
    Grad-CAM then weighs each channel at each time step by its own mean gradient.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.probe = nn.Identity()

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.inner(*args, **kwargs)
        steps = out.shape[0]
        folded = self.probe(out.transpose(0, 1).flatten(1, 2))  # (B, T * C, h, w)
        return folded.unflatten(1, (steps, -1)).transpose(0, 1)


def _replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    parent._modules[child] = new


# --------------------------------------------------------------------------------------------------
# Attributions


@dataclass
class Attribution:
    """One method's explanation of one image.

    Attributes:
        method: one of :data:`METHODS`.
        attribution: signed attribution ``(C, H, W)`` float32 at the model's input resolution (for
            Grad-CAM ``(1, H, W)``, upsampled from the layer).
        heatmap: what to show and rank pixels by, ``(H, W)`` float32 in [0, 1]: the positive
            evidence for "tumor" (Saliency: the gradient's magnitude), scaled by its 99.5th percentile.
        layer: the Grad-CAM layer.
        seconds: time taken.
        note: a limitation worth telling the user (empty when none).
        convergence_delta: Integrated Gradients only: ``|sum(attributions) - (F(x) - F(black))|``
            relative to ``|F(x) - F(black)|``; small means the attributions account for the score.
    """

    method: str
    attribution: np.ndarray
    heatmap: np.ndarray
    layer: str | None = None
    seconds: float = 0.0
    note: str = ""
    convergence_delta: float | None = None

    @property
    def title(self) -> str:
        return METHOD_INFO[self.method]["title"]

    @property
    def caption(self) -> str:
        return METHOD_INFO[self.method]["caption"]


def _heatmap(attribution: torch.Tensor, method: str) -> np.ndarray:
    """(C, H, W) -> (H, W) in [0, 1]."""
    if method == "saliency":
        values = attribution.abs().amax(dim=0)
    else:
        values = attribution.sum(dim=0).clamp(min=0)
    values = values.detach().float()
    scale = torch.quantile(values.flatten(), 0.995) if values.numel() > 1 else values.max()
    if not float(scale) > 0:
        scale = values.max()
    if not float(scale) > 0:
        return np.zeros(values.shape, dtype=np.float32)
    return (values / scale).clamp(0, 1).numpy().astype(np.float32)


def _private_copy(model: nn.Module) -> nn.Module:
    # A copy the hooks of Captum may touch; parameters need no gradient (only the input does).
    private = copy.deepcopy(model).eval()
    for parameter in private.parameters():
        parameter.requires_grad_(False)
    return private


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    region: torch.Tensor,
    *,
    layer: str | None = None,
    n_steps: int = 32,
    window: int | None = None,
    stride: int | None = None,
    internal_batch_size: int = 8,
    layers: list[LayerInfo] | None = None,
) -> Attribution:
    """Explain ``model``'s tumor score on ``x`` over ``region`` with one Captum method.

    Args:
        model: segmentation network (never modified: a private copy is explained).
        x: one normalised input ``(1, C, H, W)``, as from :func:`slice_input`.
        method: one of :data:`METHODS`.
        region: bool ``(H, W)`` from :func:`tumor_region`; the target is the sum of logits over it.
        layer: Grad-CAM layer name (from :func:`gradcam_layers`); default: the bottleneck.
        n_steps: Integrated Gradients path steps.
        window: Occlusion patch side in pixels (default: 1/8 of the shorter side, at least 4).
        stride: Occlusion stride (default: the window, so patches tile the image).
        internal_batch_size: images per forward pass for Integrated Gradients.
        layers: :func:`gradcam_layers` of ``model`` on ``x`` when already known (saves a probe pass).

    Returns:
        The :class:`Attribution`.

    Raises:
        ValueError: for an unknown method or layer, or a region of the wrong shape.
    """
    from captum.attr import Occlusion

    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; choose one of: {', '.join(METHODS)}")
    _check_input(x)
    if tuple(region.shape) != tuple(x.shape[-2:]):
        raise ValueError(f"region shape {tuple(region.shape)} does not match the input's {tuple(x.shape[-2:])}")
    start = time.perf_counter()
    x = x.detach().float()
    private = _private_copy(model)
    target = RegionLogitSum(private, region).eval()
    channels, height, width = x.shape[1:]
    note = ""
    delta = None
    chosen_layer = None

    if method == "occlusion":
        # 1/8 of the side, non-overlapping: 64 forward passes for any input size.
        side = window or max(4, min(height, width) // 8)
        step = stride or side
        occlusion = Occlusion(target)
        with torch.no_grad():
            result = occlusion.attribute(
                x,
                sliding_window_shapes=(channels, side, side),
                strides=(channels, step, step),
                baselines=0.0,
                perturbations_per_eval=16,
            )
        note = f"{side}x{side} px patches every {step} px, blacked out."
    else:
        try:
            result, note, delta, chosen_layer = _gradient_attribution(
                target, private, x, method, layer=layer, layers=layers, n_steps=n_steps, internal_batch_size=internal_batch_size
            )
        except RuntimeError as error:
            # Captum's message when the output has no gradient path to the input (e.g. the naive prior).
            if "does not require grad" not in str(error):
                raise
            result = torch.zeros_like(x)
            note = (
                "This model's output does not depend on the image through differentiable operations, "
                "so gradient methods show nothing; see Occlusion."
            )
            chosen_layer = layer

    attribution = result.detach()[0].float()
    if not torch.isfinite(attribution).all():
        # e.g. the gradient of a square root at zero inside hand-made features (the pixel classifier)
        attribution = torch.nan_to_num(attribution, nan=0.0, posinf=0.0, neginf=0.0)
        note = (note + " " if note else "") + "The gradient is undefined at some pixels (set to 0 there)."
    if method != "occlusion" and not note and not float(attribution.abs().sum()) > 0:
        note = "The gradient is zero everywhere here (e.g. no spiking neuron near its threshold); see Occlusion."
    heatmap = _heatmap(attribution, method)
    if not note and not heatmap.any() and float(attribution.abs().sum()) > 0:
        note = "No pixel pushes the score towards 'tumor' here: every contribution is negative or zero."
    return Attribution(
        method=method,
        attribution=attribution.numpy().astype(np.float32),
        heatmap=heatmap,
        layer=chosen_layer,
        seconds=time.perf_counter() - start,
        note=note,
        convergence_delta=delta,
    )


def _gradient_attribution(
    target: RegionLogitSum,
    private: nn.Module,
    x: torch.Tensor,
    method: str,
    *,
    layer: str | None,
    layers: list[LayerInfo] | None,
    n_steps: int,
    internal_batch_size: int,
) -> tuple[torch.Tensor, str, float | None, str | None]:
    """Saliency, Integrated Gradients or Grad-CAM: ``(attribution (1, C|1, H, W), note, IG delta, layer)``."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

    height, width = x.shape[-2:]
    if method == "saliency":
        return Saliency(target).attribute(x.clone().requires_grad_(True), abs=True), "", None, None
    if method == "integrated_gradients":
        baseline = torch.zeros_like(x)
        result, convergence = IntegratedGradients(target).attribute(
            x.clone().requires_grad_(True),
            baselines=baseline,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
        with torch.no_grad():
            scores = target(torch.cat([x, baseline]))
        delta = float(abs(convergence.item())) / max(abs(float(scores[0] - scores[1])), 1e-6)
        note = (
            f"The attributions account for the score only to within {delta:.0%}; more path steps would tighten this."
            if delta > 0.1
            else ""
        )
        return result, note, delta, None
    layers = gradcam_layers(private, x) if layers is None else layers
    if not layers:
        return torch.zeros(1, 1, height, width), "This model has no convolutional feature maps for Grad-CAM to weigh.", None, None
    names = {info.name: info for info in layers}
    if layer is None:
        info = default_gradcam_layer(layers)
    elif layer in names:
        info = names[layer]
    else:
        raise ValueError(f"layer {layer!r} cannot be explained with Grad-CAM; choose one of: {', '.join(names)}")
    module = private.get_submodule(info.name)
    if info.time_first:
        wrapper = _TimeFolded(module)
        _replace_module(private, info.name, wrapper)
        module = wrapper.probe
    raw = LayerGradCam(target, module).attribute(x.clone().requires_grad_(True), relu_attributions=True)
    result = LayerAttribution.interpolate(raw.detach(), (height, width), interpolate_mode="bilinear")
    note = (
        ""
        if float(result.abs().sum()) > 0
        else "All of this layer's weighted feature maps are negative or zero here; try another layer."
    )
    return result, note, None, info.name


# --------------------------------------------------------------------------------------------------
# Faithfulness


@dataclass
class DeletionCurve:
    """The prediction as the most salient pixels are deleted first.

    Attributes:
        method: the method whose ranking was used (``"random"`` for the reference).
        fractions: fraction of the image's pixels deleted at each point, ``(K,)``.
        dice: Dice of the prediction on the damaged image against the original region, ``(K,)``.
        probability: mean tumor probability inside the original region, ``(K,)``.
        spread: for the random reference, the standard deviation of ``dice`` over the repeats.
    """

    method: str
    fractions: np.ndarray
    dice: np.ndarray
    probability: np.ndarray
    spread: np.ndarray | None = None

    @staticmethod
    def _area(fractions: np.ndarray, values: np.ndarray) -> float:
        span = float(fractions[-1] - fractions[0])
        if span <= 0:
            return float(values[0])
        return float(np.trapezoid(values, fractions) / span)

    @property
    def auc_dice(self) -> float:
        """Area under the Dice curve, normalised to [0, 1]; lower means the ranking found what matters."""
        return self._area(self.fractions, self.dice)

    @property
    def auc_probability(self) -> float:
        """Area under the probability curve, normalised to [0, 1]; lower is better."""
        return self._area(self.fractions, self.probability)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fractions": self.fractions.tolist(),
            "dice": self.dice.tolist(),
            "probability": self.probability.tolist(),
            "auc_dice": self.auc_dice,
            "auc_probability": self.auc_probability,
        }


def _damaged_scores(
    model: nn.Module,
    x: torch.Tensor,
    orders: list[torch.Tensor],
    region: torch.Tensor,
    fractions: np.ndarray,
    threshold: float,
    fill: float,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Dice and region probability for every (order, fraction): arrays ``(len(orders), K)``."""
    height, width = x.shape[-2:]
    total = height * width
    counts = [int(round(f * total)) for f in fractions]
    images = []
    for order in orders:
        for count in counts:
            keep = torch.ones(total, dtype=x.dtype)
            keep[order[:count]] = 0
            keep = keep.view(1, 1, height, width)
            images.append(x * keep + fill * (1 - keep))
    batch = torch.cat(images)
    region_f = region.float()
    region_pixels = float(region_f.sum())
    dice, probability = [], []
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            probs = torch.sigmoid(model(batch[start : start + batch_size])[:, 0].float())
            predicted = (probs >= threshold).float()
            overlap = (predicted * region_f).sum(dim=(1, 2))
            denominator = predicted.sum(dim=(1, 2)) + region_pixels
            dice.append(torch.where(denominator > 0, 2 * overlap / denominator.clamp(min=1e-9), torch.ones_like(overlap)))
            probability.append((probs * region_f).sum(dim=(1, 2)) / max(region_pixels, 1.0))
    shape = (len(orders), len(counts))
    return torch.cat(dice).view(shape).numpy(), torch.cat(probability).view(shape).numpy()


def _ranking(heatmap: np.ndarray, seed: int = 0) -> torch.Tensor:
    """Pixel indices, most salient first; ties broken at random (reproducibly)."""
    values = np.asarray(heatmap, dtype=np.float64).ravel()
    tiebreak = np.random.default_rng(seed).random(values.size)
    return torch.from_numpy(np.lexsort((tiebreak, -values)).copy())


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    heatmap: np.ndarray,
    region: torch.Tensor,
    *,
    method: str = "",
    fractions: tuple[float, ...] = DELETION_FRACTIONS,
    threshold: float = 0.5,
    fill: float = 0.0,
    batch_size: int = 16,
) -> DeletionCurve:
    """Delete pixels in the order of ``heatmap`` (most salient first) and follow the prediction.

    Args:
        model: segmentation network.
        x: one normalised input ``(1, C, H, W)``.
        heatmap: ``(H, W)``, higher = more important.
        region: the explained region ``(H, W)`` (from :func:`tumor_region`).
        method: name recorded in the curve.
        fractions: fractions of all pixels deleted, increasing, starting at 0.
        threshold: probability threshold for the Dice.
        fill: value a deleted pixel takes in every channel (0: black, the background of a normalised scan).
        batch_size: images per forward pass.
    """
    _check_input(x)
    if tuple(np.shape(heatmap)) != tuple(x.shape[-2:]):
        raise ValueError(f"heatmap shape {np.shape(heatmap)} does not match the input's {tuple(x.shape[-2:])}")
    points = np.asarray(fractions, dtype=np.float64)
    dice, probability = _damaged_scores(
        model, x.detach().float(), [_ranking(heatmap)], region, points, threshold, fill, batch_size
    )
    return DeletionCurve(method, points, dice[0], probability[0])


def random_deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    region: torch.Tensor,
    *,
    repeats: int = 3,
    seed: int = 0,
    fractions: tuple[float, ...] = DELETION_FRACTIONS,
    threshold: float = 0.5,
    fill: float = 0.0,
    batch_size: int = 16,
) -> DeletionCurve:
    """The reference curve: pixels deleted in random order, averaged over ``repeats`` orders."""
    _check_input(x)
    generator = torch.Generator().manual_seed(seed)
    total = x.shape[-2] * x.shape[-1]
    orders = [torch.randperm(total, generator=generator) for _ in range(repeats)]
    points = np.asarray(fractions, dtype=np.float64)
    dice, probability = _damaged_scores(model, x.detach().float(), orders, region, points, threshold, fill, batch_size)
    return DeletionCurve("random", points, dice.mean(axis=0), probability.mean(axis=0), spread=dice.std(axis=0))


# --------------------------------------------------------------------------------------------------
# Spiking activity


def is_spiking(model: nn.Module) -> bool:
    """Whether ``model`` contains spiking neurons (LIF layers) that :func:`explain_spiking` can record."""
    from seg_core.spiking import lif_layers

    return bool(lif_layers(model))


@dataclass
class BlockActivity:
    """What one spiking block did, per time step.

    Attributes:
        name: block name (``"stages.1.0"``): stage 1, block 0.
        channels: feature maps of the block.
        size: ``(h, w)`` of its maps (a fraction of the input's size).
        temporal: weight per time step ``(T,)`` in (0, 1), or None (no temporal attention).
        channel: weight per channel ``(C,)`` in (0, 1), shared by all steps.
        spatial: weight per position ``(h, w)`` in (0, 1), shared by all steps.
        step_attention: spatial weighting applied at each step, ``temporal[t] * spatial``, ``(T, h, w)``.
        rate_maps: share of the block's channels firing at each position and step, ``(T, h, w)``
            (its second LIF layer, on the same grid as the attention).
        step_rates: share of the second LIF layer's neurons firing at each step, ``(T,)``.
        input_rate_maps: the same for the block's first LIF layer, which turns the block's input
            currents into spikes, ``(T, h_in, w_in)`` (twice the size for a stage's first block).
        input_step_rates: share of the first LIF layer's neurons firing at each step, ``(T,)``.
    """

    name: str
    channels: int
    size: tuple[int, int]
    temporal: np.ndarray | None
    channel: np.ndarray
    spatial: np.ndarray
    step_attention: np.ndarray
    rate_maps: np.ndarray
    step_rates: np.ndarray
    input_rate_maps: np.ndarray | None = None
    input_step_rates: np.ndarray | None = None

    @property
    def label(self) -> str:
        parts = self.name.split(".")
        if len(parts) == 3 and parts[0] == "stages":
            return f"stage {int(parts[1]) + 1}, block {int(parts[2]) + 1}"
        return self.name


@dataclass
class SpikeRaster:
    """Spikes of sampled neurons over the time steps.

    Attributes:
        labels: one per neuron, ``"stage 2, block 1 · ch 5 @ (3, 4)"``.
        layers: the LIF layer of each neuron.
        spikes: ``(N, T)`` bool.
        in_tumor: ``(N,)`` bool: the neuron's position lies in the explained region.
    """

    labels: list[str]
    layers: list[str]
    spikes: np.ndarray
    in_tumor: np.ndarray

    @property
    def fired_fraction(self) -> float:
        """Share of the sampled neurons that fired at least once."""
        return float(self.spikes.any(axis=1).mean()) if len(self.spikes) else 0.0


@dataclass
class SpikingExplanation:
    """Spiking activity of one forward pass.

    Attributes:
        time_steps: ``T``.
        blocks: per attention block, in forward order.
        layer_rates: per LIF layer, the share of neurons firing at each step, ``(T,)``.
        raster: sampled neurons.
        input_size: ``(H, W)`` the model worked at (before padding).
    """

    time_steps: int
    blocks: list[BlockActivity]
    layer_rates: dict[str, np.ndarray]
    raster: SpikeRaster
    input_size: tuple[int, int]
    captions: dict[str, str] = field(default_factory=lambda: dict(SPIKING_CAPTIONS))

    @property
    def mean_rate(self) -> float:
        """Share of all recorded neurons' (layer-averaged) firing over all steps."""
        if not self.layer_rates:
            return 0.0
        return float(np.mean([rates.mean() for rates in self.layer_rates.values()]))

    def rate_matrix(self) -> np.ndarray:
        """Blocks x time steps firing rates, ``(len(blocks), T)``: a heatmap of activity over depth and time."""
        return np.stack([block.step_rates for block in self.blocks]) if self.blocks else np.zeros((0, self.time_steps))


def _crop(array: torch.Tensor, size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
    """Crop a map at a fraction of the padded input to the part covering the real input."""
    h = max(1, int(np.ceil(array.shape[-2] * size[0] / padded[0])))
    w = max(1, int(np.ceil(array.shape[-1] * size[1] / padded[1])))
    return array[..., :h, :w]


def explain_spiking(
    model: nn.Module, x: torch.Tensor, region: torch.Tensor | None = None, *, neurons: int = 48, seed: int = 0
) -> SpikingExplanation:
    """Record a spiking model's spikes and attention on ``x`` and summarise them per block and step.

    Args:
        model: a spiking network of the zoo (contains LIF layers and spiking attention blocks).
        x: one normalised input ``(1, C, H, W)``.
        region: the explained region ``(H, W)``; half of the raster's neurons are sampled inside it.
        neurons: neurons in the raster, spread over the two LIF layers of the last block of each stage.
        seed: sampling seed.

    Raises:
        ValueError: when ``model`` has no spiking neurons.
    """
    from seg_core.spiking import record

    _check_input(x)
    if not is_spiking(model):
        raise ValueError("this model has no spiking neurons; spiking explanations need attention_snn, csa_snn or tcsa_snn")
    height, width = x.shape[-2:]
    multiple = int(getattr(model, "input_multiple", 1) or 1)
    padded = (height + (-height) % multiple, width + (-width) % multiple)
    with torch.inference_mode(), record(model, store="binary") as recording:
        model(x.detach().float())
    spikes = recording.spikes
    steps = next(iter(spikes.values())).shape[0] if spikes else 1

    blocks = []
    for attention_name, maps in recording.attention.items():
        block = attention_name.rsplit(".", 1)[0]
        spatial = _crop(maps["spatial"][0].float(), (height, width), padded)
        temporal = maps["temporal"][0].float() if "temporal" in maps else None
        weights = temporal if temporal is not None else torch.ones(steps)
        rate_maps, step_rates = _rates(spikes.get(f"{block}.lif2"), (height, width), padded, steps, tuple(spatial.shape))
        input_rate_maps, input_step_rates = _rates(spikes.get(f"{block}.lif1"), (height, width), padded, steps, None)
        blocks.append(
            BlockActivity(
                name=block,
                channels=int(maps["channel"].shape[1]),
                size=(int(spatial.shape[0]), int(spatial.shape[1])),
                temporal=None if temporal is None else temporal.numpy(),
                channel=maps["channel"][0].float().numpy(),
                spatial=spatial.numpy(),
                step_attention=(weights[:, None, None] * spatial[None]).numpy(),
                rate_maps=rate_maps.numpy(),
                step_rates=step_rates.numpy(),
                input_rate_maps=None if input_rate_maps is None else input_rate_maps.numpy(),
                input_step_rates=None if input_step_rates is None else input_step_rates.numpy(),
            )
        )
    layer_rates = {name: s[:, 0].float().mean(dim=tuple(range(1, s.ndim - 1))).numpy() for name, s in spikes.items()}
    raster = _sample_raster(spikes, blocks, region, (height, width), padded, neurons, seed)
    return SpikingExplanation(steps, blocks, layer_rates, raster, (height, width))


def _rates(
    layer_spikes: torch.Tensor | None,
    size: tuple[int, int],
    padded: tuple[int, int],
    steps: int,
    empty_shape: tuple[int, ...] | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-step rate maps ``(T, h, w)`` (mean over channels) and rates ``(T,)`` of one LIF layer's spikes."""
    if layer_spikes is None:
        if empty_shape is None:
            return None, None
        return torch.zeros(steps, *empty_shape), torch.zeros(steps)
    maps = _crop(layer_spikes[:, 0].float(), size, padded)  # (T, C, h, w)
    return maps.mean(dim=1), maps.mean(dim=(1, 2, 3))


def _sample_raster(
    spikes: dict[str, torch.Tensor],
    blocks: list[BlockActivity],
    region: torch.Tensor | None,
    size: tuple[int, int],
    padded: tuple[int, int],
    neurons: int,
    seed: int,
) -> SpikeRaster:
    # The last block of each stage: one view per depth of the network.
    last_of_stage: dict[str, BlockActivity] = {}
    for block in blocks:
        last_of_stage[block.name.rsplit(".", 1)[0]] = block
    chosen = [
        (block, f"{block.name}.{lif}")
        for block in last_of_stage.values()
        for lif in ("lif1", "lif2")
        if f"{block.name}.{lif}" in spikes
    ]
    rng = np.random.default_rng(seed)
    labels: list[str] = []
    layers: list[str] = []
    rows: list[np.ndarray] = []
    inside: list[bool] = []
    if not chosen or neurons <= 0:
        return SpikeRaster([], [], np.zeros((0, 1), dtype=bool), np.zeros(0, dtype=bool))
    per_layer = max(1, neurons // len(chosen))
    for block, layer in chosen:
        layer_spikes = _crop(spikes[layer][:, 0], size, padded).numpy()  # (T, C, h, w)
        _, channels, h, w = layer_spikes.shape
        if region is not None and region.any():
            # A position is "in the tumor" when at least half of the pixels it covers are.
            small = (F.interpolate(region[None, None].float(), size=(h, w), mode="area")[0, 0] >= 0.5).numpy()
        else:
            small = np.zeros((h, w), dtype=bool)
        positions_in, positions_out = np.argwhere(small), np.argwhere(~small)
        want_in = per_layer // 2 if len(positions_in) and len(positions_out) else (per_layer if len(positions_in) else 0)
        where = "input" if layer.endswith("lif1") else "inner"
        for positions, count, flag in ((positions_in, want_in, True), (positions_out, per_layer - want_in, False)):
            for _ in range(count):
                row, col = positions[rng.integers(len(positions))]
                channel = int(rng.integers(channels))
                rows.append(layer_spikes[:, channel, row, col].astype(bool))
                labels.append(f"{block.label}, {where} · ch {channel} @ ({row}, {col})")
                layers.append(layer)
                inside.append(flag)
    return SpikeRaster(labels, layers, np.stack(rows), np.asarray(inside, dtype=bool))


# --------------------------------------------------------------------------------------------------
# One slice, everything


def resize_map(values: np.ndarray, shape: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize a 2D map ``(h, w)`` to ``shape`` (``"bilinear"`` for heatmaps, ``"nearest"`` for masks)."""
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))[None, None]
    if tuple(tensor.shape[-2:]) == tuple(shape):
        return np.asarray(values, dtype=np.float32)
    options = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(tensor, size=tuple(shape), mode=mode, **options)[0, 0].numpy()


@dataclass
class SliceExplanation:
    """Everything :func:`explain_slice` computed for one slice, at the model's input resolution.

    Attributes:
        model_id: the weights explained.
        index: slice index in the scan.
        image: the model's input ``(C, h, w)``, normalised.
        probability: the model's tumor probability on it ``(h, w)`` (no test-time flipping).
        region: the explained region ``(h, w)`` bool; ``region_source`` says where it came from.
        attributions: method -> :class:`Attribution`.
        curves: method -> :class:`DeletionCurve`, plus ``"random"``.
        spiking: the spiking activity, for spiking models.
        layers: the layers Grad-CAM can use.
        threshold: the probability threshold used for the region and the Dice.
    """

    model_id: str
    index: int
    image: np.ndarray
    probability: np.ndarray
    region: np.ndarray
    region_source: str
    attributions: dict[str, Attribution]
    curves: dict[str, DeletionCurve]
    spiking: SpikingExplanation | None
    layers: list[LayerInfo]
    threshold: float

    def faithfulness_table(self) -> list[dict[str, Any]]:
        """One row per curve: method, area under the Dice and probability curves (lower is better)."""
        rows = []
        for method, curve in self.curves.items():
            rows.append(
                {
                    "method": METHOD_INFO[method]["title"] if method in METHOD_INFO else "Random order (reference)",
                    "key": method,
                    "auc_dice": round(curve.auc_dice, 4),
                    "auc_probability": round(curve.auc_probability, 4),
                    "seconds": round(self.attributions[method].seconds, 2) if method in self.attributions else None,
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
    progress: Any = None,
) -> SliceExplanation:
    """Explain one slice: region, the chosen attributions, their deletion curves, and spiking activity.

    Args:
        segmenter: the loaded model (its modalities, normaliser and input size are used).
        scan: the scan; ``index`` picks the slice.
        methods: any of :data:`METHODS`.
        layer: Grad-CAM layer (default: the bottleneck).
        threshold: probability threshold (default: the weights' own).
        n_steps: Integrated Gradients steps (16: about 2 s for a lite U-Net at 128 px on two cores).
        random_repeats: random deletion orders averaged for the reference curve.
        faithfulness: compute the deletion curves (one batched pass per method, plus 3 random orders).
        spiking: record spiking activity when the model is spiking.
        progress: optional ``callback(done, total, label)``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown explanation method(s) {unknown}; choose from: {', '.join(METHODS)}")
    model = segmenter.model
    threshold = segmenter.threshold if threshold is None else float(threshold)
    x = slice_input(segmenter, scan, index)
    with torch.inference_mode():
        logits = model(x)[0, 0].float()
    probability = torch.sigmoid(logits).numpy()
    region, source = _region_from_logits(logits, threshold)
    layers = gradcam_layers(model, x)
    total = len(methods) + int(faithfulness) + int(spiking and is_spiking(model))
    done = 0

    def tick(label: str) -> None:
        if progress is not None:
            progress(done, total, label)

    attributions: dict[str, Attribution] = {}
    for method in methods:
        tick(METHOD_INFO[method]["title"])
        attributions[method] = attribute(model, x, method, region, layer=layer, n_steps=n_steps, layers=layers)
        done += 1
    curves: dict[str, DeletionCurve] = {}
    if faithfulness:
        tick("deletion curves")
        for method, result in attributions.items():
            curves[method] = deletion_curve(model, x, result.heatmap, region, method=method, threshold=threshold)
        curves["random"] = random_deletion_curve(model, x, region, repeats=random_repeats, threshold=threshold)
        done += 1
    activity = None
    if spiking and is_spiking(model):
        tick("spiking activity")
        activity = explain_spiking(model, x, region)
        done += 1
    tick("done")
    return SliceExplanation(
        model_id=segmenter.model_id,
        index=index,
        image=x[0].numpy(),
        probability=probability,
        region=region.numpy(),
        region_source=source,
        attributions=attributions,
        curves=curves,
        spiking=activity,
        layers=layers,
        threshold=threshold,
    )
