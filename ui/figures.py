"""Plotly figures for the pages. Data come from seg_core; these functions only draw them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from seg_core.explain import METHOD_INFO, SPIKE_RATE_COLORSCALE, DeletionCurve, SpikeRaster

COLORS = ["#e4572e", "#17bebb", "#ffc914", "#76b041", "#7b5ea7", "#2e86ab"]
SMALL = {"margin": {"l": 10, "r": 10, "t": 36, "b": 10}}


def deletion_figure(curves: dict[str, DeletionCurve], measure: str = "dice") -> go.Figure:
    """Deletion curves: the prediction's Dice (or its tumor probability) as the most salient pixels are removed, against random order."""
    figure = go.Figure()
    for index, (method, curve) in enumerate(curves.items()):
        percent = curve.fractions * 100
        values = curve.dice if measure == "dice" else curve.probability
        area = curve.auc_dice if measure == "dice" else curve.auc_probability
        if method == "random":
            name = f"random order (area {area:.2f})"
            if curve.spread is not None and measure == "dice":
                upper, lower = curve.dice + curve.spread, curve.dice - curve.spread
                figure.add_trace(
                    go.Scatter(
                        x=np.concatenate([percent, percent[::-1]]),
                        y=np.concatenate([upper, lower[::-1]]),
                        fill="toself",
                        fillcolor="rgba(120,120,120,0.18)",
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                    )
                )
            figure.add_trace(go.Scatter(x=percent, y=values, name=name, line={"color": "#777", "dash": "dash"}))
        else:
            title = METHOD_INFO.get(method, {}).get("title", method)
            figure.add_trace(
                go.Scatter(
                    x=percent,
                    y=values,
                    name=f"{title} (area {area:.2f})",
                    mode="lines+markers",
                    line={"color": COLORS[index % len(COLORS)]},
                )
            )
    figure.update_layout(
        title="Deletion curves: lower and faster-falling = more faithful",
        xaxis_title="pixels deleted, most salient first (% of the slice)",
        yaxis_title="Dice with the original prediction" if measure == "dice" else "mean tumor probability in the region",
        yaxis_range=[0, 1.05],
        height=360,
        legend={"orientation": "h", "y": -0.25},
        **SMALL,
    )
    return figure


def raster_figure(raster: SpikeRaster, step: int | None = None) -> go.Figure:
    """Spike raster: one row per sampled neuron, one column per time step, a mark per spike."""
    figure = go.Figure()
    steps = raster.spikes.shape[1] if raster.spikes.ndim == 2 else 1
    for inside, name, color in ((True, "inside the predicted tumor", "#e4572e"), (False, "outside", "#2e86ab")):
        rows, cols = np.nonzero(raster.spikes & (raster.in_tumor[:, None] == inside))
        figure.add_trace(
            go.Scatter(
                x=cols,
                y=rows,
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 14, "line": {"width": 3, "color": color}, "color": color},
                name=f"spike, neuron {name}",
                text=[raster.labels[r] for r in rows],
                hovertemplate="%{text}<br>time step %{x}<extra></extra>",
            )
        )
    if step is not None:
        figure.add_vrect(x0=step - 0.5, x1=step + 0.5, fillcolor="rgba(255,200,0,0.2)", line_width=0)
    figure.update_layout(
        title=f"Spike raster: {len(raster.labels)} sampled neurons, {raster.fired_fraction:.0%} fired at least once",
        xaxis={"title": "time step", "tickmode": "linear", "range": [-0.5, steps - 0.5]},
        yaxis={"title": "neuron", "range": [-1, max(len(raster.labels), 1)], "autorange": "reversed"},
        height=420,
        legend={"orientation": "h", "y": -0.2},
        **SMALL,
    )
    return figure


