"""The Explain page's pictures and state: the explanation to show, attribution panels, spiking maps.

The maps come from :func:`seg_core.explain.explain_slice` at the model's input size; here they are
resized to the slice (OpenCV, :func:`seg_core.visualize.resize_to`) and drawn over it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import streamlit as st

from seg_core.display_names import layer_names
from seg_core.visualize import TRUTH_COLOR, colorize, draw_mask, heatmap_overlay, rescale, resize_to
from ui.cache import explanation, memo, segmenter
from ui.state import EXPLANATIONS, ActiveScan


@dataclass
class Panel:
    """One picture of the attribution grid: the slice, or one method's map over it."""

    title: str
    picture: np.ndarray
    notes: list[str] = field(default_factory=list)


def _method_key(active: ActiveScan, model_id: str, index: int, method: str, layer: str | None, n_steps: int) -> tuple:
    # Only Grad-CAM depends on the layer and only Integrated Gradients on the number of steps, so
    # changing one keeps the others' maps.
    return (
        active.key,
        model_id,
        index,
        method,
        layer if method == "gradcam" else None,
        n_steps if method == "integrated_gradients" else None,
    )


def _session_store(active: ActiveScan) -> dict[tuple, Any]:
    """This session's explanations of the current scan (a new scan starts an empty store)."""
    store = st.session_state.get(EXPLANATIONS)
    if store is None or store.get("scan") != active.key:
        store = st.session_state[EXPLANATIONS] = {"scan": active.key}
    return store


def missing_methods(
    active: ActiveScan, model_id: str, index: int, methods: list[str], layer: str | None, n_steps: int
) -> list[str]:
    """The chosen methods this session has not explained yet for this scan, model, slice and settings."""
    store = _session_store(active)
    return [m for m in methods if _method_key(active, model_id, index, m, layer, n_steps) not in store]


def explanation_estimate(active: ActiveScan, model_id: str, index: int, methods: list[str], n_steps: int) -> Any:
    """How long explaining ``methods`` will take (:func:`seg_core.explain.estimate_explanation`), once per settings.

    The probe times a few passes of the model (about a second), far less than the explanation itself.
    """
    from seg_core.explain import estimate_explanation

    spiking = (active.key, model_id, index) not in _session_store(active)  # recorded once per slice
    return memo(
        ("explain_estimate", model_id, tuple(methods), n_steps, spiking),
        lambda: estimate_explanation(segmenter(model_id), tuple(methods), n_steps=n_steps, spiking=spiking),
    )


def compute_explanation(
    active: ActiveScan,
    model_id: str,
    index: int,
    methods: list[str],
    layer: str | None,
    n_steps: int,
    estimate: Any | None = None,
) -> None:
    """Explain the methods not computed yet (with a progress bar) and keep each in the session, per method.

    ``estimate`` (:func:`explanation_estimate`) puts the expected time of each step beside the bar.
    """
    store = _session_store(active)
    missing = missing_methods(active, model_id, index, methods, layer, n_steps)
    base_key = (active.key, model_id, index)
    if not missing:
        return
    expected = f" (expected: {estimate.words()})" if estimate is not None else ""
    bar = st.progress(0.0, text=f"Explaining{expected}...")
    started = time.perf_counter()

    def tick(done: int, total: int, label: str) -> None:
        elapsed = time.perf_counter() - started
        text = f"Explaining: {label} ({done} of {total} steps done, {elapsed:.0f} s{expected})"
        bar.progress(min(done / max(total, 1), 1.0), text=text)

    need_spiking = base_key not in store
    try:
        result = explanation(active.key, active.scan, model_id, index, tuple(missing), layer, tick, n_steps, spiking=need_spiking)
    finally:
        bar.empty()
    if need_spiking:
        # What every method shares: the slice, the region, the random-order reference and spiking activity.
        store[base_key] = replace(result, attributions={}, curves={"random": result.curves["random"]} if result.curves else {})
    for method in missing:
        curve = result.curves.get(method)
        store[_method_key(active, model_id, index, method, layer, n_steps)] = (result.attributions[method], curve)


