"""seg_core.batch without the public data: finding cases, the journal and resume, safe writes, the report.

The cohort runs use the shipped ``unet.figshare`` on the built-in 2D phantom, so they exercise the
real inference path in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seg_core.batch import CohortError, find_cases, run_cohort
from seg_core.batch.cases import input_sha256, safe_name
from seg_core.batch.report import model_summary
from seg_core.batch.results import OutputPathError, ResultStore, inside, write_atomic
from seg_core.samples import sample_file
from seg_core.weights import WeightsError

REPO = Path(__file__).resolve().parent.parent


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _phantom_cohort(folder: Path) -> Path:
    """Two phantom slices with masks beside them, one in images/ + masks/, and one damaged file."""
    from seg_core.samples import load_sample

    name, data = sample_file("phantom-2d")
    _, mask = load_sample("phantom-2d")
    truth = mask[0] * 255
    (folder / "a.png").parent.mkdir(parents=True, exist_ok=True)
    (folder / "a.png").write_bytes(data)
    _png(folder / "a_mask.png", truth)
    flipped = np.asarray(Image.open(folder / "a.png"))[:, ::-1]
    _png(folder / "b.png", flipped)
    _png(folder / "b_mask.png", truth[:, ::-1])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def test_cases_of_folders_files_and_csv(tmp_path: Path) -> None:
    rgb = np.full((8, 8, 3), 40, dtype=np.uint8)
    _png(tmp_path / "cohort" / "slice.png", rgb[..., 0])
    _png(tmp_path / "cohort" / "slice_mask.png", rgb[..., 0])
    _png(tmp_path / "cohort" / "figshare" / "images" / "7.png", rgb[..., 0])
    _png(tmp_path / "cohort" / "figshare" / "masks" / "7.png", rgb[..., 0])
    for number in (1, 2, 10):  # an LGG-style stack: one case
        _png(tmp_path / "cohort" / "TCGA_X" / f"TCGA_X_{number}.png", rgb)
        _png(tmp_path / "cohort" / "TCGA_X" / f"TCGA_X_{number}_mask.png", rgb[..., 0])
    (tmp_path / "cohort" / "notes.txt").write_text("not a scan")
    cases = {case.name: case for case in find_cases(tmp_path / "cohort")}
    assert sorted(cases) == ["TCGA_X", "figshare_7", "slice"]  # a nested folder prefixes its cases
    assert cases["slice"].truth == str(tmp_path / "cohort" / "slice_mask.png")
    assert cases["figshare_7"].truth == str(tmp_path / "cohort" / "figshare" / "masks" / "7.png")
    assert cases["TCGA_X"].paths == (str(tmp_path / "cohort" / "TCGA_X"),) and cases["TCGA_X"].truth is None
    # The stack folder given directly is one case too.
    assert [c.name for c in find_cases(tmp_path / "cohort" / "TCGA_X")] == ["TCGA_X"]

    table = tmp_path / "list.csv"
    table.write_text("path,truth,case\ncohort/slice.png,cohort/slice_mask.png,../../escape\n")
    (case,) = find_cases(table)
    assert case.name == "escape" and case.truth == str(tmp_path / "cohort" / "slice_mask.png")
    with pytest.raises(CohortError, match="'path' column"):
        (tmp_path / "bad.csv").write_text("file\nx.png\n")
        find_cases(tmp_path / "bad.csv")
    with pytest.raises(CohortError, match="no such file"):
        find_cases(tmp_path / "missing")
    with pytest.raises(CohortError, match="no scans found"):
        (tmp_path / "empty").mkdir()
        find_cases(tmp_path / "empty")


def test_names_and_writes_stay_inside_the_output_folder(tmp_path: Path) -> None:
    for hostile in ("../../etc/passwd", "/abs/path", "..", "a/../../b", "\\..\\win"):
        name = safe_name(hostile)
        assert "/" not in name and "\\" not in name and ".." not in name and name
        assert inside(tmp_path, f"masks/m/{name}.png").is_relative_to(tmp_path.resolve())
    with pytest.raises(OutputPathError, match="outside the output folder"):
        write_atomic(tmp_path, "../escaped.txt", b"x")
    assert not (tmp_path.parent / "escaped.txt").exists()
    target = write_atomic(tmp_path, "sub/file.bin", b"payload")
    assert target.read_bytes() == b"payload"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"], "no temporary file is left behind"


def test_journal_resume_keys_and_a_torn_last_line(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.add(
        "c|m", [{"case": "c", "model": "m", "status": "ok", "input_sha256": "i1", "model_sha256": "m1", "dice": float("nan")}]
    )
    store.add(
        "d|m",
        [{"case": "d", "model": "m", "status": "error", "error": "ScanError: bad", "input_sha256": "i2", "model_sha256": "m1"}],
    )
    with (tmp_path / "results.jsonl").open("a") as stream:
        stream.write('{"case": "half a line')  # what a killed run leaves
    reopened = ResultStore(tmp_path)
    assert reopened.done("c|m", "i1", "m1")
    assert not reopened.done("c|m", "i1-changed", "m1") and not reopened.done("c|m", "i1", "m2")
    assert not reopened.done("d|m", "i2", "m1"), "error rows are tried again"
    assert reopened.table(["c|m"])[0]["dice"] is None, "nan is stored as an empty cell"
    reopened.add("d|m", [{"case": "d", "model": "m", "status": "ok", "input_sha256": "i2", "model_sha256": "m1"}])
    assert [row["status"] for row in ResultStore(tmp_path).table(["c|m", "d|m"])] == ["ok", "ok"], "a retry replaces the error"


def test_cohort_run_error_row_resume_and_report(tmp_path: Path) -> None:
    cohort = _phantom_cohort(tmp_path / "in")
    out = tmp_path / "out"
    run = run_cohort([cohort], ["unet.figshare"], out, workers=1, progress=False)
    rows = {row["case"]: row for row in run.rows}
    assert sorted(rows) == ["a", "b", "broken"]
    assert rows["broken"]["status"] == "error" and rows["broken"]["error"].startswith("ScanError: ")
    assert "\n" not in rows["broken"]["error"]
    for case in ("a", "b"):
        row = rows[case]
        assert row["status"] == "ok" and row["kind"] == "slice" and row["backend"]
        mask = np.asarray(Image.open(out / row["mask"]))
        assert row["tumor_area_px"] == int((mask > 0).sum()) > 0
        assert 0.5 < row["dice"] <= 1.0, "the phantom's blob is found"
    # Mirrored input, mirrored truth: the same figures up to the model's own asymmetry.
    assert abs(rows["a"]["dice"] - rows["b"]["dice"]) < 0.1

    table = pd.read_csv(out / "results.csv")
    assert list(table["case"]) == ["a", "b", "broken"] and list(table["status"]) == ["ok", "ok", "error"]
    summary = (out / "summary.md").read_text()
    figures = model_summary(run.rows)["unet.figshare"]
    assert figures["dice"]["mean"] == pytest.approx(np.mean([rows["a"]["dice"], rows["b"]["dice"]]))
    assert f"{figures['dice']['mean']:.3f} ± {figures['dice']['std']:.3f}" in summary and "broken" in summary
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = run_cohort([cohort], ["unet.figshare"], out, workers=1, progress=False)
    assert (again.ran, again.skipped) == (1, 2), "only the error row is tried again"
    (cohort / "b.png").write_bytes((cohort / "a.png").read_bytes())  # b's content changes: b runs again
    assert input_sha256(find_cases(cohort)[1]) != rows["b"]["input_sha256"]
    third = run_cohort([cohort], ["unet.figshare"], out, workers=1, progress=False, parquet=True)
    assert third.ran == 2 and third.skipped == 1
    as_csv, as_parquet = pd.read_csv(out / "results.csv"), pd.read_parquet(out / "results.parquet")
    assert list(as_parquet.columns) == list(as_csv.columns) and list(as_parquet["case"]) == ["a", "b", "broken"]
    assert np.allclose(as_parquet["dice"].astype(float), as_csv["dice"].astype(float), equal_nan=True)


def test_unknown_model_fails_before_any_work(tmp_path: Path) -> None:
    cohort = _phantom_cohort(tmp_path / "in")
    with pytest.raises(WeightsError, match="no weights named 'no_such.model'"):
        run_cohort([cohort], ["no_such.model"], tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out" / "masks").exists()


def test_ray_is_optional_and_never_imported_by_seg_core(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, seg_core, seg_core.batch, seg_core.evaluate, seg_core.cli; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    from seg_core.batch import ray_runner

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(ImportError, match="requirements-cluster.txt"):
        ray_runner.import_ray()


def test_cli_batch_writes_the_files_and_reports_bad_input(tmp_path: Path) -> None:
    cohort = _phantom_cohort(tmp_path / "in")
    command = [sys.executable, "-m", "seg_core", "batch", str(cohort), "--model", "unet.figshare", "--out", str(tmp_path / "o")]
    result = subprocess.run([*command, "--workers", "1", "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "3 (case, model) pairs run, 0 done before, 1 errors" in result.stdout
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {"masks", "results.csv", "summary.md", "summary.png", "results.jsonl"}
    journal = [json.loads(line) for line in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert len(journal) == 3
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "seg_core",
            "batch",
            str(tmp_path / "nothing"),
            "--model",
            "unet.figshare",
            "--out",
            str(tmp_path / "p"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: ") and "no such file" in missing.stderr


@pytest.mark.slow
def test_ray_auto_without_a_cluster_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-cluster.txt")
    if os.environ.get("RAY_ADDRESS") or Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster runs on this machine: --ray auto would join it")
    cohort = _phantom_cohort(tmp_path / "in")
    command = [sys.executable, "-m", "seg_core", "batch", str(cohort), "--model", "unet.figshare", "--out", str(tmp_path / "o")]
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run(
        [*command, "--ray", "auto", "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 2
    assert "error: no Ray cluster at 'auto'" in result.stderr and "ray start --head" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_evaluate_with_ray_auto_without_a_cluster_is_a_clear_error(data_root: Path) -> None:
    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-cluster.txt")
    if os.environ.get("RAY_ADDRESS") or Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster runs on this machine: --ray auto would join it")
    command = [sys.executable, "-m", "seg_core", "evaluate", "--model", "unet.lgg", "--dataset", "lgg"]
    command += ["--split", "test", "--data-root", str(data_root), "--ray", "auto"]  # no --limit: that runs in-process
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: no Ray cluster at 'auto'") and "ray start --head" in result.stderr
