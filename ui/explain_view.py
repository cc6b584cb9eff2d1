"""The Explain page's pictures and state: the explanation to show, attribution panels, spiking maps.

The maps come from :func:`seg_core.explain.explain_slice` at the model's input size; here they are
resized to the slice (OpenCV, :func:`seg_core.visualize.resize_to`) and drawn over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from seg_core.visualize import TRUTH_COLOR, draw_mask, heatmap_overlay, rescale, resize_to
from ui.cache import explanation
from ui.state import EXPLANATION, ActiveScan


@dataclass
class Panel:
    """One picture of the attribution grid: the slice, or one method's map over it."""

    title: str
    picture: np.ndarray
    notes: list[str] = field(default_factory=list)


def explanation_to_show(
    active: ActiveScan,
    model_id: str,
    index: int,
    methods: list[str],
    layer: str | None,
    n_steps: int,
    submitted: bool,
) -> tuple[Any, bool] | None:
    """The explanation to show and whether it is stale (made with other settings), or None when there is none.

    Computes (with a progress bar) when the form was submitted, or on the first visit for this scan and
    model, so the page shows something before the user has chosen anything; otherwise keeps the last one.
    """
    settings = (active.key, model_id, index, tuple(methods), layer, n_steps)
    stored = st.session_state.get(EXPLANATION)
    first_visit = stored is None or stored[0][:2] != settings[:2]
    if (submitted or first_visit) and methods:
        bar = st.progress(0.0, text="Explaining...")

        def tick(done: int, total: int, label: str) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=f"Explaining: {label}")

        result = explanation(active.key, active.scan, model_id, index, tuple(methods), layer, tick, n_steps)
        bar.empty()
        stored = st.session_state[EXPLANATION] = (settings, result)
    if stored is None or stored[0][:2] != settings[:2]:
        return None
    return stored[1], stored[0] != settings


def layer_choices(layers: list[Any], default: Any | None) -> tuple[list[str], dict[str, str], int]:
    """Grad-CAM layer names, their labels, and the index of ``default`` (0 without one)."""
    names = [info.name for info in layers]
    labels = {info.name: info.label for info in layers}
    return names, labels, names.index(default.name) if default is not None else 0


def attribution_panels(gray: np.ndarray, result: Any, opacity: float, outline: bool) -> list[Panel]:
    """The slice and each method's heat map over it ``(H, W, 3)``, the explained region outlined when asked."""
    shape = gray.shape
    region = resize_to(result.region.astype(np.float32), shape, mode="nearest") > 0.5

    def outlined(picture: np.ndarray) -> np.ndarray:
        return draw_mask(picture, region, TRUTH_COLOR, "contour") if outline else picture

    panels = [Panel("Scan", outlined(np.repeat(gray[..., None], 3, -1)) if outline else gray)]
    for attribution in result.attributions.values():
        heat = np.clip(resize_to(attribution.heatmap, shape), 0, 1)
        details = f"{attribution.seconds:.1f} s"
        if attribution.layer:
            details += f" · layer {attribution.layer}"
        if attribution.convergence_delta is not None:
            details += f" · completeness error {attribution.convergence_delta:.1%}"
        notes = [f"{attribution.caption} ({details})"] + ([f"ℹ️ {attribution.note}"] if attribution.note else [])
        panels.append(Panel(attribution.title, outlined(heatmap_overlay(gray, heat, opacity=opacity)), notes))
    return panels


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
