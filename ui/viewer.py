"""A slice view that goes to the tumor: where the slice slider starts after each run, and the clickable strip.

The rule (issue 20): after each run (a new scan, model or post-processing), the slider moves to the
slice with the largest tumor cross-section of that run's mask, unless the user has moved the slider
since the app last placed it; a new scan always starts on its tumor. Clicking a bar of the per-slice
strip jumps there (a plotly selection event, ``st.plotly_chart(on_select=...)``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from seg_core.visualize import default_slice


def _placed_key(slider_key: str) -> str:
    return f"{slider_key}__placed"


def follow_tumor(slider_key: str, scan_key: str, run: Hashable, per_slice: Sequence[float]) -> int:
    """Set the slider keyed ``slider_key`` (created next, without ``value=``) to the run's tumor slice when due.

    Args:
        slider_key: the slice slider's widget key.
        scan_key: the scan's hash; a new scan always goes to its tumor (its slice count may differ).
        run: what identifies the run shown (model, settings ...): a new run moves the slider too,
            unless the user moved it since the app placed it.
        per_slice: tumor per slice of the run's mask (the largest one is the target).

    Returns:
        The target slice (the largest tumor cross-section, the middle slice without tumor).
    """
    target = default_slice(per_slice)
    placed = st.session_state.get(_placed_key(slider_key))  # (scan, run, slice) the app last set
    current = st.session_state.get(slider_key)
    moved_by_user = placed is not None and current is not None and current != placed[2]
    new_scan = placed is None or placed[0] != scan_key
    new_run = placed is None or placed[1] != run
    lost = current is None or not 0 <= current < len(per_slice)  # the widget's state was dropped, or out of range
    if new_scan or lost or (new_run and not moved_by_user):
        st.session_state[slider_key] = target
        st.session_state[_placed_key(slider_key)] = (scan_key, run, target)
    return target


def go_to_slice(slider_key: str, index: int) -> None:
    """Move the slider to ``index`` as the user's own choice (a button or the strip)."""
    st.session_state[slider_key] = int(index)


def _jump_from_strip(strip_key: str, slider_key: str, count: int) -> None:
    event = st.session_state.get(strip_key)
    points = list(event.selection.points) if event is not None else []
    if points:
        point = points[0]
        index = point.get("x", point.get("point_index"))
        if index is not None and 0 <= int(index) < count:
            go_to_slice(slider_key, int(index))


def presence_strip(values: Sequence[float], current: int, unit: str, plane: str) -> go.Figure:
    """Tumor per slice as bars, the slice on screen marked: where along the volume the tumor is (click to jump)."""
    values = np.asarray(values, dtype=float)
    colors = ["#e4572e" if v > 0 else "#d0d0d0" for v in values]
    slices = list(range(len(values)))  # plain lists, not arrays (which plotly encodes as base64): readable in tests
    top = float(values.max()) if len(values) and values.max() > 0 else 1.0
    figure = go.Figure(
        [
            # A faint full-height column per slice, so a slice without tumor (a zero-height bar) can be clicked too.
            go.Bar(
                x=slices,
                y=[top] * len(values),
                marker_color="rgba(120,120,120,0.08)",
                hovertemplate=f"{plane} slice %{{x}}<br>click to show it<extra></extra>",  # "skip" would block clicks
                name="slice",
            ),
            go.Bar(
                x=slices,
                y=values.tolist(),
                marker_color=colors,
                hovertemplate=f"{plane} slice %{{x}}: %{{y:.1f}} {unit}<br>click to show it<extra></extra>",
                name="tumor",
            ),
        ]
    )
    if len(values):
        figure.add_vline(x=current, line_width=2, line_dash="dot", line_color="#333")
    figure.update_layout(
        title=f"Tumor per {plane} slice: click a bar to show that slice (dotted line: the slice shown)",
        height=170,
        xaxis_title=f"{plane} slice",
        yaxis_title=unit,
        bargap=0.05,
        barmode="overlay",
        showlegend=False,
        clickmode="event+select",
        margin={"l": 10, "r": 10, "t": 36, "b": 10},
    )
    return figure


def clickable_strip(values: Sequence[float], current: int, unit: str, plane: str, strip_key: str, slider_key: str) -> None:
    """Draw :func:`presence_strip`; a click on a bar moves the slider keyed ``slider_key`` there."""
    st.plotly_chart(
        presence_strip(values, current, unit, plane),
        key=strip_key,
        on_select=lambda: _jump_from_strip(strip_key, slider_key, len(values)),
        selection_mode="points",
        config={"displayModeBar": False},
    )
