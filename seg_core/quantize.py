"""int8 graphs for ONNX Runtime, kept only where validation Dice drops by at most 0.005.

``python -m seg_core quantize --model unet.figshare --data-root ../shared/data``:

1. exports the fp32 graph (:func:`seg_core.backends.export_onnx`);
2. calibrates ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 activations,
   MinMax ranges) on slices of the model's *training* split, preprocessed exactly as at inference;
3. scores the model's validation split with the fp32 graph and with the int8 graph, the way
   ``select`` scores it (per image for slices, per patient for volumes, the chosen post-processing);
4. keeps ``model.int8.onnx`` beside the weights, with its sha256, the two figures and this command
   in ``config.json`` under ``int8``, only when the drop is at most :data:`MAX_DICE_DROP`; otherwise
   deletes it and records the refusal in ``metrics.json``.

The graph is committed with the weights because users have no training data to calibrate on; the
command above rebuilds it. ``backend="auto"`` runs it when present (:func:`seg_core.backends.create_backend`).
The test split is never read.
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
from seg_core.weights import WEIGHTS_DIR, load_model, record_metrics, sha256_file

log = logging.getLogger(__name__)

__all__ = ["INT8_NAME", "MAX_DICE_DROP", "calibration_slices", "quantize_int8"]

INT8_NAME = "model.int8.onnx"
#: The largest validation Dice an int8 graph may lose against fp32 and still be used.
MAX_DICE_DROP = 0.005


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


def _quantize(fp32: Path, slices: list[np.ndarray], target: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"images": s.astype(np.float32)} for s in slices])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32), str(prepared))
        except TypeError:
            # ORT's symbolic shape inference fails on some graphs (SA-UNet's DropBlock/attention
            # concat); ONNX's own shape inference is enough for convolutional nets.
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )


def quantize_int8(
    model_id: str, data_root: str | Path, weights_dir: str | Path = WEIGHTS_DIR, calibration: int = 64
) -> dict[str, Any]:
    """Build, validate and keep (or refuse) the int8 graph of ``model_id``; returns the record."""
    loaded = load_model(model_id, weights_dir)
    reason = onnx_unsupported_reason(loaded.config)
    if reason:
        raise ValueError(f"{model_id} is not quantised: {reason}")
    dataset = loaded.config["dataset"]
    reference = Segmenter(loaded, backend="onnxruntime")
    slices = calibration_slices(reference, dataset, data_root, calibration)
    target = loaded.folder / INT8_NAME
    _quantize(export_onnx(loaded.model, loaded.config), slices, target)
    quantized = Segmenter(load_model(model_id, weights_dir), backend=OnnxRuntimeBackend(target, name="onnxruntime-int8"))
    fp32_dice, int8_dice = validation_dice(reference, dataset, data_root), validation_dice(quantized, dataset, data_root)
    record = {
        "file": INT8_NAME,
        "calibration_slices": len(slices),
        "val_dice_fp32": fp32_dice,
        "val_dice_int8": int8_dice,
        "drop": fp32_dice - int8_dice,
        "max_drop": MAX_DICE_DROP,
        "accepted": fp32_dice - int8_dice <= MAX_DICE_DROP,
        "command": f"python -m seg_core quantize --model {model_id} --data-root {data_root} --calibration {calibration}",
    }
    config_path = loaded.folder / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("int8", None)
    if record["accepted"]:
        config["int8"] = {**record, "sha256": sha256_file(target)}
    else:
        target.unlink()
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    record_metrics(loaded.folder, "quantization", record)
    log.info(
        "%s int8: validation %.4f vs fp32 %.4f (%s)", model_id, int8_dice, fp32_dice, "kept" if record["accepted"] else "refused"
    )
    return record
