"""The command line end to end, with the shipped weights, as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "weights" / "unet.figshare"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg_core", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("models", "segment", "train", "evaluate"):
        assert command in result.stdout


def test_models_lists_architectures_and_weights() -> None:
    result = run_cli("models", "--json")
    assert result.returncode == 0
    listing = json.loads(result.stdout)
    assert "unet" in [a["name"] for a in listing["architectures"]]
    assert "unet.figshare" in [w["id"] for w in listing["weights"]]


@pytest.mark.data
def test_segment_png_writes_a_png_mask(data_root: Path, tmp_path: Path) -> None:
    image = data_root / "figshare" / "images" / "1.png"
    out = tmp_path / "mask.png"
    result = run_cli("segment", str(image), "--model", "unet.figshare", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    mask = np.asarray(Image.open(out))
    assert mask.shape == np.asarray(Image.open(image)).shape
    assert set(np.unique(mask)) <= {0, 255}
    truth = np.asarray(Image.open(data_root / "figshare" / "masks" / "1.png")) > 127
    dice = 2 * np.sum((mask > 0) & truth) / (np.sum(mask > 0) + np.sum(truth))
    assert dice > 0.5, f"the shipped U-Net should find this tumor (Dice {dice:.3f})"
    assert report["model"] == "unet.figshare" and report["seconds"] > 0


@pytest.mark.data
def test_segment_nifti_volume_keeps_affine(data_root: Path, tmp_path: Path) -> None:
    source = data_root / "brats2015" / "brats_2013_pat0001_1" / "T1c_subtrMeanDivStd.nii.gz"
    out = tmp_path / "mask.nii.gz"
    result = run_cli("segment", str(source), "--model", "unet.figshare", "--out", str(out))
    assert result.returncode == 0, result.stderr
    written, original = nib.load(out), nib.load(source)
    assert written.shape == original.shape
    assert np.allclose(written.affine, original.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1}
    assert "volume" in result.stdout


def test_bad_input_gives_one_clear_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "scan.nii.gz"
    bad.write_text("this is not an MRI")
    result = run_cli("segment", str(bad), "--model", "unet.figshare", "--out", str(tmp_path / "m.nii.gz"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert not (tmp_path / "m.nii.gz").exists()


def test_unknown_model_lists_the_available_ones(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(image)
    result = run_cli("segment", str(image), "--model", "nope.figshare", "--out", str(tmp_path / "m.png"))
    assert result.returncode == 2 and "unet.figshare" in result.stderr


@pytest.mark.data
def test_evaluate_prints_a_table_and_json(data_root: Path) -> None:
    table = run_cli(
        "evaluate", "--model", "unet.figshare", "--dataset", "figshare", "--data-root", str(data_root), "--limit", "4"
    )
    assert table.returncode == 0, table.stderr
    assert "per_image" in table.stdout and "dice" in table.stdout
    result = run_cli(
        "evaluate", "--model", "unet.figshare", "--dataset", "figshare", "--data-root", str(data_root), "--limit", "4", "--json"
    )
    figures = json.loads(result.stdout)
    assert figures["n"] == 4 and 0 <= figures["dice_mean"] <= 1 and len(figures["cases"]) == 4
    assert {"dice_mean", "iou_mean", "hd95_mean"} <= set(figures)


def test_segment_offers_every_backend_and_export_writes_the_graphs(tmp_path, monkeypatch) -> None:
    from seg_core.backends import BACKENDS
    from seg_core.cli import BACKEND_CHOICES, main
    from seg_core.weights import load_model

    assert BACKEND_CHOICES == BACKENDS
    monkeypatch.setenv("BRAINSEG_CACHE_DIR", str(tmp_path))
    assert main(["export", "--model", "unet.figshare,naive_prior.figshare"]) == 0
    fp32 = [p for p in (tmp_path / "onnx").glob("unet.figshare-*.onnx") if ".int8-" not in p.name]  # int8 graphs lie beside
    assert len(fp32) == 1
    has_int8 = bool((load_model("unet.figshare").config.get("int8") or {}).get("accepted"))
    assert len(list((tmp_path / "onnx").glob("unet.figshare-*.int8-*.onnx"))) == int(has_int8)
    assert not list((tmp_path / "onnx").glob("naive_prior*"))  # baselines stay on torch


def test_segment_checks_out_before_reading_the_scan_or_loading_the_model(tmp_path: Path) -> None:
    # Neither the input nor the model exists: the --out problem is reported first, as a usage error.
    bad_suffix = run_cli("segment", str(tmp_path / "absent.png"), "--model", "no.such_model", "--out", str(tmp_path / "m.txt"))
    assert bad_suffix.returncode == 2 and "must end in .nii.gz" in bad_suffix.stderr, bad_suffix.stderr
    missing = tmp_path / "no_folder" / "m.png"
    no_folder = run_cli("segment", str(tmp_path / "absent.png"), "--model", "no.such_model", "--out", str(missing))
    assert no_folder.returncode == 2 and "does not exist" in no_folder.stderr, no_folder.stderr
    assert "Traceback" not in bad_suffix.stderr + no_folder.stderr and not missing.parent.exists()


def test_segment_refuses_a_png_mask_for_a_volume_before_loading_the_model(tmp_path: Path) -> None:
    from seg_core.samples import sample_file

    name, data = sample_file("phantom-3d")
    volume = tmp_path / name
    volume.write_bytes(data)
    result = run_cli("segment", str(volume), "--model", "no.such_model", "--out", str(tmp_path / "mask.png"))
    assert result.returncode == 2 and "needs a NIfTI mask" in result.stderr, result.stderr
    assert not (tmp_path / "mask.png").exists()


def test_segment_help_documents_the_exit_status() -> None:
    result = run_cli("segment", "--help")
    assert result.returncode == 0 and "exit status" in result.stdout and "2 a usage error" in result.stdout
