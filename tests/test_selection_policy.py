"""Flip TTA doubles the forward pass: on by default only where validation Dice gains >= 0.01."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from seg_core.evaluate import TTA_MIN_GAIN, choose_settings, reapply_selection
from seg_core.weights import WEIGHTS_DIR, list_weights


def _row(flip: bool, threshold: float, dice: float) -> dict:
    return {"flip_tta": flip, "threshold": threshold, "fill_holes": False, "largest_component_only": False, "dice_mean": dice}


def test_tta_is_chosen_only_for_a_clear_gain() -> None:
    small_gain = [_row(False, 0.5, 0.740), _row(False, 0.4, 0.745), _row(True, 0.5, 0.749)]
    assert choose_settings(small_gain) == _row(False, 0.4, 0.745)
    clear_gain = [_row(False, 0.5, 0.740), _row(True, 0.5, 0.740 + TTA_MIN_GAIN)]
    assert choose_settings(clear_gain)["flip_tta"] is True
    assert choose_settings([_row(False, 0.5, 0.7), _row(False, 0.6, 0.7)])["threshold"] == 0.5  # first of equals


def test_reapply_rewrites_the_config_from_the_recorded_table(tmp_path: Path) -> None:
    folder = tmp_path / "unet.figshare"
    shutil.copytree(WEIGHTS_DIR / "unet.figshare", folder)
    table = [_row(False, 0.5, 0.740), _row(False, 0.4, 0.745), _row(True, 0.5, 0.749)]
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "flip_tta": True, "threshold": 0.5}))
    metrics = json.loads((folder / "metrics.json").read_text())
    selection = {**metrics["selection"], "chosen": table[2], "table": table}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "selection": selection}))
    assert reapply_selection(folder) is True
    config = json.loads((folder / "config.json").read_text())
    assert config["flip_tta"] is False and config["threshold"] == 0.4
    assert reapply_selection(folder) is False  # nothing left to change


def test_every_shipped_config_follows_the_policy() -> None:
    for model_id in list_weights():
        folder = WEIGHTS_DIR / model_id
        selection = json.loads((folder / "metrics.json").read_text()).get("selection")
        if selection:
            config = json.loads((folder / "config.json").read_text())
            assert config["flip_tta"] == choose_settings(selection["table"])["flip_tta"], model_id