def rate_matrix_figure(matrix: np.ndarray, labels: Sequence[str], step: int | None = None) -> go.Figure:
    """Firing rate of every block at every time step: activity over depth and time."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=[f"t={t}" for t in range(matrix.shape[1])],
            y=list(labels),
            colorscale=SPIKE_RATE_COLORSCALE,
            zmin=0,
            colorbar={"title": "share firing<br>(dark = silent)"},
            hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>",
        )
    )
    if step is not None:
        figure.add_vrect(x0=step - 0.5, x1=step + 0.5, line_color="#ffc914", line_width=2)
    figure.update_layout(
        title="Share of neurons firing, per block and time step", height=420, yaxis={"autorange": "reversed"}, **SMALL
    )
    return figure


def bars_figure(
    values: Sequence[float], title: str, x_title: str, highlight: int | None = None, y_range: tuple[float, float] = (0, 1)
) -> go.Figure:
    values = np.asarray(values, dtype=float)
    colors = ["#ffc914" if i == highlight else "#17bebb" for i in range(len(values))]
    figure = go.Figure(
        go.Bar(
            x=np.arange(len(values)), y=values, marker_color=colors, hovertemplate=f"{x_title} %{{x}}: %{{y:.3f}}<extra></extra>"
        )
    )
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_range=list(y_range), height=230, **SMALL)
    return figure


def animated_maps(maps: np.ndarray, title: str, zmax: float | None = None) -> go.Figure:
    """A map per time step ``(T, h, w)`` with a play button and a step slider (plotly animation)."""
    maps = np.asarray(maps, dtype=float)
    top = float(zmax if zmax is not None else max(maps.max(), 1e-6))
    heat = {
        "colorscale": SPIKE_RATE_COLORSCALE,
        "zmin": 0,
        "zmax": top,
        "showscale": True,
        "colorbar": {"title": "dark = silent"},
    }
    figure = go.Figure(
        data=[go.Heatmap(z=maps[0], **heat)],
        frames=[go.Frame(data=[go.Heatmap(z=m, **heat)], name=str(t)) for t, m in enumerate(maps)],
    )
    steps = [
        {
            "args": [[str(t)], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
            "label": str(t),
            "method": "animate",
        }
        for t in range(len(maps))
    ]
    figure.update_layout(
        title=title,
        height=380,
        yaxis={"autorange": "reversed", "scaleanchor": "x", "showticklabels": False},
        xaxis={"showticklabels": False},
        updatemenus=[
            {
                "type": "buttons",
                "showactive": False,
                "x": 0,
                "y": -0.05,
                "buttons": [
                    {
                        "label": "▶ play",
                        "method": "animate",
                        "args": [None, {"frame": {"duration": 600, "redraw": True}, "fromcurrent": True}],
                    }
                ],
            }
        ],
        sliders=[{"steps": steps, "currentvalue": {"prefix": "time step "}, "x": 0.15, "len": 0.85, "y": -0.02}]
        if len(maps) > 1
        else [],
        **SMALL,
    )
    return figure


def pairwise_figure(names: Sequence[str], matrix: np.ndarray) -> go.Figure:
    """Dice between every two models' masks: how much they agree."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(names),
            y=list(names),
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            text=np.round(matrix, 2),
            texttemplate="%{text}",
        )
    )
    figure.update_layout(
        title="Agreement between models (Dice of their masks)", height=320, yaxis={"autorange": "reversed"}, **SMALL
    )
    return figure


def cost_figure(table: pd.DataFrame) -> go.Figure:
    """Estimated energy and latency per model, side by side (``model``, ``energy_mj``, ``latency_ms`` columns)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("estimated energy per slice (mJ)", "latency per slice (ms)"))
    figure.add_trace(go.Bar(x=table["model"], y=table["energy_mj"], marker_color=COLORS[0], name="energy"), row=1, col=1)
    figure.add_trace(go.Bar(x=table["model"], y=table["latency_ms"], marker_color=COLORS[1], name="latency"), row=1, col=2)
    figure.update_layout(height=320, showlegend=False, **SMALL)
    return figure


AXIS_TITLES = {"energy_mj": "estimated energy per slice (mJ, log scale)", "latency_ms": "CPU latency per slice (ms, log scale)"}


def pareto_figure(rows: list[dict[str, Any]], cost: str = "energy_mj", figure_label: str = "test Dice") -> go.Figure:
    """The rows' primary figure against a cost (``energy_mj`` or ``latency_ms``, log scale), the Pareto front joined."""
    points = [row for row in rows if row.get("primary_mean") is not None and row.get(cost)]
    figure = go.Figure()
    for spiking, name, color in ((False, "conventional", COLORS[1]), (True, "spiking", COLORS[0])):
        chosen = [row for row in points if bool(row.get("spiking")) == spiking]
        if chosen:
            figure.add_trace(
                go.Scatter(
                    x=[row[cost] for row in chosen],
                    y=[row["primary_mean"] for row in chosen],
                    mode="markers+text",
                    text=[row["id"] for row in chosen],
                    textposition="top center",
                    marker={"size": 12, "color": color},
                    name=name,
                    hovertemplate="%{text}<br>%{x:.3g}<br>%{y:.3f}<extra></extra>",
                )
            )
    front, best = [], -1.0
    for row in sorted(points, key=lambda r: r[cost]):
        if row["primary_mean"] > best:
            front.append(row)
            best = row["primary_mean"]
    if len(front) > 1:
        figure.add_trace(
            go.Scatter(
                x=[row[cost] for row in front],
                y=[row["primary_mean"] for row in front],
                mode="lines",
                line={"dash": "dot", "color": "#555"},
                name="Pareto front",
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        title=f"{figure_label} against {'energy' if cost == 'energy_mj' else 'latency'}",
        xaxis={"title": AXIS_TITLES[cost], "type": "log"},
        yaxis={"title": f"{figure_label} (test)"},
        height=380,
        **SMALL,
    )
    return figure
