"""Compute cost of every architecture of the zoo: parameters, MACs, SOPs, energy, CPU latency.

Run: ``python benchmarks/models.py [--size 256] [--repeats 5] [--threads 2] [--models unet,...]
[--paper] [--json]``.

One row per model and configuration (``lite``; also ``paper`` with ``--paper``), for one
``size x size`` slice of the synthetic head phantom (:func:`seg_core.energy.phantom_sample`),
counted by :func:`seg_core.energy.profile`: dense MACs at 4.6 pJ and synaptic operations at
0.9 pJ (45 nm CMOS, Horowitz ISSCC 2014), first layer of spiking models dense (direct
encoding). The latency is the median of ``--repeats`` CPU runs after one warm-up. The ratio
columns divide energy and median latency by those of ``unet`` in the same configuration, which
is therefore always profiled.

Spike rates, hence SOPs, depend on the weights: the architecture rows are randomly initialised
networks (kind ``snn``, rates ``init``), so their SOPs are not those of a trained model. With
``--weights`` the shipped trained weights are profiled too (rates ``trained``, their own input
channels and normalisation), and their ratios are to ``unet.*`` weights when one is shipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seg_core.energy import E_AC_PJ, E_MAC_PJ, CostReport, profile  # noqa: E402
from seg_core.models import get_spec, list_models  # noqa: E402
from seg_core.weights import list_weights  # noqa: E402

REFERENCE = "unet"


def run(models: list[str], configs: list[str], size: int, repeats: int, threads: int) -> dict[tuple[str, str], CostReport | str]:
    """Profile each model in each configuration (``"weights"``: ``models`` are weights ids).

    A failure is kept as its message, not raised, so one broken model does not hide the others.
    """
    results: dict[tuple[str, str], CostReport | str] = {}
    for config in configs:
        for name in models:
            try:
                options = {} if config == "weights" else {"config": config}
                results[name, config] = profile(name, size=size, repeats=repeats, threads=threads, **options)
            except Exception as error:  # noqa: BLE001 - one broken model must not hide the others' rows
                results[name, config] = f"{type(error).__name__}: {error}"
    return results


def reference_for(name: str, config: str, results: dict[tuple[str, str], CostReport | str]) -> CostReport | None:
    """The unet row to divide by: same configuration, or for weights the first shipped ``unet.*``."""
    if config == "weights":
        keys = [key for key in results if key[1] == "weights" and key[0].split(".")[0] == REFERENCE]
    else:
        keys = [(REFERENCE, config)]
    found = results.get(keys[0]) if keys else None
    return found if isinstance(found, CostReport) else None


def ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value is not None and reference else "-"


def format_rows(results: dict[tuple[str, str], CostReport | str]) -> str:
    lines = [
        f"{'model':<22}{'config':<8}{'kind':<10}{'rates':<8}{'params M':>9}{'MACs G':>9}{'SOPs G':>9}{'energy uJ':>11}"
        f"{'median ms':>11}{'E/unet':>8}{'t/unet':>8}"
    ]
    for (name, config), report in results.items():
        if isinstance(report, str):
            lines.append(f"{name:<22}{config:<8}error: {report}")
            continue
        reference = reference_for(name, config, results)
        rates = "-" if not report.spiking else ("trained" if config == "weights" else "init")
        kind = f"snn T={report.time_steps}" if report.time_steps else ("snn" if report.spiking else "ann")
        latency = f"{report.latency_ms:.1f}" if report.latency_ms is not None else "-"
        lines.append(
            f"{name:<22}{config:<8}{kind:<10}{rates:<8}{report.params / 1e6:>9.2f}{report.macs / 1e9:>9.2f}{report.sops / 1e9:>9.3f}"
            f"{report.energy_uj:>11.1f}{latency:>11}"
            f"{ratio(report.energy_uj, reference and reference.energy_uj):>8}"
            f"{ratio(report.latency_ms, reference and reference.latency_ms):>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="slice side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--models", default="", help="comma-separated subset of the registry (default all)")
    parser.add_argument("--paper", action="store_true", help="also profile the paper-size configurations (slow)")
    parser.add_argument("--weights", action="store_true", help="also profile the shipped trained weights")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args()
    available = list_models()
    models = [m.strip() for m in args.models.split(",") if m.strip()] or available
    unknown = sorted(set(models) - set(available))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(available)}")
    if REFERENCE not in models:
        models.insert(0, REFERENCE)  # the ratio columns need it
    configs = ["lite", "paper"] if args.paper else ["lite"]
    results = run(models, configs, args.size, args.repeats, args.threads)
    if args.weights:
        shipped = [w for w in list_weights() if w.split(".")[0] in models]
        results.update(run(shipped, ["weights"], args.size, args.repeats, args.threads))
    if args.json:
        payload = [
            {"model": name, "config": config, **({"error": r} if isinstance(r, str) else r.to_dict())}
            for (name, config), r in results.items()
        ]
        print(json.dumps(payload, indent=2, allow_nan=False))
        return
    print(
        f"one {args.size}x{args.size} phantom slice, batch 1, {args.threads} threads, torch {torch.__version__}; "
        f"energy {E_MAC_PJ} pJ/MAC, {E_AC_PJ} pJ/SOP (Horowitz 2014), spiking first layer dense"
    )
    print(format_rows(results))
    spiking = [name for name in models if get_spec(name).spiking]
    if spiking:
        print(
            f"spiking models: {', '.join(spiking)}; SOPs measured on the phantom: they depend on the input, and "
            "on the weights ('init' rows are untrained; use --weights for trained rates)"
        )


if __name__ == "__main__":
    main()
