"""The shipped weights: they load strictly and reach their quality bar on held-out test slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seg_core.data import load_split
from seg_core.evaluate import evaluate
from seg_core.weights import list_weights, load_model

REPO = Path(__file__).resolve().parent.parent
#: The most ``weights/`` may hold (issue 4): it is cloned by every user.
WEIGHTS_BUDGET_BYTES = 80_000_000


@pytest.mark.parametrize("model_id", list_weights())
def test_shipped_weights_have_the_hub_layout_and_load(model_id: str) -> None:
    folder = REPO / "weights" / model_id
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json"):
        assert (folder / name).is_file(), f"{model_id} lacks {name}"
    loaded = load_model(model_id)
    assert loaded.config["id"] == model_id and loaded.config["architecture"] == model_id.split(".")[0]
    assert not loaded.model.training


def test_weights_folder_stays_within_its_size_budget() -> None:
    sizes = {path: path.stat().st_size for path in (REPO / "weights").rglob("*") if path.is_file()}
    largest = sorted(sizes, key=sizes.get, reverse=True)[:3]
    assert sum(sizes.values()) <= WEIGHTS_BUDGET_BYTES, (
        f"weights/ holds {sum(sizes.values()) / 1e6:.1f} MB; largest: {[str(p.relative_to(REPO)) for p in largest]}"
    )


@pytest.mark.parametrize("model_id", list_weights())
def test_test_figures_describe_the_weights_now_in_the_folder(model_id: str) -> None:
    """Figures measured on weights that were since replaced (e.g. by int8 storage) must be measured again."""
    folder = REPO / "weights" / model_id
    config = json.loads((folder / "config.json").read_text())
    records = [v for k, v in json.loads((folder / "metrics.json").read_text()).items() if k.startswith("test:")]
    assert records, f"{model_id} has no test figures"
    for record in records:
        if config.get("storage", {}).get("accepted"):
            assert "weights_sha256" in record, f"{model_id} was stored as int8 after its test figures were measured"
        if "weights_sha256" in record:
            assert record["weights_sha256"] == config["sha256"]["model.safetensors"], f"{model_id}: stale test figures"
            accepted_graph = config.get("int8", {}).get("sha256") if config.get("int8", {}).get("accepted") else None
            assert record["int8_graph"] == accepted_graph, f"{model_id}: test figures of another int8 graph"


@pytest.mark.data
def test_unet_figshare_reaches_dice_070_on_test_slices(data_root: Path) -> None:
    result = evaluate("unet.figshare", "figshare", data_root, split="test", limit=32)
    assert result["n"] == 32
    test_groups = set(load_split("figshare")["test"])
    assert {row["group"] for row in result["cases"]} <= test_groups
    assert result["dice_mean"] >= 0.70, json.dumps({k: result[k] for k in ("dice_mean", "iou_mean", "n")})


@pytest.mark.data
def test_select_chooses_settings_on_validation_only(data_root: Path, tmp_path: Path) -> None:
    import shutil

    from seg_core.data import FigshareDataset
    from seg_core.evaluate import MORPHOLOGY, THRESHOLDS, choose_settings, select_inference_settings

    # A small figshare-layout folder holding a few slices of one validation patient.
    source = FigshareDataset(data_root)
    patient = load_split("figshare")["val"][0]
    (tmp_path / "figshare" / "images").mkdir(parents=True)
    (tmp_path / "figshare" / "masks").mkdir()
    shutil.copy(data_root / "figshare" / "patients.csv", tmp_path / "figshare")
    for case_id in source.case_ids(patient)[:4]:
        for kind in ("images", "masks"):
            shutil.copy(data_root / "figshare" / kind / f"{case_id}.png", tmp_path / "figshare" / kind)
    weights = tmp_path / "weights"
    shutil.copytree(REPO / "weights" / "unet.figshare", weights / "unet.figshare")
    with pytest.raises(ValueError, match="never on the test split"):
        select_inference_settings("unet.figshare", "figshare", tmp_path, split="test", weights_dir=weights)
    selection = select_inference_settings("unet.figshare", "figshare", tmp_path, weights_dir=weights)
    assert len(selection["table"]) == 2 * len(THRESHOLDS) * len(MORPHOLOGY)
    assert selection["chosen"] == choose_settings(selection["table"])  # best, TTA only for a clear gain
    config = json.loads((weights / "unet.figshare" / "config.json").read_text())
    assert config["postprocessing"]["threshold"] == selection["chosen"]["threshold"]
    assert config["flip_tta"] == selection["chosen"]["flip_tta"]
    assert load_model(weights / "unet.figshare").config["postprocessing"] == config["postprocessing"]
