"""The layers Grad-CAM can explain: found by probing one forward pass, the bottleneck by default."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from seg_core.explain.inputs import check_input

__all__ = ["LayerInfo", "default_gradcam_layer", "gradcam_layers"]


@dataclass(frozen=True)
class LayerInfo:
    """A layer Grad-CAM can explain.

    Attributes:
        name: module name in ``model.named_modules()``.
        channels: feature maps (for time-first spiking layers: channels per step).
        size: ``(h, w)`` of its feature maps.
        time_steps: ``T`` for a spiking layer whose output is time-first ``(T, B, C, h, w)``, else 1.
        time_first: the output is time-first (a spiking block), even when ``T`` is 1.
    """

    name: str
    channels: int
    size: tuple[int, int]
    time_steps: int = 1
    time_first: bool = False

    @property
    def label(self) -> str:
        steps = f" x {self.time_steps} steps" if self.time_steps > 1 else ""
        return f"{self.name} ({self.channels} maps{steps}, {self.size[0]}x{self.size[1]})"


_SKIPPED_LAYER_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Upsample,
)


def gradcam_layers(model: nn.Module, x: torch.Tensor, max_depth: int = 3) -> list[LayerInfo]:
    """Layers of ``model`` that Grad-CAM can explain on input ``x``, in the order they run.

    A layer qualifies when it is a block (a module with sub-modules, not a single convolution), runs
    once per forward pass and returns feature maps per image, ``(B, C, h, w)``, or time-first
    ``(T, B, C, h, w)`` (the spiking blocks), at least 2x2 with at least 2 channels, and its name is
    at most ``max_depth`` levels deep.
    """
    check_input(x)
    probe = copy.deepcopy(model).eval()
    batch = 2  # two images, so a (T * B, ...) time-flattened output is not mistaken for (B, ...)
    calls: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    handles = []

    def hook(name: str):
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape)
                if name not in order:
                    order.append(name)

        return record

    for name, module in probe.named_modules():
        # Blocks (modules with children), not every convolution inside them.
        if not name or name.count(".") >= max_depth or not any(True for _ in module.children()):
            continue
        if isinstance(module, _SKIPPED_LAYER_TYPES) or type(module).__name__ == "LIF":
            continue
        handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.inference_mode():
            probe(x.expand(batch, *x.shape[1:]))
    finally:
        for handle in handles:
            handle.remove()

    layers = []
    for name in order:
        shape = shapes[name]
        if calls[name] != 1:
            continue
        if len(shape) == 4 and shape[0] == batch:
            info = LayerInfo(name, shape[1], (shape[2], shape[3]))
        elif len(shape) == 5 and shape[1] == batch:
            info = LayerInfo(name, shape[2], (shape[3], shape[4]), time_steps=shape[0], time_first=True)
        else:
            continue
        if min(info.size) < 2 or info.channels < 2:
            continue
        layers.append(info)
    return layers


def default_gradcam_layer(layers: list[LayerInfo]) -> LayerInfo | None:
    """The bottleneck: the last layer at the coarsest resolution (the classic Grad-CAM choice)."""
    if not layers:
        return None
    coarsest = min(info.size[0] * info.size[1] for info in layers)
    return [info for info in layers if info.size[0] * info.size[1] == coarsest][-1]


class _TimeFolded(nn.Module):
    """Wraps a time-first layer so Grad-CAM sees ``(B, T * C, h, w)``; its output is unchanged.

    The permutations are exact (no arithmetic), so the wrapped model computes the same numbers.
    Grad-CAM then weighs each channel at each time step by its own mean gradient.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.probe = nn.Identity()

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.inner(*args, **kwargs)
        steps = out.shape[0]
        folded = self.probe(out.transpose(0, 1).flatten(1, 2))  # (B, T * C, h, w)
        return folded.unflatten(1, (steps, -1)).transpose(0, 1)


def chosen_gradcam_layer(layers: list[LayerInfo], name: str | None) -> LayerInfo:
    """The layer called ``name`` among ``layers``, or the bottleneck when ``name`` is None.

    Raises:
        ValueError: when no layer of ``layers`` is called ``name`` (the message lists them).
    """
    names = {info.name: info for info in layers}
    if name is None:
        return default_gradcam_layer(layers)
    if name not in names:
        raise ValueError(f"layer {name!r} cannot be explained with Grad-CAM; choose one of: {', '.join(names)}")
    return names[name]


def gradcam_probe(model: nn.Module, info: LayerInfo) -> nn.Module:
    """The module Grad-CAM hooks to explain layer ``info`` of ``model``.

    For a time-first layer that is the probe of a :class:`_TimeFolded` wrapper put in the layer's
    place, so ``model`` is changed: pass a private copy.
    """
    module = model.get_submodule(info.name)
    if not info.time_first:
        return module
    wrapper = _TimeFolded(module)
    parent_name, _, child = info.name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    parent._modules[child] = wrapper
    return wrapper.probe
