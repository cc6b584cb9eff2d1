"""int8 graphs for ONNX Runtime, kept only where validation Dice drops by at most 0.005.

``python -m seg_core quantize --model unet.figshare --data-root ../shared/data``:

1. exports the fp32 graph (:func:`seg_core.backends.export_onnx`);
2. calibrates ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 activations,
   MinMax ranges) on slices of the model's *training* split, preprocessed exactly as at inference,
   and saves the activation ranges (ONNX Runtime's calibration cache, JSON);
3. builds the int8 graph again from those ranges alone, as users' machines do at first use, and
   checks that it is the calibrated graph (:func:`seg_core.int8_graph.graph_digest`);
4. scores the model's validation split with the fp32 graph and with that int8 graph, the way
   ``select`` scores it (per image for slices, per patient for volumes, the chosen post-processing);
5. keeps the ranges as ``model.int8.calibration.json`` beside the weights, with their sha256, the
   graph's content digest, the two figures, the versions it was built with and this command in
   ``config.json`` under ``int8``, only when the drop is at most :data:`MAX_DICE_DROP`; otherwise
   deletes them. The figures go to ``metrics.json`` either way.

Why ranges and not the graph: users have no training data to calibrate on, but a graph is 2-3 MB per
model against about 10 KB of ranges, and ``weights/`` must stay under 80 MB. Given the ranges, ONNX
Runtime rebuilds the same graph in a fraction of a second; :func:`seg_core.backends.int8_graph` does
so at first use, into the export cache outside git, and ``backend="auto"`` runs it when its digest
is the one validated here. A ``model.int8.onnx`` shipped by the old layout is deleted. The test split
is never read.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg_core.backends import OnnxRuntimeBackend, export_onnx, onnx_unsupported_reason
from seg_core.data import load_split, open_dataset
from seg_core.evaluate import sample_scan, validation_dice
from seg_core.inference import Segmenter
from seg_core.int8_graph import build_int8_graph, cached_int8_graph, graph_digest, toolchain_versions
from seg_core.weights import WEIGHTS_DIR, load_model, record_metrics, sha256_file
from seg_core.weights.layout import INT8_CALIBRATION_NAME

log = logging.getLogger(__name__)

__all__ = ["MAX_DICE_DROP", "calibration_slices", "quantize_int8"]

#: The largest validation Dice an int8 graph may lose against fp32 and still be used.
MAX_DICE_DROP = 0.005
#: The int8 graph the weights folders shipped before they shipped ranges instead.
_LEGACY_GRAPH_NAME = "model.int8.onnx"


def calibration_slices(segmenter: Segmenter, dataset_name: str, data_root: str | Path, count: int = 64) -> list[np.ndarray]:
    """``count`` preprocessed ``(1, C, H, W)`` slices of the training split, spread over its patients."""
    dataset = open_dataset(dataset_name, data_root)
    groups = [g for g in load_split(dataset_name)["train"] if g in set(dataset.groups())]
    per_group = max(1, -(-count // len(groups)))
    slices: list[np.ndarray] = []
    for group in groups:
        samples = [s for s in dataset.samples(group) if s.image.any()]
        for sample in samples[:: max(1, len(samples) // per_group)][:per_group]:
            channels = segmenter.prepare(sample_scan(sample))
            image = torch.from_numpy(segmenter.normalize.slice(channels, 0)[None])
            slices.append(torch.nn.functional.interpolate(image, size=segmenter.input_size, mode="bilinear").numpy())
        if len(slices) >= count:
            break
    return slices[:count]


def quantize_int8(
    model_id: str, data_root: str | Path, weights_dir: str | Path = WEIGHTS_DIR, calibration: int = 64
) -> dict[str, Any]:
    """Calibrate, build, validate and keep (or refuse) the int8 graph of ``model_id``; returns the record."""
    loaded = load_model(model_id, weights_dir)
    reason = onnx_unsupported_reason(loaded.config)
    if reason:
        raise ValueError(f"{model_id} is not quantised: {reason}")
    dataset = loaded.config["dataset"]
    reference = Segmenter(loaded, backend="onnxruntime")
    slices = calibration_slices(reference, dataset, data_root, calibration)
    fp32 = export_onnx(loaded.model, loaded.config)
    with tempfile.TemporaryDirectory() as scratch:
        ranges = Path(scratch) / INT8_CALIBRATION_NAME
        calibrated = build_int8_graph(fp32, ranges, Path(scratch) / "calibrated.onnx", slices)
        graph = cached_int8_graph(fp32, ranges.read_bytes())
        digest = graph_digest(graph)
        if graph_digest(calibrated) != digest:
            raise RuntimeError(
                f"ONNX Runtime built {graph} from the saved ranges differently than while calibrating; "
                "users could not rebuild the validated graph (delete that file if it is left from an older build)"
            )
        quantized = Segmenter(load_model(model_id, weights_dir), backend=OnnxRuntimeBackend(graph, name="onnxruntime-int8"))
        fp32_dice, int8_dice = validation_dice(reference, dataset, data_root), validation_dice(quantized, dataset, data_root)
        record = {
            "file": INT8_CALIBRATION_NAME,
            "calibration_slices": len(slices),
            "val_dice_fp32": fp32_dice,
            "val_dice_int8": int8_dice,
            "drop": fp32_dice - int8_dice,
            "max_drop": MAX_DICE_DROP,
            "accepted": fp32_dice - int8_dice <= MAX_DICE_DROP,
            "versions": toolchain_versions(),
            "command": f"python -m seg_core quantize --model {model_id} --data-root {data_root} --calibration {calibration}",
        }
        _keep_or_refuse(loaded.folder, record, ranges, digest)
    log.info(
        "%s int8: validation %.4f vs fp32 %.4f (%s)", model_id, int8_dice, fp32_dice, "kept" if record["accepted"] else "refused"
    )
    return record


def _keep_or_refuse(folder: Path, record: dict[str, Any], ranges: Path, digest: str) -> None:
    """Write the accepted ranges and their ``config.json`` record, or remove both; drop the old layout's graph."""
    kept = folder / INT8_CALIBRATION_NAME
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("int8", None)
    if record["accepted"]:
        kept.write_bytes(ranges.read_bytes())
        config["int8"] = {**record, "sha256": sha256_file(kept), "graph_digest": digest}
    else:
        kept.unlink(missing_ok=True)
    (folder / _LEGACY_GRAPH_NAME).unlink(missing_ok=True)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    record_metrics(folder, "quantization", record)
