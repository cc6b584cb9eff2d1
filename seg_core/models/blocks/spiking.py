"""Spiking building blocks: a stateless snnTorch LIF neuron and temporal / channel / spatial attention.

References:
    * Leaky integrate-and-fire neurons as in snnTorch: Eshraghian et al., "Training Spiking Neural
      Networks Using Lessons From Deep Learning", Proceedings of the IEEE 111(9), 2023.
    * Temporal attention: Yao et al., "Temporal-wise Attention Spiking Neural Networks for Event
      Streams Classification", ICCV 2021.
    * Temporal-channel-spatial attention (TCSA / CSA) in spiking networks: Yao et al., "Attention
      Spiking Neural Networks", IEEE TPAMI 45(8), 2023.
    * Channel squeeze-and-excitation: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018;
      average + max pooled channel attention and the spatial attention map: Woo et al., "CBAM:
      Convolutional Block Attention Module", ECCV 2018.

Conventions: every tensor inside a spiking network is time-first, ``(T, B, C, H, W)``; convolutions
and batch norms see ``(T * B, C, H, W)`` so one kernel call covers all time steps.

Statelessness. ``snn.Leaky`` keeps the last membrane potential on the module (``self.mem``) and
overwrites it on every call, even when a membrane is passed in. A cached model shared by the app's
threads would then mix the membranes of concurrent requests, and a finished request would leave its
membrane behind. :class:`LIF` keeps snnTorch's neuron (its ``beta`` / ``threshold`` buffers, its
surrogate spike function, its ``mem_reset`` and ``fire``) but its ``forward(input_, mem)`` is a pure
function: the membrane lives in the caller's local variables for one forward pass, so one model can
serve several threads at once without a lock. :func:`reset_state` resets only the neurons of the
model it is given (``snntorch.utils.reset`` resets every neuron of the process).

Recording. Spikes and attention maps are handed to the recordings opened by
:func:`seg_core.spiking.record` through a context variable; when none is open the check costs one
``ContextVar.get`` per layer and nothing is stored.

Example:
    >>> import torch
    >>> lif = LIF()  # threshold 0.5, beta 0.25, reset to zero
    >>> lif.run(torch.full((4, 1, 1), 0.45)).flatten().tolist()  # (T, ...) currents -> spikes
    [0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import snntorch as snn
import torch
import torch.nn as nn
import torch.nn.functional as F
from snntorch import surrogate as snn_surrogate

__all__ = [
    "SURROGATES",
    "make_surrogate",
    "LIF",
    "reset_state",
    "TemporalAttention",
    "ChannelAttention",
    "SpatialAttention",
    "SpikingAttention",
    "time_distributed",
]


# --------------------------------------------------------------------------------------------------
# Surrogate gradients, named so that a config.json can hold them


class _Rectangular(torch.autograd.Function):
    """Heaviside step forward; a box of height ``slope`` and width ``1 / slope`` backward."""

    @staticmethod
    def forward(ctx: Any, input_: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(input_)
        ctx.slope = slope
        return (input_ > 0).to(input_.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (input_,) = ctx.saved_tensors
        # Unit area: the gradient of the step is spread evenly over |U - U_thr| < 1 / (2 slope).
        window = (input_.abs() < 0.5 / ctx.slope).to(grad_output.dtype)
        return grad_output * window * ctx.slope, None


def _rectangular(slope: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    def inner(x: torch.Tensor) -> torch.Tensor:
        return _Rectangular.apply(x, slope)

    return inner


SURROGATES: dict[str, Callable[[float], Callable[[torch.Tensor], torch.Tensor]]] = {
    # The seed projects' "approximate firing function": box of half-width 0.5 and height 1 (slope 1).
    "rectangular": _rectangular,
    # SuperSpike (Zenke & Ganguli 2018): dS/dU ~ 1 / (1 + slope |U - U_thr|)^2; snnTorch's default slope 25.
    "fast_sigmoid": lambda slope: snn_surrogate.fast_sigmoid(slope=slope),
    "sigmoid": lambda slope: snn_surrogate.sigmoid(slope=slope),
    "atan": lambda slope: snn_surrogate.atan(alpha=slope),
}


def make_surrogate(name: str, slope: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The spike function ``Heaviside(U - U_thr)`` whose gradient is surrogate ``name`` of ``slope``.

    Stored as a name and a number (not a closure) so a model config survives ``config.json``.
    """
    try:
        factory = SURROGATES[name]
    except KeyError:
        raise ValueError(f"unknown surrogate gradient {name!r}; choose one of: {', '.join(SURROGATES)}") from None
    if not slope > 0:
        raise ValueError(f"surrogate slope must be positive, got {slope}")
    return factory(float(slope))


# --------------------------------------------------------------------------------------------------
# Recording hand-off (the public API is seg_core.spiking.record)

# Recordings open in the current context. A tuple so nested ``record`` calls each see their model;
# a ContextVar so a recording opened in one thread never sees another thread's calls.
ACTIVE_RECORDINGS: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("seg_core_spike_recordings", default=())


