"""Profiling a model: one counted forward pass, the CPU latency, and the :class:`CostReport`."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, Unpack

import torch
import torch.nn as nn

from seg_core.energy.costs import FUNCTIONAL_ROW, CostReport, LayerCost
from seg_core.energy.counting import COUNTED_LAYERS, _Recorder, _reset_neurons, _spike_ones
from seg_core.energy.op_census import OpCensus
from seg_core.energy.phantom import phantom_sample

if TYPE_CHECKING:
    from seg_core.models import ModelSpec

__all__ = ["MeasureOptions", "measure_latency", "profile", "profile_model"]

logger = logging.getLogger(__name__)


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


class MeasureOptions(TypedDict, total=False):
    """What :func:`profile` passes on to :func:`profile_model` as given (see there)."""

    sample: torch.Tensor | None
    repeats: int
    warmup: int
    threads: int | None
    e_mac_pj: float | None
    e_ac_pj: float | None


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
        e_mac_pj: energy per dense MAC, picojoules; default ``seg_core.energy.E_MAC_PJ`` (read at call time).
        e_ac_pj: energy per synaptic operation, picojoules; default ``seg_core.energy.E_AC_PJ``.
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
    e_mac_pj, e_ac_pj = _energy_per_operation(e_mac_pj, e_ac_pj)
    sample, sample_kind = _profiling_sample(input_shape, sample, spiking, modalities, normalization)
    work = _working_copy(model)
    first = next(work.parameters(), None)
    sample = sample.detach().to("cpu", first.dtype if first is not None and first.is_floating_point() else torch.float32)
    layers, census = _counted_pass(work, sample, spiking is not False, e_mac_pj, e_ac_pj)
    if spiking and not any(layer.sops or layer.input_spike_rate is not None for layer in layers):
        logger.warning("%s is declared spiking but no layer received binary (spike) inputs", name or type(model).__name__)
    latency = measure_latency(work, sample, repeats=repeats, warmup=warmup, threads=threads) if repeats > 0 else []
    return CostReport(
        model=name or type(model).__name__,
        input_shape=tuple(sample.shape),
        spiking=spiking is not False and any(layer.input_spike_rate is not None for layer in layers),
        time_steps=time_steps,
        params=sum(p.numel() for p in model.parameters()),
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


def _energy_per_operation(e_mac_pj: float | None, e_ac_pj: float | None) -> tuple[float, float]:
    """The energies given, else the package's ``E_MAC_PJ`` and ``E_AC_PJ`` as they are now.

    Read from ``seg_core.energy`` at call time, so that setting ``seg_core.energy.E_MAC_PJ``
    models other hardware for every later profile.
    """
    import seg_core.energy as package

    return (
        package.E_MAC_PJ if e_mac_pj is None else float(e_mac_pj),
        package.E_AC_PJ if e_ac_pj is None else float(e_ac_pj),
    )


def _profiling_sample(
    input_shape: Sequence[int] | None,
    sample: torch.Tensor | None,
    spiking: bool | None,
    modalities: Sequence[str] | None,
    normalization: dict[str, Any] | None,
) -> tuple[torch.Tensor, str]:
    """The input to profile on and what it is: ``(sample, "phantom" | "user sample")``."""
    if sample is None:
        return phantom_sample(input_shape or (1, 1, 256, 256), modalities, normalization), "phantom"
    if input_shape is not None and tuple(input_shape) != tuple(sample.shape):
        raise ValueError(f"input_shape {tuple(input_shape)} differs from sample shape {tuple(sample.shape)}")
    if spiking is not False and _spike_ones(sample) is not None:
        logger.warning("the sample is binary: the first layer will be counted as spiking, not as a dense encoder")
    return sample, "user sample"


def _working_copy(model: nn.Module) -> nn.Module:
    """A CPU copy in eval mode that hooks may touch, whoever else uses ``model``."""
    try:
        work = copy.deepcopy(model)
    except Exception as error:  # noqa: BLE001 - e.g. a module holding a lock or a file
        raise TypeError(f"cannot profile {type(model).__name__}: it cannot be deep-copied ({error})") from error
    return work.to("cpu").eval()


def _counted_pass(
    model: nn.Module, sample: torch.Tensor, detect_spikes: bool, e_mac_pj: float, e_ac_pj: float
) -> tuple[list[LayerCost], OpCensus]:
    """One forward pass, counted: a row per counted layer, a last row for functional ops, and the census.

    ``no_grad`` rather than ``inference_mode``: only then do composite ops (``conv2d``, ``cdist``)
    reach the census decomposed into the ops its rules know.
    """
    recorder = _Recorder(model, detect_spikes=detect_spikes)
    try:
        _reset_neurons(model)
        with torch.no_grad(), OpCensus() as census:
            model(sample)
    finally:
        recorder.remove()
    if census.unclassified:
        logger.warning("ops without a cost rule (their cost is unknown, not 0): %s", ", ".join(census.unclassified))
    layers = recorder.layer_costs(e_mac_pj, e_ac_pj)
    functional = census.macs - sum(layer.macs for layer in layers)
    if functional > 0:
        layers.append(
            LayerCost(FUNCTIONAL_ROW, "matmul/conv/cdist", 1, functional, functional, None, 0.0, functional * e_mac_pj, False)
        )
    elif functional < 0:
        logger.warning("hooked layers count %d MACs more than the op census; check custom layers", -functional)
    return layers, census


def _first_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, COUNTED_LAYERS):
            return module.in_features if isinstance(module, nn.Linear) else module.in_channels
    return 1


class _Resolved(NamedTuple):
    """A registry name or weights id, built: what :func:`profile` needs to profile it."""

    model: nn.Module
    spec: ModelSpec
    model_config: dict[str, Any]
    modalities: list[str]
    normalization: dict[str, Any] | None
    label: str
    config_label: str


def profile(
    model_or_id: str | Path | nn.Module,
    size: int | tuple[int, int] = 256,
    *,
    config: str | None = None,
    batch: int = 1,
    weights_dir: str | Path | None = None,
    **options: Unpack[MeasureOptions],
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
        weights_dir: where weights ids are looked up (default ``weights/``).
        **options: ``sample`` (a real preprocessed input ``(B, C, H, W)`` instead of the phantom),
            ``repeats``, ``warmup``, ``threads``, ``e_mac_pj``, ``e_ac_pj``: as in :func:`profile_model`.

    Returns:
        The :class:`CostReport`; spiking detection follows ``ModelSpec.spiking`` for registry
        models and weights, and is automatic for bare modules.

    Raises:
        KeyError: unknown name, listing the architectures and weights.
        ValueError: ``config`` not ``lite``/``paper``, or given for weights.
        TypeError: an option :func:`profile` does not pass on.
    """
    unknown = sorted(set(options) - set(MeasureOptions.__annotations__))
    if unknown:
        raise TypeError(
            f"profile() got unexpected keyword argument(s) {unknown}; options: {', '.join(MeasureOptions.__annotations__)}"
        )
    height, width = (size, size) if isinstance(size, int) else size
    if config not in (None, "lite", "paper"):
        raise ValueError(f"config must be 'lite' or 'paper', got {config!r}")
    given_sample = options.get("sample") is not None
    if isinstance(model_or_id, nn.Module):
        if config is not None:
            raise ValueError("config applies to registry names; a module is profiled as built")
        shape = None if given_sample else (batch, _first_in_channels(model_or_id), height, width)
        return profile_model(model_or_id, shape, **options)
    resolved = _resolve(str(model_or_id), config, weights_dir)
    spec = resolved.spec
    report = profile_model(
        resolved.model,
        None if given_sample else (batch, len(resolved.modalities), height, width),
        spiking=spec.spiking,
        name=resolved.label,
        time_steps=int(resolved.model_config.get("time_steps", spec.time_steps)) if spec.spiking else None,
        modalities=resolved.modalities,
        normalization=resolved.normalization,
        **options,
    )
    report.config = resolved.config_label
    return report


