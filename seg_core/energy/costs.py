"""What a profile reports: per-layer and whole-pass costs, the energy per operation, a text table.

Energy is ``dense MACs x E_MAC_PJ + SOPs x E_AC_PJ``. Horowitz (2014) gives, for 32-bit floating
point in 45 nm CMOS, 3.7 pJ per multiply and 0.9 pJ per add, hence 4.6 pJ per MAC and 0.9 pJ per
accumulate. Memory access is left out (it usually dominates on real hardware), so the figures
compare operation counts in a common unit; they do not predict a chip's power.

References:
    M. Horowitz. Computing's energy problem (and what we can do about it). IEEE ISSCC 2014,
    pp. 10-14.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["E_AC_PJ", "E_MAC_PJ", "FUNCTIONAL_ROW", "CostReport", "LayerCost", "format_table"]

#: Energy of one 32-bit floating-point multiply-accumulate in 45 nm CMOS, picojoules
#: (3.7 pJ multiply + 0.9 pJ add; Horowitz, ISSCC 2014). Change it to model other hardware.
E_MAC_PJ = 4.6
#: Energy of one 32-bit floating-point accumulate (add) in 45 nm CMOS, picojoules (Horowitz 2014).
E_AC_PJ = 0.9

FUNCTIONAL_ROW = "(functional ops)"


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
        unclassified_ops: ops that ran with no cost rule in :mod:`seg_core.energy.op_census`; their cost
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
