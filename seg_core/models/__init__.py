"""The model zoo: every architecture behind one registry (see :mod:`seg_core.models._registry`)."""

from __future__ import annotations

from seg_core.models._registry import ModelSpec, create_model, get_spec, list_models, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