def _hand_to_recordings(kind: str, module: nn.Module, value: Any) -> None:
    for recording in ACTIVE_RECORDINGS.get():
        recording._receive(kind, module, value)


# --------------------------------------------------------------------------------------------------
# The neuron


class LIF(snn.Leaky):
    r"""First-order leaky integrate-and-fire neuron (snnTorch ``Leaky``) without hidden state.

    Input is a current injection :math:`I[t]`; the membrane decays by :math:`\beta` each step and is
    set to zero after a spike (``reset_mechanism="zero"``):

    .. math::

        U[t] = \beta\,(1 - S[t-1])\,U[t-1] + I[t], \qquad S[t] = \Theta(U[t] - U_{\rm thr})

    with :math:`U[0] = 0` at the start of every forward pass. :math:`\Theta` is the Heaviside step
    forward; backward it is replaced by the named surrogate gradient. The reset term is detached,
    as in snnTorch. Same update and the same results as ``snn.Leaky(beta, threshold,
    reset_mechanism=...)`` called with explicit membranes (the tests check it), but nothing is
    written to the module: ``forward(input_, mem) -> (spk, mem)`` is a pure function.

    Defaults follow the seed projects: :math:`U_{\rm thr} = 0.5`, :math:`\beta = 0.25`, hard reset,
    rectangular surrogate of half-width 0.5.

    Args:
        threshold: firing threshold :math:`U_{\rm thr}`.
        beta: membrane decay per time step, in [0, 1].
        reset_mechanism: ``"zero"`` (hard reset), ``"subtract"`` or ``"none"`` (snnTorch's names).
        surrogate: surrogate gradient name, one of :data:`SURROGATES`.
        slope: sharpness of the surrogate (for ``rectangular`` the box is ``1 / slope`` wide).
    """

    def __init__(
        self,
        threshold: float = 0.5,
        beta: float = 0.25,
        reset_mechanism: str = "zero",
        surrogate: str = "rectangular",
        slope: float = 1.0,
    ) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta (membrane decay) must lie in [0, 1], got {beta}")
        if reset_mechanism not in snn.SpikingNeuron.reset_dict:
            raise ValueError(
                f"unknown reset_mechanism {reset_mechanism!r}; choose one of: {', '.join(snn.SpikingNeuron.reset_dict)}"
            )
        super().__init__(
            beta=beta,
            threshold=threshold,
            spike_grad=make_surrogate(surrogate, slope),
            init_hidden=False,
            reset_mechanism=reset_mechanism,
        )
        # snnTorch appends every neuron to a process-wide list used by snntorch.utils.reset. Our
        # neurons hold no state to reset, and the list would keep every model ever built (and
        # dropped from the app's cache) alive for the life of the process.
        instances = snn.SpikingNeuron.instances
        for index in range(len(instances) - 1, -1, -1):
            if instances[index] is self:
                del instances[index]
        self.surrogate_name = surrogate
        self.slope = float(slope)

    def forward(self, input_: torch.Tensor, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``input_`` current and ``mem`` membrane -> ``(spikes, new membrane)``."""
        # snnTorch's reset_delay=True semantics: a neuron that spiked at t-1 is reset at the start of t.
        reset = self.mem_reset(mem)
        beta = self.beta.clamp(0, 1)
        # The name rather than the reset_mechanism_val buffer: reading a tensor would sync a GPU.
        if self.reset_mechanism == "zero":
            mem = beta * (1 - reset) * mem + input_
        elif self.reset_mechanism == "subtract":
            mem = beta * mem + input_ - reset * self.threshold
        else:  # "none"
            mem = beta * mem + input_
        return self.fire(mem), mem

    def run(self, currents: torch.Tensor) -> torch.Tensor:
        """Spikes ``(T, B, ...)`` for input currents ``(T, B, ...)``, starting from rest."""
        mem = torch.zeros_like(currents[0])
        spikes = []
        for current in currents:
            spike, mem = self(current, mem)
            spikes.append(spike)
        spikes = torch.stack(spikes)
        if ACTIVE_RECORDINGS.get():
            _hand_to_recordings("spikes", self, spikes)
        return spikes

    def extra_repr(self) -> str:
        return (
            f"threshold={float(self.threshold):g}, beta={float(self.beta):g}, reset={self.reset_mechanism}, "
            f"surrogate={self.surrogate_name}(slope={self.slope:g})"
        )


def reset_state(model: nn.Module) -> nn.Module:
    """Reset the hidden state of the snnTorch neurons inside ``model`` only; returns ``model``.

    Our :class:`LIF` keeps no state, so this is a safety net for stock snnTorch neurons a model may
    contain. Unlike ``snntorch.utils.reset`` it never touches neurons of other models in the process.
    """
    for module in model.modules():
        if isinstance(module, snn.SpikingNeuron) and hasattr(module, "reset_mem"):
            module.reset_mem()
    return model


def time_distributed(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a per-image ``layer`` to every time step of ``x`` ``(T, B, ...)`` in one call on ``(T * B, ...)``."""
    return layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])


