"""What a spiking model's recordings say, in words: which blocks and time steps matter on this slice.

:func:`~seg_core.explain.spikes.explain_spiking` records, per attention block and time step, the
spike rates and the attention weights. The figures show them; :func:`describe_spiking` reads the
same numbers and writes the few sentences a reader needs beside them ("most spikes in the second
block; the tumor region fires 3.1x more than the background in the third block; time step 2 carries
40% of the temporal attention"). Every number in the words is computed from the recording here and
kept in :class:`SpikingSummary`, so a test can check the words against the figures.

Temporal attention that is the same at every step (exactly 0.5 when its small MLP outputs zero, as
an untrained or collapsed module does) is said to be flat, never described as favouring a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seg_core.display_names import layer_names
from seg_core.explain.spikes import SpikingExplanation

__all__ = ["FLAT_TEMPORAL_TOLERANCE", "SPIKE_RATE_COLORSCALE", "SpikingSummary", "describe_spiking"]

#: Colour scale for spike-rate maps (plotly ``[[position, colour], ...]``, also usable as a list of
#: colours): Inferno, so a silent neuron (rate 0) is near black and only busy positions glow; start the
#: scale at rate 0 (``zmin=0``) so that "dark" always means "few spikes", whatever the map's maximum.
SPIKE_RATE_COLORSCALE: list[list[float | str]] = [
    [0.0, "#000004"],
    [0.111, "#1b0c41"],
    [0.222, "#4a0c6b"],
    [0.333, "#781c6d"],
    [0.444, "#a52c60"],
    [0.556, "#cf4446"],
    [0.667, "#ed6925"],
    [0.778, "#fb9b06"],
    [0.889, "#f7d13d"],
    [1.0, "#fcffa4"],
]

#: Temporal weights that differ by less than this between steps (in every block) are called flat.
FLAT_TEMPORAL_TOLERANCE = 1e-3


@dataclass
class SpikingSummary:
    """The spiking recording of one slice, reduced to what the words say.

    Attributes:
        sentences: the summary, one plain sentence each.
        stage_rates: per stage (``"stages.1"``), the share of its blocks' neurons firing per step.
        busiest_stage: the stage with the highest rate, or None when no neuron fired.
        tumor_ratio: per stage, spike rate inside the explained region over the rate outside it
            (None where the region or the background is empty at that stage's resolution).
        step_spike_share: share of all recorded spikes that fall at each time step, ``(T,)``.
        temporal_share: each step's share of the temporal attention, averaged over blocks, ``(T,)``;
            None for models without temporal attention.
        temporal_flat: True when the temporal attention is the same at every step in every block.
    """

    sentences: list[str]
    stage_rates: dict[str, float]
    busiest_stage: str | None
    tumor_ratio: dict[str, float | None] = field(default_factory=dict)
    step_spike_share: np.ndarray | None = None
    temporal_share: np.ndarray | None = None
    temporal_flat: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def _stage(block_name: str) -> str:
    # "stages.1.0" -> "stages.1": blocks of one stage work at one resolution on one depth of features.
    parts = block_name.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 else block_name


def _tumor_ratio(rate_map: np.ndarray, region: np.ndarray) -> float | None:
    """Mean rate inside the region over mean rate outside, on the block's grid (None if undefined)."""
    h, w = rate_map.shape
    # A position is "in the tumor" when at least half of the pixels it covers are (as in the raster).
    small = F.interpolate(torch.from_numpy(region.astype(np.float32))[None, None], size=(h, w), mode="area")[0, 0]
    inside = small.numpy() >= 0.5
    if not inside.any() or inside.all():
        return None
    outside_rate = float(rate_map[~inside].mean())
    inside_rate = float(rate_map[inside].mean())
    if outside_rate <= 0:
        return None if inside_rate <= 0 else float("inf")
    return inside_rate / outside_rate


def _percent(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 or value == 0 else f"{value:.1%}"


def describe_spiking(spiking: SpikingExplanation, region: np.ndarray | None = None) -> SpikingSummary:
    """Which blocks and time steps matter on this slice, in words and in the numbers behind them.

    Args:
        spiking: the recording of one slice (:func:`~seg_core.explain.spikes.explain_spiking`).
        region: the explained region ``(H, W)`` bool at the model's input size (the
            :class:`~seg_core.explain.SliceExplanation`'s ``region``); without it, nothing is said
            about tumor versus background.

    Returns:
        The :class:`SpikingSummary`.
    """
    steps = spiking.time_steps
    by_stage: dict[str, list] = {}
    for block in spiking.blocks:
        by_stage.setdefault(_stage(block.name), []).append(block)
    stage_rates = {stage: float(np.mean([b.step_rates.mean() for b in blocks])) for stage, blocks in by_stage.items()}
    # "first block, early features" -> "first block (early features)", to sit inside a sentence.
    names = {
        stage: words.replace(", ", " (", 1) + ")" if ", " in words else words
        for stage, words in layer_names(list(by_stage)).items()
    }
    sentences: list[str] = []

    busiest = max(stage_rates, key=stage_rates.get) if stage_rates and max(stage_rates.values()) > 0 else None
    if not spiking.blocks:
        sentences.append("This model has no spiking attention blocks to summarise.")
    elif busiest is None:
        sentences.append("No neuron of the spiking blocks fired on this slice.")
    else:
        overall = float(np.mean([b.step_rates.mean() for b in spiking.blocks]))
        sentences.append(
            f"Most spikes are in the {names[busiest]}: {_percent(stage_rates[busiest])} of its neurons fire at each "
            f"time step, against {_percent(overall)} over all spiking blocks."
        )

    ratios: dict[str, float | None] = {}
    if region is not None and np.asarray(region).any():
        for stage, blocks in by_stage.items():
            rate_map = np.mean([b.rate_maps.mean(axis=0) for b in blocks], axis=0)
            ratios[stage] = _tumor_ratio(rate_map, np.asarray(region, dtype=bool))
        finite = {s: r for s, r in ratios.items() if r is not None}
        if finite:
            stage = max(finite, key=finite.get)
            ratio = finite[stage]
            if ratio == float("inf"):
                sentences.append(f"In the {names[stage]}, only the tumor region fires; the background stays silent.")
            elif ratio >= 1.05:
                sentences.append(f"The tumor region fires {ratio:.1f}x more than the background in the {names[stage]}.")
            else:
                sentences.append(
                    f"The tumor region fires no more than the background in any block (at most {ratio:.2f}x, "
                    f"in the {names[stage]})."
                )

    step_totals = (
        np.sum([b.step_rates * b.channels * np.prod(b.size) for b in spiking.blocks], axis=0) if spiking.blocks else None
    )
    step_share = None
    if step_totals is not None and float(np.sum(step_totals)) > 0 and steps > 1:
        step_share = np.asarray(step_totals, dtype=np.float64) / float(np.sum(step_totals))
        top = int(np.argmax(step_share))
        sentences.append(
            f"Time step {top + 1} of {steps} holds the most spikes ({_percent(step_share[top])} of them; "
            f"an even spread would be {_percent(1 / steps)})."
        )

    attended = [b for b in spiking.blocks if b.temporal is not None]
    temporal_share, flat = None, False
    if steps == 1 and spiking.blocks:
        sentences.append("This model runs a single time step per slice, so no step can matter more than another.")
    elif not attended:
        if spiking.blocks:
            sentences.append("This model has no temporal attention: every time step counts the same.")
    else:
        weights = np.stack([b.temporal for b in attended]).astype(np.float64)  # (blocks, T)
        flat = bool(np.all(weights.max(axis=1) - weights.min(axis=1) < FLAT_TEMPORAL_TOLERANCE))
        temporal_share = (weights / np.clip(weights.sum(axis=1, keepdims=True), 1e-12, None)).mean(axis=0)
        if flat:
            sentence = (
                f"Temporal attention is flat in this model: every time step gets the same weight "
                f"({float(weights.mean()):.2f}) in every block, so it does not favour any step"
            )
            silent = sum(1 for b in attended if not b.step_rates.any())
            if silent:
                # The attention weighs the block's currents, which carry nothing over time when its neurons never fire.
                sentence += (
                    f" ({silent} of its {len(attended)} blocks send no spikes at all, so there is nothing over time to weigh)"
                )
            sentences.append(sentence + ".")
        else:
            top = int(np.argmax(temporal_share))
            sentences.append(
                f"Time step {top + 1} carries {_percent(temporal_share[top])} of the temporal attention "
                f"(an even share would be {_percent(1 / steps)})."
            )
    return SpikingSummary(sentences, stage_rates, busiest, ratios, step_share, temporal_share, flat)
