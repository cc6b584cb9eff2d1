"""Look inside a spiking model: record its spikes and attention maps, measure firing rates, reset it.

The spiking networks of the zoo (:mod:`seg_core.models.spiking_resnet`) keep no state between
calls, so recording is opt-in and per call site: inside ``with record(model) as rec:``, every LIF
layer of ``model`` hands its spikes, and every attention module its maps, to ``rec``. Outside the
context nothing is stored and no hook exists; each layer only checks a context variable.

Keys are the names of ``model.named_modules()``: LIF layers such as ``"stages.0.0.lif1"`` (block
``stages.0.0``, its first neuron layer) and attention modules such as ``"stages.0.0.attention"``.
Maps are at the padded resolution the network works at (sides rounded up to ``input_multiple``).

Recordings are per thread (a ``ContextVar``): a recording opened in one thread never sees calls
made by another thread on the same cached model, so the app can record one request while serving
others. A recording keeps the most recent forward pass made inside its context.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("tcsa_snn", width=16).eval()
    >>> with torch.inference_mode(), record(net) as rec:
    ...     logits = net(torch.randn(1, 1, 64, 64))
    >>> rec.spikes["stages.0.0.lif1"].shape  # (T, B, C, H, W), bool
    torch.Size([4, 1, 16, 32, 32])
    >>> rec.attention["stages.0.0.attention"]["temporal"].shape  # (B, T)
    torch.Size([1, 4])
    >>> rates = spike_rates(rec)  # {"stages.0.0.lif1": fraction of neurons firing per step, ...}
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from seg_core.models.blocks.spiking import ACTIVE_RECORDINGS, LIF, reset_state

__all__ = ["SpikeRecording", "record", "spike_rates", "reset_state", "lif_layers"]

SPIKE_STORES = ("binary", "rates", "none")


@dataclass
class SpikeRecording:
    """What one :func:`record` context captured.

    Attributes:
        spikes: LIF layer name -> spikes ``(T, B, C, H, W)`` as ``torch.bool`` (``store="binary"``),
            or firing rate per neuron ``(B, C, H, W)`` in [0, 1] (``store="rates"``), in forward order.
        attention: attention module name -> ``{"temporal": (B, T), "channel": (B, C),
            "spatial": (B, H, W)}``, weights in (0, 1); ``"temporal"`` only where the block has it.
        store: how spikes are kept: ``"binary"``, ``"rates"`` or ``"none"``.
    """

    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    attention: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    store: str = "binary"
    record_attention: bool = True
    _names: dict[nn.Module, str] = field(default_factory=dict, repr=False)

    def _receive(self, kind: str, module: nn.Module, value: Any) -> None:
        # Called by the layers of every model running in this context; keep only our model's.
        name = self._names.get(module)
        if name is None:
            return
        if kind == "spikes" and self.store != "none":
            spikes = value.detach()
            self.spikes[name] = spikes.bool() if self.store == "binary" else spikes.float().mean(dim=0)
        elif kind == "attention" and self.record_attention:
            self.attention[name] = {key: weights.detach().clone() for key, weights in value.items()}


@contextmanager
def record(
    model: nn.Module, store: Literal["binary", "rates", "none"] = "binary", attention: bool = True
) -> Iterator[SpikeRecording]:
    """Record the spikes and attention maps of ``model``'s forward passes inside the ``with`` block.

    Args:
        model: a spiking network of the zoo (any module containing :class:`LIF` layers).
        store: ``"binary"`` keeps every spike, ``(T, B, C, H, W)`` bool; ``"rates"`` keeps the
            firing rate per neuron over the time steps, ``(B, C, H, W)`` float, ``T`` times smaller;
            ``"none"`` keeps no spikes (attention maps only).
        attention: also keep the attention maps.

    Yields:
        The :class:`SpikeRecording`, filled as the model runs.
    """
    if store not in SPIKE_STORES:
        raise ValueError(f"unknown spike store {store!r}; choose one of: {', '.join(SPIKE_STORES)}")
    recording = SpikeRecording(store=store, record_attention=attention)
    recording._names = {module: name for name, module in model.named_modules()}
    token = ACTIVE_RECORDINGS.set((*ACTIVE_RECORDINGS.get(), recording))
    try:
        yield recording
    finally:
        ACTIVE_RECORDINGS.reset(token)


def spike_rates(recording: SpikeRecording) -> dict[str, float]:
    """Mean firing rate of each recorded LIF layer: spikes per neuron per time step, in [0, 1]."""
    return {name: float(spikes.float().mean()) for name, spikes in recording.spikes.items()}


def lif_layers(model: nn.Module) -> list[str]:
    """Names of the LIF layers of ``model``, in definition order (the keys a recording can hold)."""
    return [name for name, module in model.named_modules() if isinstance(module, LIF)]