def _resolve(text: str, config: str | None, weights_dir: str | Path | None) -> _Resolved:
    """Build registry architecture ``text`` (in its lite or paper config), or load weights ``text``."""
    from seg_core.models import create_model, get_spec, list_models
    from seg_core.weights import WEIGHTS_DIR, list_weights, load_model

    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    if text in list_models():
        spec = get_spec(text)
        model_config = dict(spec.paper_config if config == "paper" else spec.lite_config)
        modalities = list(spec.default_modalities)
        model = create_model(text, **{"in_channels": len(modalities), **model_config})
        return _Resolved(model, spec, model_config, modalities, None, text, config or "lite")
    if "." in text or Path(text).is_dir():
        if config is not None:
            raise ValueError(
                f"config applies to architecture names; weights {text!r} are profiled in their trained configuration"
            )
        loaded = load_model(text, weights_dir)
        return _Resolved(
            loaded.model,
            get_spec(loaded.config["architecture"]),
            loaded.config["model_config"],
            list(loaded.config["modalities"]),
            loaded.config.get("normalization"),
            loaded.model_id,
            "weights",
        )
    raise KeyError(
        f"unknown model {text!r}; architectures: {', '.join(list_models())}; "
        f"weights: {', '.join(list_weights(weights_dir)) or 'none'}"
    )
