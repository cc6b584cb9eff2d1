"""Captum attributions: which input pixels the model's tumor score depends on.

* ``saliency``: the absolute gradient of the score with respect to each pixel (Simonyan et al. 2014).
* ``integrated_gradients``: gradients averaged along a straight path from a black image to the
  scan, times the pixel's value (Sundararajan et al. 2017); the attributions add up to the score's
  change from the black image (``convergence_delta`` says how closely they do).
* ``gradcam``: Grad-CAM on a chosen layer (Selvaraju et al. 2017; for segmentation, Vinogradova et
  al. 2020): that layer's feature maps weighted by the score's average gradient, upsampled.
* ``occlusion``: the drop of the score when a square patch is blacked out (Zeiler & Fergus 2014),
  slid over the image; no gradients, so it works for every model, differentiable or not.

The score is :class:`~seg_core.explain.inputs.RegionLogitSum`. Gradients flow through spiking
models by their surrogate gradients (the logits are the mean over ``T`` steps, so the target covers
every step). Attributions run on a private copy of the model, so the hooks Captum needs never touch
a model shared by other threads (the app's cached models).

References:
    K. Simonyan, A. Vedaldi, A. Zisserman. Deep Inside Convolutional Networks. ICLR workshop 2014.
    M. Sundararajan, A. Taly, Q. Yan. Axiomatic Attribution for Deep Networks. ICML 2017.
    R. R. Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks. ICCV 2017.
    K. Vinogradova, A. Dibrov, G. Myers. Towards Interpretable Semantic Segmentation via
    Gradient-weighted Class Activation Mapping. AAAI 2020.
    M. D. Zeiler, R. Fergus. Visualizing and Understanding Convolutional Networks. ECCV 2014.
    N. Kokhlikyan et al. Captum: A unified and generic model interpretability library for PyTorch. 2020.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from seg_core.explain.inputs import RegionLogitSum, check_input
from seg_core.explain.layers import LayerInfo, chosen_gradcam_layer, gradcam_layers, gradcam_probe

__all__ = ["METHODS", "METHOD_INFO", "Attribution", "attribute"]

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


class _Raw(NamedTuple):
    """What one Captum method returned: attribution ``(1, C|1, H, W)`` and what to tell the user."""

    attribution: torch.Tensor
    note: str = ""
    convergence_delta: float | None = None
    layer: str | None = None


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
        x: one normalised input ``(1, C, H, W)``, as from :func:`~seg_core.explain.inputs.slice_input`.
        method: one of :data:`METHODS`.
        region: bool ``(H, W)`` from :func:`~seg_core.explain.inputs.tumor_region`; the target is
            the sum of logits over it.
        layer: Grad-CAM layer name (from :func:`~seg_core.explain.layers.gradcam_layers`); default:
            the bottleneck.
        n_steps: Integrated Gradients path steps.
        window: Occlusion patch side in pixels (default: 1/8 of the shorter side, at least 4).
        stride: Occlusion stride (default: the window, so patches tile the image).
        internal_batch_size: images per forward pass for Integrated Gradients.
        layers: ``gradcam_layers`` of ``model`` on ``x`` when already known (saves a probe pass).

    Returns:
        The :class:`Attribution`.

    Raises:
        ValueError: for an unknown method or layer, or a region of the wrong shape.
    """
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; choose one of: {', '.join(METHODS)}")
    check_input(x)
    if tuple(region.shape) != tuple(x.shape[-2:]):
        raise ValueError(f"region shape {tuple(region.shape)} does not match the input's {tuple(x.shape[-2:])}")
    start = time.perf_counter()
    x = x.detach().float()
    private = _private_copy(model)
    target = RegionLogitSum(private, region).eval()
    if method == "occlusion":
        raw = _occlusion(target, x, window, stride)
    else:
        gradient_method = {
            "saliency": _saliency,
            "integrated_gradients": partial(_integrated_gradients, n_steps=n_steps, internal_batch_size=internal_batch_size),
            "gradcam": partial(_gradcam, private=private, layer=layer, layers=layers),
        }[method]
        raw = _without_gradient_path(gradient_method, target, x, layer)
    attribution, note = _checked(raw.attribution.detach()[0].float(), method, raw.note)
    heatmap = _heatmap(attribution, method)
    if not note and not heatmap.any() and float(attribution.abs().sum()) > 0:
        note = "No pixel pushes the score towards 'tumor' here: every contribution is negative or zero."
    return Attribution(
        method=method,
        attribution=attribution.numpy().astype(np.float32),
        heatmap=heatmap,
        layer=raw.layer,
        seconds=time.perf_counter() - start,
        note=note,
        convergence_delta=raw.convergence_delta,
    )


