"""Models matched to the scan: seg_core.matching ranks weights by inputs, kind of training data and validation figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seg_core.inference import ModalityError, select_channels
from seg_core.matching import CANNOT_RUN, GROUPS, MADE_FOR_SCAN, OTHER_DATA, best_model, rank_models, scan_kind
from seg_core.scans import Scan, load_scan
from seg_core.weights import WEIGHTS_DIR, WeightsError, list_weights


def _scan(modalities: tuple[str, ...], *, is_2d: bool, spacing_known: bool = True, slices: int = 1) -> Scan:
    array = np.zeros((len(modalities), slices, 16, 16), np.float32)
    return Scan(array=array, modalities=modalities, is_2d=is_2d, meta={"spacing_known": spacing_known})


BRATS_VOLUME = _scan(("flair", "t1c"), is_2d=False, slices=8)
BRATS_FOUR = _scan(("t1", "t1c", "t2", "flair"), is_2d=False, slices=8)
LGG_SLICE = _scan(("t1", "flair", "t1c"), is_2d=True, spacing_known=False)
LGG_STACK = _scan(("t1", "flair", "t1c"), is_2d=False, spacing_known=False, slices=8)
GRAY_SLICE = _scan(("unspecified",), is_2d=True, spacing_known=False)


def _weights(
    folder: Path, model_id: str, dataset: str, modalities: list[str], figure: float | None, val: float | None = None
) -> None:
    path = folder / model_id
    path.mkdir(parents=True)
    config = {"architecture": model_id.split(".")[0], "model_config": {}, "modalities": modalities}
    config |= {"input_size": [128, 128], "dataset": dataset}
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.safetensors").write_bytes(b"")
    if figure is not None:
        # The leaderboard's primary figure: per patient for the volume data sets, per image for Figshare.
        test = {"dice_mean": figure} if dataset == "figshare" else {"dice_mean": 0.99, "per_volume": {"dice_mean": figure}}
        metrics = {f"test:{dataset}": test} | ({"selection": {"chosen": {"dice_mean": val}}} if val is not None else {})
        (path / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    # unet.figshare is the better on validation, attention_unet.figshare on test.
    _weights(tmp_path, "unet.figshare", "figshare", ["t1c"], 0.71, val=0.76)
    _weights(tmp_path, "attention_unet.figshare", "figshare", ["t1c"], 0.74, val=0.73)
    _weights(tmp_path, "sa_unet.figshare", "figshare", ["t1c"], None)
    _weights(tmp_path, "unet.lgg", "lgg", ["t1", "flair", "t1c"], 0.75, val=0.80)
    _weights(tmp_path, "naive_prior.lgg", "lgg", ["t1", "flair", "t1c"], 0.09, val=0.11)
    _weights(tmp_path, "unet.brats", "brats", ["flair", "t1c"], 0.62, val=0.81)
    _weights(tmp_path, "naive_prior.brats", "brats", ["flair", "t1c"], 0.05, val=0.10)
    return tmp_path


def _groups(fits) -> dict[str, str]:
    return {fit.model_id: fit.group for fit in fits}


def test_scan_kinds():
    assert scan_kind(BRATS_VOLUME) == "volume"
    assert scan_kind(LGG_SLICE) == "slice"
    assert scan_kind(LGG_STACK) == "stack"


def test_brats_volume_ranks_a_brats_model_first(zoo: Path):
    fits = rank_models(BRATS_VOLUME, zoo)
    assert [f.model_id for f in fits[:2]] == ["unet.brats", "naive_prior.brats"]
    groups = _groups(fits)
    assert groups["unet.figshare"] == OTHER_DATA  # it reads the T1c channel, but it learned single 2D slices
    assert groups["unet.lgg"] == CANNOT_RUN  # no T1 in this case
    assert best_model(BRATS_VOLUME, zoo) == "unet.brats"
    # A case that also brings T1 and T2 is still the BraTS models' kind of data.
    assert best_model(BRATS_FOUR, zoo) == "unet.brats"
    assert _groups(rank_models(BRATS_FOUR, zoo))["unet.lgg"] == OTHER_DATA


def test_lgg_slice_and_stack_rank_an_lgg_model_first(zoo: Path):
    for scan in (LGG_SLICE, LGG_STACK):
        fits = rank_models(scan, zoo)
        assert fits[0].model_id == "unet.lgg" and fits[0].group == MADE_FOR_SCAN
        # The RGB slice holds a T1c channel, so a Figshare model can run, but it is not that kind of image.
        assert _groups(fits)["attention_unet.figshare"] == OTHER_DATA
        assert _groups(fits)["unet.brats"] == OTHER_DATA


def test_grayscale_slice_ranks_figshare_models_by_validation_never_by_test(zoo: Path):
    fits = rank_models(GRAY_SLICE, zoo)
    made = [f.model_id for f in fits if f.group == MADE_FOR_SCAN]
    assert made == ["unet.figshare", "attention_unet.figshare", "sa_unet.figshare"]  # unrecorded last
    assert fits[0].val_dice == pytest.approx(0.76) and fits[0].test_dice == pytest.approx(0.71)  # test reported only
    assert "not state its sequence" in fits[0].reason
    assert {f.group for f in fits if "lgg" in f.model_id or "brats" in f.model_id} == {CANNOT_RUN}


def test_groups_come_in_order_and_reasons_are_plain(zoo: Path):
    for scan in (BRATS_VOLUME, LGG_SLICE, GRAY_SLICE):
        fits = rank_models(scan, zoo)
        order = [GROUPS.index(f.group) for f in fits]
        assert order == sorted(order)
        for fit in fits:
            assert fit.reason.endswith(".") and "_" not in fit.reason and "unspecified" not in fit.reason
    blocked = next(f for f in rank_models(GRAY_SLICE, zoo) if f.model_id == "unet.brats")
    assert "FLAIR and T1 contrast-enhanced" in blocked.reason


def test_a_volume_of_unstated_sequence_is_other_data_read_as_t1c(zoo: Path):
    unstated_volume = _scan(("unspecified",), is_2d=False, slices=8)
    fits = rank_models(unstated_volume, zoo)
    assert {f.group for f in fits if f.model_id.endswith(".figshare")} == {OTHER_DATA}
    assert "reads the scan as T1 contrast-enhanced" in fits[0].reason and "not stated" in fits[0].reason


def test_volume_figure_is_per_patient(zoo: Path):
    fit = next(f for f in rank_models(BRATS_VOLUME, zoo) if f.model_id == "unet.brats")
    assert fit.test_dice == pytest.approx(0.62)  # not the per-image 0.99 of the same test split


def test_no_runnable_model_is_a_clear_error(zoo: Path, tmp_path: Path):
    t2_only = _scan(("t2",), is_2d=False, slices=4)
    with pytest.raises(WeightsError, match="No trained model can run"):
        best_model(t2_only, zoo)
    with pytest.raises(WeightsError, match="No weights folder 'unet.nowhere'"):
        rank_models(GRAY_SLICE, zoo, model_ids=["unet.nowhere"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="No trained weights"):
        best_model(GRAY_SLICE, empty)


@pytest.mark.parametrize(
    "scan", [BRATS_VOLUME, BRATS_FOUR, LGG_SLICE, LGG_STACK, GRAY_SLICE], ids=lambda s: "-".join(s.modalities)
)
def test_groups_agree_with_what_inference_accepts(scan: Scan):
    """A model offered as runnable must not be refused by select_channels, and a blocked one must be."""
    if not list_weights(WEIGHTS_DIR):
        pytest.skip("no shipped weights")
    for fit in rank_models(scan):
        config = json.loads((Path(WEIGHTS_DIR) / fit.model_id / "config.json").read_text())
        if fit.group == CANNOT_RUN:
            with pytest.raises(ModalityError):
                select_channels(scan, config["modalities"], fit.model_id)
        else:
            assert select_channels(scan, config["modalities"], fit.model_id).shape[0] == len(config["modalities"])


def _shipped(*ids: str) -> None:
    missing = [i for i in ids if i not in list_weights(WEIGHTS_DIR)]
    if missing:
        pytest.skip(f"weights not shipped here: {missing}")


@pytest.mark.data
def test_real_cases_get_their_own_kind_of_model(data_root: Path):
    _shipped("unet.brats", "unet.lgg", "unet.figshare")
    brats = sorted(p for p in (data_root / "brats2018").iterdir() if p.is_dir())[0]
    lgg_slice = sorted((data_root / "lgg" / "kaggle_3m").glob("*/*_20.tif"))[0]
    lgg_case = sorted(p for p in (data_root / "lgg" / "kaggle_3m_128").iterdir() if p.is_dir())[0]
    figshare = data_root / "figshare" / "images" / "1.png"
    for path, prefix in ((brats, "brats"), (lgg_slice, "lgg"), (lgg_case, "lgg"), (figshare, "figshare")):
        scan = load_scan(path)
        chosen = best_model(scan)
        assert chosen.endswith("." + prefix), (path, chosen)
        assert rank_models(scan)[0].group == MADE_FOR_SCAN


@pytest.mark.data
def test_cli_segment_model_auto_reports_the_choice(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    from seg_core.cli import main

    _shipped("unet.lgg")
    lgg_slice = sorted((data_root / "lgg" / "kaggle_3m").glob("*/*_20.tif"))[0]
    out = tmp_path / "mask.png"
    assert main(["segment", str(lgg_slice), "--model", "auto", "--backend", "torch", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == best_model(load_scan(lgg_slice)) == report["model_choice"]["model_id"]
    assert report["model_choice"]["group"] == MADE_FOR_SCAN and report["model_choice"]["reason"]
    assert out.exists()
    # Plain text names the choice and why.
    assert main(["segment", str(lgg_slice), "--model", "auto", "--backend", "torch", "--out", str(out)]) == 0
    assert "model chosen for this scan (--model auto)" in capsys.readouterr().out


def test_cli_model_auto_with_no_runnable_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    from PIL import Image

    from seg_core.cli import main

    # A slice declared T2: no shipped model reads T2.
    image = tmp_path / "t2.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)).save(image)
    code = main(["segment", str(image), "--model", "auto", "--modalities", "t2", "--out", str(tmp_path / "m.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: No trained model can run on this scan")


def test_rest_api_model_auto_chooses_and_says_why(tmp_path: Path):
    import io
    import shutil

    from fastapi.testclient import TestClient
    from PIL import Image

    from seg_core.api import create_app

    _shipped("unet.figshare")
    shutil.copytree(Path(WEIGHTS_DIR) / "unet.figshare", tmp_path / "unet.figshare")
    client = TestClient(create_app(tmp_path), raise_server_exceptions=False)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buffer, format="PNG")
    files = [("files", ("slice.png", buffer.getvalue(), "image/png"))]

    answer = client.post("/segment", files=files, data={"model": "auto"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == body["model_choice"]["model_id"] == "unet.figshare"
    assert body["model_choice"]["group"] == MADE_FOR_SCAN and body["model_choice"]["reason"]

    as_file = client.post("/segment", params={"format": "png"}, files=files, data={"model": "auto"})
    assert json.loads(as_file.headers["x-segmentation"])["model_choice"]["model_id"] == "unet.figshare"

    refused = client.post("/segment", files=files, data={"model": "auto", "modalities": "t2"})
    assert refused.status_code == 422 and "No trained model can run" in refused.text
    # A named model is unchanged: no choice reported.
    assert client.post("/segment", files=files, data={"model": "unet.figshare"}).json()["model_choice"] is None


def test_test_figures_are_the_leaderboards_primary_figures():
    # Against the leaderboard's own row, computed from each folder's metrics.json now (the committed
    # leaderboard.json may lag a weights folder that is being retrained).
    from seg_core.leaderboard import leaderboard_row

    fits = rank_models(GRAY_SLICE)
    if not fits:
        pytest.skip("no shipped weights")
    for fit in fits:
        assert fit.test_dice == pytest.approx(leaderboard_row(fit.model_id)["primary_mean"]), fit.model_id