# --------------------------------------------------------------------------------------------------
# Attention


class TemporalAttention(nn.Module):
    """Temporal attention (TA-SNN, Yao et al. 2021): one weight in (0, 1) per time step and sample.

    Each time step's tensor ``(C, H, W)`` is squeezed to a scalar by average and by max pooling;
    a shared two-layer MLP over the ``T`` scalars and a sigmoid give the weights.

    The MLP's hidden activation is a leaky ReLU, not TA-SNN's ReLU: its hidden layer has only
    ``T // ratio`` units without biases, and the squeezed inputs are all positive, so one unlucky
    step can drive every unit negative for every input. With a plain ReLU the module then outputs
    exactly 0.5 forever and gets no gradient to recover (it happened to one block of the first
    trained TCSA-SNN at T = 4); the leak keeps a gradient flowing.

    Args:
        time_steps: ``T``; the MLP's size depends on it.
        ratio: reduction of the MLP's hidden layer (``T // ratio``, at least 1).

    Shapes: ``(T, B, C, H, W)`` -> weights ``(B, T)``.
    """

    def __init__(self, time_steps: int, ratio: int = 4) -> None:
        super().__init__()
        self.time_steps = time_steps
        hidden = max(time_steps // ratio, 1)
        self.mlp = nn.Sequential(
            nn.Linear(time_steps, hidden, bias=False), nn.LeakyReLU(0.1), nn.Linear(hidden, time_steps, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.time_steps:
            raise ValueError(f"temporal attention was built for {self.time_steps} time steps, got {x.shape[0]}")
        squeezed_avg = x.mean(dim=(2, 3, 4)).t()  # (B, T)
        squeezed_max = x.amax(dim=(2, 3, 4)).t()
        return torch.sigmoid(self.mlp(squeezed_avg) + self.mlp(squeezed_max))


class ChannelAttention(nn.Module):
    """Channel attention (SE / CBAM): one weight in (0, 1) per channel and sample.

    Average and max pooling over time and space give two ``C``-vectors; a shared MLP
    ``C -> C // ratio -> C`` (no biases) and a sigmoid of their sum give the weights, shared by
    every time step.

    Shapes: ``(T, B, C, H, W)`` -> weights ``(B, C)``.
    """

    def __init__(self, channels: int, ratio: int = 8) -> None:
        super().__init__()
        hidden = max(channels // ratio, 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled_avg = x.mean(dim=(0, 3, 4))  # (B, C)
        pooled_max = x.amax(dim=(0, 3, 4))
        return torch.sigmoid(self.mlp(pooled_avg) + self.mlp(pooled_max))


class SpatialAttention(nn.Module):
    """Spatial attention (CBAM): one weight in (0, 1) per position and sample.

    The mean and the max over time steps and channels give two maps; a ``kernel_size`` convolution
    (2 -> 1, no bias) and a sigmoid give the weights, shared by every time step and channel.

    Shapes: ``(T, B, C, H, W)`` -> weights ``(B, H, W)``.
    """

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial attention needs an odd kernel size, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.stack([x.mean(dim=(0, 2)), x.amax(dim=(0, 2))], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(maps)).squeeze(1)


class SpikingAttention(nn.Module):
    """Attention of the seed's TCSA / CSA blocks: ``ReLU(SA * (CA * (TA * x)))``.

    Temporal attention reweights time steps, then channel attention reweights channels, then spatial
    attention reweights positions, each computed from the output of the previous one (Yao et al.
    2023). The final ReLU keeps the seed's behaviour: the block adds only non-negative current to
    its shortcut.

    Args:
        channels: ``C`` of the attended tensor.
        time_steps: ``T``; needed only with temporal attention.
        temporal: add temporal attention (TCSA) or not (CSA).
        channel_ratio: reduction of the channel MLP.
        temporal_ratio: reduction of the temporal MLP.
        spatial_kernel: kernel size of the spatial attention convolution.

    Shapes: ``(T, B, C, H, W)`` -> ``(T, B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        time_steps: int = 1,
        temporal: bool = False,
        channel_ratio: int = 8,
        temporal_ratio: int = 4,
        spatial_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.temporal = TemporalAttention(time_steps, temporal_ratio) if temporal else None
        self.channel = ChannelAttention(channels, channel_ratio)
        self.spatial = SpatialAttention(spatial_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps: dict[str, torch.Tensor] = {}
        if self.temporal is not None:
            maps["temporal"] = self.temporal(x)
            x = x * maps["temporal"].t()[:, :, None, None, None]
        maps["channel"] = self.channel(x)
        x = x * maps["channel"][None, :, :, None, None]
        maps["spatial"] = self.spatial(x)
        x = x * maps["spatial"][None, :, None]
        if ACTIVE_RECORDINGS.get():
            _hand_to_recordings("attention", self, maps)
        return F.relu(x)