def _checked(attribution: torch.Tensor, method: str, note: str) -> tuple[torch.Tensor, str]:
    """The attribution ``(C, H, W)`` with undefined values zeroed, and the note saying so."""
    if not torch.isfinite(attribution).all():
        # e.g. the gradient of a square root at zero inside hand-made features (the pixel classifier)
        attribution = torch.nan_to_num(attribution, nan=0.0, posinf=0.0, neginf=0.0)
        note = (note + " " if note else "") + "The gradient is undefined at some pixels (set to 0 there)."
    if method != "occlusion" and not note and not float(attribution.abs().sum()) > 0:
        note = "The gradient is zero everywhere here (e.g. no spiking neuron near its threshold); see Occlusion."
    return attribution, note


def _without_gradient_path(
    method: Callable[[RegionLogitSum, torch.Tensor], _Raw], target: RegionLogitSum, x: torch.Tensor, layer: str | None
) -> _Raw:
    """Run a gradient method; a model whose output has no gradient path to the input gets zeros and a note."""
    try:
        return method(target, x)
    except RuntimeError as error:
        # Captum's message when the output has no gradient path to the input (e.g. the naive prior).
        if "does not require grad" not in str(error):
            raise
        note = (
            "This model's output does not depend on the image through differentiable operations, "
            "so gradient methods show nothing; see Occlusion."
        )
        return _Raw(torch.zeros_like(x), note, layer=layer)


def _occlusion(target: RegionLogitSum, x: torch.Tensor, window: int | None, stride: int | None) -> _Raw:
    from captum.attr import Occlusion

    channels, height, width = x.shape[1:]
    # 1/8 of the side, non-overlapping: 64 forward passes for any input size.
    side = window or max(4, min(height, width) // 8)
    step = stride or side
    with torch.no_grad():
        result = Occlusion(target).attribute(
            x,
            sliding_window_shapes=(channels, side, side),
            strides=(channels, step, step),
            baselines=0.0,
            perturbations_per_eval=16,
        )
    return _Raw(result, f"{side}x{side} px patches every {step} px, blacked out.")


def _saliency(target: RegionLogitSum, x: torch.Tensor) -> _Raw:
    from captum.attr import Saliency

    return _Raw(Saliency(target).attribute(x.clone().requires_grad_(True), abs=True))


def _integrated_gradients(target: RegionLogitSum, x: torch.Tensor, *, n_steps: int, internal_batch_size: int) -> _Raw:
    from captum.attr import IntegratedGradients

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
    note = f"The attributions account for the score only to within {delta:.0%}; more path steps would tighten this."
    return _Raw(result, note if delta > 0.1 else "", delta)


def _gradcam(
    target: RegionLogitSum, x: torch.Tensor, *, private: nn.Module, layer: str | None, layers: list[LayerInfo] | None
) -> _Raw:
    """Grad-CAM on ``layer`` of ``private`` (the model inside ``target``), upsampled to the input."""
    from captum.attr import LayerAttribution, LayerGradCam

    height, width = x.shape[-2:]
    layers = gradcam_layers(private, x) if layers is None else layers
    if not layers:
        return _Raw(torch.zeros(1, 1, height, width), "This model has no convolutional feature maps for Grad-CAM to weigh.")
    info = chosen_gradcam_layer(layers, layer)
    raw = LayerGradCam(target, gradcam_probe(private, info)).attribute(x.clone().requires_grad_(True), relu_attributions=True)
    result = LayerAttribution.interpolate(raw.detach(), (height, width), interpolate_mode="bilinear")
    if float(result.abs().sum()) > 0:
        return _Raw(result, layer=info.name)
    return _Raw(
        result, "All of this layer's weighted feature maps are negative or zero here; try another layer.", layer=info.name
    )
