"""The shipped weights: they load strictly and reach their quality bar on held-out test slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seg_core.data import load_split
from seg_core.evaluate import evaluate
from seg_core.weights import list_weights, load_model

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("model_id", list_weights())
def test_shipped_weights_have_the_hub_layout_and_load(model_id: str) -> None:
    folder = REPO / "weights" / model_id
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json"):
        assert (folder / name).is_file(), f"{model_id} lacks {name}"
    loaded = load_model(model_id)
    assert loaded.config["id"] == model_id and loaded.config["architecture"] == model_id.split(".")[0]
    assert not loaded.model.training


@pytest.mark.data
def test_unet_figshare_reaches_dice_070_on_test_slices(data_root: Path) -> None:
    result = evaluate("unet.figshare", "figshare", data_root, split="test", limit=32)
    assert result["n"] == 32
    test_groups = set(load_split("figshare")["test"])
    assert {row["group"] for row in result["cases"]} <= test_groups
    assert result["dice_mean"] >= 0.70, json.dumps({k: result[k] for k in ("dice_mean", "iou_mean", "n")})
