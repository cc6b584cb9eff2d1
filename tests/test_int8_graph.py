"""int8 graphs built at first use from shipped calibration ranges, and checked by content digest.

A tiny U-Net stands in for the shipped nets: its ranges are measured on random slices the way
``quantize`` measures them on training slices, so none of these tests needs data.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from seg_core.backends import OnnxRuntimeBackend, create_backend, export_cache_dir, export_onnx, int8_graph
from seg_core.inference import Segmenter
from seg_core.int8_graph import build_int8_graph, graph_digest, toolchain_versions
from seg_core.weights import WeightsError, load_model, sha256_file
from seg_core.weights.layout import INT8_CALIBRATION_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import UNNORMALIZED, save_tiny_model  # noqa: E402

CPU = torch.device("cpu")


def _slices(count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((1, 1, 32, 32), dtype=np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny U-Net folder with calibration ranges and the accepted ``int8`` record ``quantize`` would write."""
    folder = save_tiny_model(
        tmp_path_factory.mktemp("w") / "unet.tiny", "unet", {"width": 4, "in_channels": 1}, 32, id="unet.tiny", **UNNORMALIZED
    )
    loaded = load_model(folder)
    ranges = folder / INT8_CALIBRATION_NAME
    calibrated = build_int8_graph(
        export_onnx(loaded.model, loaded.config), ranges, tmp_path_factory.mktemp("g") / "i.onnx", _slices()
    )
    config = json.loads((folder / "config.json").read_text())
    config["int8"] = {
        "file": INT8_CALIBRATION_NAME,
        "calibration_slices": 4,
        "val_dice_fp32": 0.75,
        "val_dice_int8": 0.749,
        "drop": 0.001,
        "max_drop": 0.005,
        "accepted": True,
        "versions": toolchain_versions(),
        "command": "python -m seg_core quantize --model unet.tiny --data-root data --calibration 4",
        "sha256": sha256_file(ranges),
        "graph_digest": graph_digest(calibrated),
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _copy_with_record(folder: Path, target: Path, **changes: object) -> Path:
    copy = shutil.copytree(folder, target / folder.name)
    config = json.loads((copy / "config.json").read_text())
    config["int8"] = {k: v for k, v in {**config["int8"], **changes}.items() if v is not None}
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_the_graph_is_built_once_into_the_export_cache_and_runs_by_default(quantized: Path) -> None:
    loaded = load_model(quantized)
    graph = int8_graph(loaded.model, loaded.config, quantized)
    assert graph is not None and graph.parent == export_cache_dir() and ".int8-" in graph.name
    built = graph.stat().st_mtime_ns
    assert int8_graph(loaded.model, loaded.config, quantized) == graph and graph.stat().st_mtime_ns == built  # reused
    assert not list(export_cache_dir().glob("*.tmp"))
    assert not list(quantized.glob("*.onnx"))  # nothing is written beside the weights
    segmenter = Segmenter(loaded)
    assert segmenter.backend.name == "onnxruntime-int8" and segmenter.backend.path == graph


def test_building_twice_from_the_same_ranges_gives_the_validated_graph(quantized: Path, tmp_path: Path) -> None:
    loaded = load_model(quantized)
    fp32 = export_onnx(loaded.model, loaded.config)
    first = build_int8_graph(fp32, quantized / INT8_CALIBRATION_NAME, tmp_path / "first.onnx")
    second = build_int8_graph(fp32, quantized / INT8_CALIBRATION_NAME, tmp_path / "second.onnx")
    assert graph_digest(first) == graph_digest(second) == loaded.config["int8"]["graph_digest"]
    with pytest.raises(FileExistsError):  # measuring again over kept ranges would silently reuse them
        build_int8_graph(fp32, quantized / INT8_CALIBRATION_NAME, tmp_path / "third.onnx", _slices())


def test_the_digest_ignores_annotations_but_not_what_runs(quantized: Path) -> None:
    loaded = load_model(quantized)
    graph = onnx.load(str(int8_graph(loaded.model, loaded.config, quantized)))
    digest = graph_digest(graph)
    annotated = onnx.ModelProto()
    annotated.CopyFrom(graph)
    annotated.doc_string = "exported after a refactor"
    onnx.helper.set_model_props(annotated, {"note": "another exporter"})
    for node in annotated.graph.node:
        node.doc_string = "stack trace"
        del node.metadata_props[:]
        node.metadata_props.add(key="namespace", value="renamed.module.path")
    assert graph_digest(annotated) == digest
    changed = onnx.ModelProto()
    changed.CopyFrom(graph)
    weights = next(t for t in changed.graph.initializer if t.data_type == onnx.TensorProto.INT8)
    values = onnx.numpy_helper.to_array(weights).copy()
    values.flat[0] = values.flat[0] + 1 if values.flat[0] < 127 else 0
    weights.CopyFrom(onnx.numpy_helper.from_array(values, weights.name))
    assert graph_digest(changed) != digest


def test_changed_ranges_are_refused(quantized: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(quantized, tmp_path / quantized.name)
    ranges = folder / INT8_CALIBRATION_NAME
    ranges.write_text(ranges.read_text().replace("0.", "0.1", 1))
    with pytest.raises(WeightsError, match="sha256"):
        _ = Segmenter(load_model(folder)).backend


def test_a_graph_rebuilt_differently_runs_fp32_and_refuses_int8(quantized: Path, tmp_path: Path, caplog) -> None:
    folder = _copy_with_record(quantized, tmp_path, graph_digest="0" * 64)
    loaded = load_model(folder)
    with caplog.at_level(logging.WARNING, logger="seg_core.backends"):
        backend, reason = create_backend(loaded.model, loaded.config, CPU, folder=folder)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.name == "onnxruntime"
    assert backend.path == export_onnx(loaded.model, loaded.config)
    assert "differs from the validated one" in reason and "quantize" in reason
    assert caplog.text.count("differs from the validated one") == 1, "one warning per fallback"
    with pytest.raises(ValueError, match="cannot run on onnxruntime-int8: the int8 graph rebuilt here .* differs"):
        create_backend(loaded.model, loaded.config, CPU, "onnxruntime-int8", folder=folder)


def test_an_int8_record_of_the_old_layout_runs_fp32(quantized: Path, tmp_path: Path) -> None:
    folder = _copy_with_record(quantized, tmp_path, file="model.int8.onnx", graph_digest=None)
    loaded = load_model(folder)
    backend, reason = create_backend(loaded.model, loaded.config, CPU, folder=folder)
    assert backend.name == "onnxruntime" and "old layout" in reason
    with pytest.raises(ValueError, match="old layout"):
        create_backend(loaded.model, loaded.config, CPU, "onnxruntime-int8", folder=folder)


def test_readme_int8_table_is_what_the_quantize_records_say(capsys):
    import runpy

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "int8_table.py"), run_name="__main__")
    table = capsys.readouterr().out
    assert table.count("\n") > 3, "no quantize record among the shipped weights"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert table in readme, "README's int8 table is stale: paste the output of python scripts/int8_table.py"
