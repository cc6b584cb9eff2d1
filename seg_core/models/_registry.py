"""Model registry: one place that knows every architecture of the zoo.

Architectures register a small entry function with :func:`register_model` (timm style), so one class
can give several registered variants and tests parametrised over :func:`list_models` cover a new
model as soon as it is registered.

Example:
    >>> from seg_core.models import create_model, list_models
    >>> "unet" in list_models()
    True
    >>> net = create_model("unet", width=16, in_channels=1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch.nn as nn

__all__ = ["ModelSpec", "register_model", "list_models", "get_spec", "create_model"]


@dataclass(frozen=True)
class ModelSpec:
    """What the app and the CLI need to know about an architecture before building it.

    Attributes:
        name: registry name, lowercase snake; also the weights folder prefix and
            ``config["architecture"]``.
        title: human-readable name for the UI.
        family: family of architectures (``"unet"``, ``"spiking_resnet"``, ...).
        reference: the paper the architecture follows.
        default_modalities: the input modalities used when a config names none, e.g. ``("t1c",)``.
        spiking: whether the network runs over time steps with spiking neurons.
        time_steps: default number of time steps (1 for non-spiking models).
        input_multiple: spatial sizes must be a multiple of this (inference pads to it).
        description: one paragraph for the model zoo page.
        paper_config: keyword arguments of the faithful, paper-size configuration.
        lite_config: keyword arguments of the narrow configuration (about 1-3 M parameters) that
            trains on a CPU; the tests use it too.
        seed_parameters: parameter count of the seed project's paper-size model, when published
            (the tests check the paper configuration is within 10% of it).
        trainable: False for models fitted in closed form rather than by gradient descent
            (the naive prior, the classical pixel classifier); they provide ``fit(images, masks)``.
    """

    name: str
    title: str
    family: str
    reference: str
    default_modalities: tuple[str, ...] = ("t1c",)
    spiking: bool = False
    time_steps: int = 1
    input_multiple: int = 16
    description: str = ""
    paper_config: dict[str, Any] = field(default_factory=dict)
    lite_config: dict[str, Any] = field(default_factory=dict)
    seed_parameters: float | None = None
    trainable: bool = True
    builder: Callable[..., nn.Module] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        info = asdict(self)
        info.pop("builder")
        return info


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(**config) -> nn.Module`` under ``spec.name``.

    The builder is usually the model class itself (``unet = register_model(spec)(UNet)``), so its
    constructor is the one place that declares the settings and their defaults.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} is registered twice")
        if spec.name != spec.name.lower() or " " in spec.name or "." in spec.name:
            raise ValueError(f"registry names are lowercase snake case, got {spec.name!r}")
        _REGISTRY[spec.name] = ModelSpec(**{**spec.to_dict(), "builder": builder})
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _import_families()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ``KeyError`` listing valid names when unknown."""
    _import_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model architecture {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, **config: Any) -> nn.Module:
    """Build architecture ``name`` with keyword ``config`` (JSON-serialisable values only)."""
    spec = get_spec(name)
    if spec.builder is None:  # only specs built by register_model are stored, so this is a bug
        raise RuntimeError(f"model {name!r} has no builder")
    return spec.builder(**config)


_FAMILIES_IMPORTED = False


def _import_families() -> None:
    # Importing every family module of this package runs its @register_model decorators, so a new
    # family is registered by adding its file. Done lazily so that importing the registry alone
    # (e.g. from the CLI's --help) stays cheap.
    global _FAMILIES_IMPORTED
    if _FAMILIES_IMPORTED:
        return
    import importlib
    import pkgutil

    import seg_core.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and not module.ispkg:
            importlib.import_module(f"seg_core.models.{module.name}")
    _FAMILIES_IMPORTED = True
