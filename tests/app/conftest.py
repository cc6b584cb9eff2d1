"""Fixtures for the app tests: ``weights_env`` points the app at a test weights folder (see apphelpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apphelpers import make_weights_dir

from seg_core.weights import list_weights


@pytest.fixture(scope="session")
def app_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "unet.figshare" not in list_weights():
        pytest.skip("needs the shipped unet.figshare weights")
    return make_weights_dir(tmp_path_factory.mktemp("app"))


@pytest.fixture
def weights_env(app_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRAINSEG_WEIGHTS_DIR", str(app_weights))
    return app_weights
