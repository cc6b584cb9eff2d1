"""Counting one forward pass: MACs of every counted layer call, and which calls received spikes.

Forward hooks on every :data:`COUNTED_LAYERS` module count each call's MACs from its real shapes
and check whether its input is binary (spikes); :class:`~seg_core.energy.op_census.OpCensus`
accounts for the ops that run outside such layers.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from seg_core.energy.costs import LayerCost

__all__ = ["COUNTED_LAYERS", "count_layer_macs"]

#: Layers whose multiply-accumulates are counted. Lazy variants become these once materialised.
COUNTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def count_layer_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a counted layer, from the call's real shapes.

    Convolution: every output element is a dot product over ``in_channels / groups x kernel``
    inputs. Transposed convolution: every input element is multiplied into ``out_channels /
    groups x kernel`` outputs. Linear: every output element is a dot product over
    ``in_features``. Leading dimensions (batch, time) are part of ``numel``, so ``(T*B)``
    batches count every step. Bias additions are not counted.

    Args:
        module: one of :data:`COUNTED_LAYERS`.
        inputs: the tensor the layer received.
        output: the tensor it returned.

    Returns:
        The number of MACs (an exact integer).
    """
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    kernel = math.prod(module.kernel_size)
    if module.transposed:
        return inputs.numel() * (module.out_channels // module.groups) * kernel
    return output.numel() * (module.in_channels // module.groups) * kernel


def _spike_ones(inputs: torch.Tensor) -> int | None:
    """Number of ones when every value of ``inputs`` is 0 or 1 (spikes), else ``None``."""
    from torch.utils._python_dispatch import _disable_current_modes

    if inputs.numel() == 0 or inputs.is_complex():
        return None
    # The measurement's own ops are not the model's: keep them out of the op census.
    with _disable_current_modes():
        if not bool(torch.logical_or(inputs == 0, inputs == 1).all()):
            return None
        return int(torch.count_nonzero(inputs))


@dataclass
class _Tally:
    type: str
    first_call: int = -1
    calls: int = 0
    macs: int = 0
    dense_macs: int = 0
    spike_macs: int = 0
    silent_macs: int = 0
    sops: float = 0.0
    pending: list[tuple[torch.Tensor | None, int | None]] = field(default_factory=list)


class _Recorder:
    """Forward hooks counting MACs and input spikes on every counted layer of a model."""

    def __init__(self, model: nn.Module, detect_spikes: bool) -> None:
        self.detect_spikes = detect_spikes
        self.tallies: dict[str, _Tally] = {}
        self.call_count = 0
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in model.named_modules():
            if isinstance(module, COUNTED_LAYERS):
                tally = self.tallies.setdefault(name or type(module).__name__, _Tally(type(module).__name__))
                self.handles.append(module.register_forward_pre_hook(self._before(tally), with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._after(module, tally), with_kwargs=True))

    def _before(self, tally: _Tally):
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs = args[0] if args else kwargs.get("input")
            if not isinstance(inputs, torch.Tensor):
                tally.pending.append((None, None))
                return
            # Spikes are checked before the call, in case a custom subclass edits its input.
            ones = _spike_ones(inputs) if self.detect_spikes else None
            tally.pending.append((inputs, ones))

        return hook

    def _after(self, module: nn.Module, tally: _Tally):
        def hook(module_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            inputs, ones = tally.pending.pop() if tally.pending else (None, None)
            if inputs is None or not isinstance(output, torch.Tensor):
                return
            macs = count_layer_macs(module, inputs, output)
            if tally.first_call < 0:
                tally.first_call = self.call_count
            self.call_count += 1
            tally.calls += 1
            tally.macs += macs
            if ones is None:
                tally.dense_macs += macs
            elif ones == 0:
                tally.silent_macs += macs  # classified with the layer's other calls, at the end
            else:
                tally.spike_macs += macs
                tally.sops += macs * ones / inputs.numel()

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def layer_costs(self, e_mac_pj: float, e_ac_pj: float) -> list[LayerCost]:
        """One row per layer that ran, in the order the layers first ran (the first saw the image)."""
        layers = []
        for layer_name, tally in sorted(self.tallies.items(), key=lambda item: item[1].first_call):
            if tally.calls == 0:
                continue
            # Silent (all-zero) calls join the dense part of a layer that ever saw analog input, and
            # the spiking part (zero SOPs) otherwise.
            if tally.dense_macs:
                tally.dense_macs += tally.silent_macs
            else:
                tally.spike_macs += tally.silent_macs
            layers.append(
                LayerCost(
                    name=layer_name,
                    type=tally.type,
                    calls=tally.calls,
                    macs=tally.macs,
                    dense_macs=tally.dense_macs,
                    input_spike_rate=tally.sops / tally.spike_macs if tally.spike_macs else None,
                    sops=tally.sops,
                    energy_pj=tally.dense_macs * e_mac_pj + tally.sops * e_ac_pj,
                    spiking=tally.dense_macs == 0 and tally.spike_macs > 0,
                )
            )
        return layers


def _reset_neurons(model: nn.Module) -> None:
    # snnTorch neurons created with init_hidden keep the last membrane on the module; a stale
    # membrane from earlier use would change the measured rates. Reset only this model's
    # neurons (snntorch.utils.reset would reset every neuron in the process).
    try:
        from snntorch import SpikingNeuron
    except ImportError:  # no snnTorch: no snnTorch neurons to reset
        return
    for module in model.modules():
        if isinstance(module, SpikingNeuron) and hasattr(module, "reset_mem"):
            # A neuron that has not run yet may have no state to reset.
            with contextlib.suppress(AttributeError, RuntimeError):
                module.reset_mem()
