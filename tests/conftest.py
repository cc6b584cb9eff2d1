"""Shared fixtures. The public data sets are found through BRAINSEG_DATA_ROOT or ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def find_data_root() -> Path | None:
    candidate = Path(os.environ.get("BRAINSEG_DATA_ROOT", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("public data folder not found (set BRAINSEG_DATA_ROOT or place it at ../shared/data)")
    return root


@pytest.fixture(scope="session", autouse=True)
def _export_cache_outside_home(tmp_path_factory: pytest.TempPathFactory):
    """ONNX exports made by the tests go to a temporary folder, never the user's ~/.cache."""
    previous = os.environ.get("BRAINSEG_CACHE_DIR")
    os.environ["BRAINSEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("brainseg-cache"))
    yield
    if previous is None:
        os.environ.pop("BRAINSEG_CACHE_DIR", None)
    else:
        os.environ["BRAINSEG_CACHE_DIR"] = previous
