"""seg_core.batch on real cases: the CLI on BraTS 2015 and LGG with two models, the pool and Ray equal
the sequential loop, and a split evaluated through the batch path equals the old per-group loop."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from seg_core.batch import run_cohort
from seg_core.batch.splits import GroupEvaluator, split_rows
from seg_core.data import open_dataset
from seg_core.evaluate import _groups, evaluate, iter_predictions
from seg_core.inference import Segmenter
from seg_core.weights import WEIGHTS_DIR, load_model

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.data

#: Columns that measure time, not results: they differ between any two runs.
TIMING = {"seconds"}


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _lgg_cases(data_root: Path, count: int) -> list[Path]:
    folder = data_root / "lgg" / "kaggle_3m"
    return sorted(p for p in folder.iterdir() if p.is_dir())[:count]


def _same_figures(new: list[dict], old: list[dict]) -> None:
    assert [r["case"] for r in new] == [r["case"] for r in old]
    for a, b in zip(new, old, strict=True):
        for metric in ("dice", "iou", "hd95", "pred_pixels", "true_pixels"):
            x, y = a[metric], b[metric]
            assert (math.isnan(x) and math.isnan(y)) or x == y, f"{a['case']} {metric}: {x} != {y}"


def test_cli_over_brats2015_and_lgg_with_two_models(data_root: Path, tmp_path: Path) -> None:
    brats = data_root / "brats2015" / "brats_2013_pat0001_1"
    lgg = _lgg_cases(data_root, 1)[0]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "seg_core", "batch", str(brats), str(lgg), "--model", "unet.brats", "--model", "unet.lgg"]
    result = subprocess.run([*command, "--out", str(out), "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4
    rows = {(r.case, r.model): r for r in table.itertuples()}
    # unet.lgg needs T1, which BraTS 2015 lacks: an error row, and the batch went on.
    assert rows[(brats.name, "unet.lgg")].status == "error" and "needs T1" in rows[(brats.name, "unet.lgg")].error
    for key in [(brats.name, "unet.brats"), (lgg.name, "unet.brats"), (lgg.name, "unet.lgg")]:
        assert rows[key].status == "ok" and 0.0 <= rows[key].dice <= 1.0 and rows[key].tumor_volume_ml >= 0
    assert rows[(lgg.name, "unet.lgg")].dice > 0.5
    # The BraTS mask is NIfTI on the input's grid and affine, in the file's own voxel order.
    mask = nib.load(out / rows[(brats.name, "unet.brats")].mask)
    flair = nib.load(brats / "Flair_subtrMeanDivStd.nii.gz")
    assert mask.shape == flair.shape and np.allclose(mask.affine, flair.affine)
    voxel_ml = float(np.prod(flair.header.get_zooms()[:3])) / 1000
    assert int(np.asanyarray(mask.dataobj).sum()) * voxel_ml == pytest.approx(rows[(brats.name, "unet.brats")].tumor_volume_ml)
    summary = (out / "summary.md").read_text()
    assert "`unet.brats`" in summary and "`unet.lgg`" in summary and "Errors (1)" in summary


@pytest.fixture(scope="module")
def sequential_rows(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    cases = _lgg_cases(data_root, 2)
    run = run_cohort(cases, ["unet.lgg", "unet.brats"], tmp_path_factory.mktemp("sequential"), workers=1, progress=False)
    assert not run.errors
    return run.rows


def test_local_pool_rows_equal_the_sequential_loop(data_root: Path, tmp_path: Path, sequential_rows: list[dict]) -> None:
    run = run_cohort(_lgg_cases(data_root, 2), ["unet.lgg", "unet.brats"], tmp_path, workers=2, progress=False)
    assert _comparable(run.rows) == _comparable(sequential_rows)


@pytest.mark.slow
def test_ray_rows_equal_the_sequential_loop(data_root: Path, tmp_path: Path, sequential_rows: list[dict]) -> None:
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-cluster.txt")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run = run_cohort(_lgg_cases(data_root, 2), ["unet.lgg", "unet.brats"], tmp_path, workers=2, ray="auto", progress=False)
    finally:
        ray.shutdown()
    assert _comparable(run.rows) == _comparable(sequential_rows)
    assert all((tmp_path / row["mask"]).is_file() for row in run.rows)


def test_split_through_the_batch_path_equals_the_old_loop(data_root: Path) -> None:
    """Per-case Dice of evaluate's new path (groups as run_tasks tasks) against the loop it replaced."""
    dataset = open_dataset("lgg", data_root)
    groups = _groups(dataset, "lgg", "test")[:3]
    old = list(iter_predictions(Segmenter(load_model("unet.lgg")), dataset, groups))
    new = split_rows(GroupEvaluator("unet.lgg", "lgg", str(data_root), str(WEIGHTS_DIR)), groups, True, None, workers=2, ray=None)
    assert len(new) == len(old) > len(groups), "per-slice rows and one volume row per patient"
    _same_figures(new, old)


def test_limited_2d_split_equals_the_old_loop(data_root: Path) -> None:
    dataset = open_dataset("figshare", data_root)
    groups = _groups(dataset, "figshare", "test")
    old = list(iter_predictions(Segmenter(load_model("unet.figshare")), dataset, groups, limit=7))
    result = evaluate("unet.figshare", "figshare", data_root, split="test", limit=7)
    assert result["n"] == 7
    _same_figures(result["cases"], old)


class _MustNotRun(GroupEvaluator):
    def __call__(self):
        raise AssertionError("a journalled group was computed again")


def test_split_resumes_from_its_journal(data_root: Path, tmp_path: Path) -> None:
    dataset = open_dataset("lgg", data_root)
    groups = _groups(dataset, "lgg", "test")[:2]
    fields = ("unet.lgg", "lgg", str(data_root), str(WEIGHTS_DIR))
    first = split_rows(GroupEvaluator(*fields), groups, True, None, workers=1, ray=None, out=tmp_path)
    again = split_rows(_MustNotRun(*fields), groups, True, None, workers=1, ray=None, out=tmp_path)
    assert [sorted(row) for row in again] == [sorted(row) for row in first], "the same columns, none of the journal's"
    _same_figures(again, first)