def stored_explanation(
    active: ActiveScan, model_id: str, index: int, methods: list[str], layer: str | None, n_steps: int
) -> Any | None:
    """The session's explanation of the chosen methods that are computed already, or None when none is.

    Returns a :class:`seg_core.explain.SliceExplanation` holding only those methods (and the random reference).
    """
    store = _session_store(active)
    base = store.get((active.key, model_id, index))
    if base is None:
        return None
    attributions, curves = {}, {}
    for method in methods:
        entry = store.get(_method_key(active, model_id, index, method, layer, n_steps))
        if entry is not None:
            attributions[method], curve = entry
            if curve is not None:
                curves[method] = curve
    if not attributions:
        return None
    if curves and "random" in base.curves:
        curves["random"] = base.curves["random"]
    return replace(base, attributions=attributions, curves=curves)


def layer_choices(layers: list[Any], default: Any | None) -> tuple[list[str], dict[str, str], int]:
    """Grad-CAM layer names, their labels in words, and the index of ``default`` (0 without one).

    A label reads "first decoder step, fine detail (32 feature maps, 64x64)", never the module path.
    """
    names = [info.name for info in layers]
    words = layer_names(names)
    labels = {info.name: f"{words[info.name]} ({info.channels} feature maps, {info.size[0]}x{info.size[1]})" for info in layers}
    return names, labels, names.index(default.name) if default is not None else 0


def attribution_panels(gray: np.ndarray, result: Any, opacity: float, outline: bool) -> list[Panel]:
    """The slice and each method's heat map over it ``(H, W, 3)``, the explained region outlined when asked."""
    shape = gray.shape
    region = resize_to(result.region.astype(np.float32), shape, mode="nearest") > 0.5

    def outlined(picture: np.ndarray) -> np.ndarray:
        return draw_mask(picture, region, TRUTH_COLOR, "contour") if outline else picture

    panels = [Panel("Scan", outlined(np.repeat(gray[..., None], 3, -1)) if outline else gray)]
    words = layer_names([info.name for info in result.layers])
    for attribution in result.attributions.values():
        heat = np.clip(resize_to(attribution.heatmap, shape), 0, 1)
        details = f"{attribution.seconds:.1f} s"
        if attribution.layer:
            details += f" · layer: {words.get(attribution.layer, attribution.layer)}"
        notes = [f"{attribution.caption} ({details})"] + ([f"ℹ️ {attribution.note}"] if attribution.note else [])
        panels.append(Panel(attribution.title, outlined(heatmap_overlay(gray, heat, opacity=opacity)), notes))
    return panels


def colour_legend(colormap: str = "inferno", width: int = 256, height: int = 14) -> np.ndarray:
    """The colour scale of the maps as a bar ``(height, width, 3)``: low (dark, left) to high (bright, right)."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return colorize(ramp, colormap)


@dataclass
class SpikingMaps:
    """One block's activity at one time step over the slice.

    Attributes:
        rates: share of the block's channels firing, scaled to the block's busiest position and step.
        attention: the spatial attention applied at the step, scaled to the block's range over all steps.
        top_rate: the rate shown brightest.
        attention_range: ``(low, high)`` attention shown darkest and brightest.
    """

    rates: np.ndarray
    attention: np.ndarray
    top_rate: float
    attention_range: tuple[float, float]


def spiking_maps(gray: np.ndarray, block: Any, step: int) -> SpikingMaps:
    """:class:`SpikingMaps` of ``block`` (a :class:`seg_core.explain.BlockActivity`) at ``step`` over the slice."""
    # Nearest neighbour: each square is one neuron position of the block's grid.
    top_rate = float(max(block.rate_maps.max(), 1e-6))
    low, high = float(block.step_attention.min()), float(block.step_attention.max())
    rates = resize_to(block.rate_maps[step] / top_rate, gray.shape, mode="nearest")
    attention = resize_to(rescale(block.step_attention[step], low, high), gray.shape, mode="nearest")
    return SpikingMaps(
        heatmap_overlay(gray, rates, opacity=0.75),
        heatmap_overlay(gray, attention, opacity=0.75, colormap="viridis"),
        top_rate,
        (low, high),
    )
