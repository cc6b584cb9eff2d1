"""Shrinking a trained folder's ``model.safetensors`` to per-channel int8 kernels, kept only if validation holds.

``python -m seg_core store-int8 --model unet.lgg --data-root ../shared/data``:

1. scores the model's validation split as ``select`` scores it (per image for slices, per patient
   for volumes, with its chosen post-processing), on the float32 path: the fp32 ONNX export for
   convolutional networks, torch for spiking models and baselines;
2. writes the weights with :mod:`seg_core.weights.int8_storage` to a scratch folder, loads them
   back (float32 kernels decoded from int8) and scores validation again;
3. replaces ``model.safetensors`` and ``config.json`` only when the drop is at most
   :data:`MAX_DICE_DROP`, records both figures and this command under ``storage`` in
   ``config.json`` and ``metrics.json``, and otherwise leaves the folder as it was.

The weights change, so figures measured on the old ones no longer describe the folder: the
accepted int8 *graph* (``quantize``), built from the old weights, is removed, and the test split
must be evaluated again (``evaluate --split test --write``). The test split is never read here.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from seg_core.backends import onnx_unsupported_reason
from seg_core.evaluate import validation_dice
from seg_core.inference import Segmenter
from seg_core.models import get_spec
from seg_core.weights import WEIGHTS_DIR, forget_metrics, load_model, record_metrics, save_pretrained
from seg_core.weights.layout import CONFIG_NAME, WEIGHTS_NAME

log = logging.getLogger(__name__)

__all__ = ["MAX_DICE_DROP", "store_int8"]

#: The largest validation Dice int8 storage may lose against the float weights (as for int8 graphs).
MAX_DICE_DROP = 0.005
_LEGACY_GRAPH_FILES = ("model.int8.onnx", "model.int8.calibration.json")


def _float_path(config: dict[str, Any]) -> str:
    """The float32 backend a model is scored on: the ONNX export where it exists, else torch."""
    return "torch" if onnx_unsupported_reason(config) else "onnxruntime"


def store_int8(model_id: str, data_root: str | Path, weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Convert ``model_id``'s weights to int8 storage if validation Dice drops <= 0.005; returns the record."""
    loaded = load_model(model_id, weights_dir)
    if not get_spec(loaded.config["architecture"]).trainable:
        # Closed-form baselines are a few hundred KB whose fitted thresholds must not be rounded.
        raise ValueError(f"{model_id} is a closed-form baseline; its float weights stay as they are")
    previous = loaded.config.get("storage")
    if previous and previous.get("accepted"):
        log.info("%s is already stored as int8", model_id)
        return previous
    dataset, backend = loaded.config["dataset"], _float_path(loaded.config)
    before = validation_dice(Segmenter(loaded, backend=backend), dataset, data_root)
    with tempfile.TemporaryDirectory() as scratch:
        # A new folder gives the re-read weights their own sha256, hence their own ONNX export.
        candidate = save_pretrained(
            loaded.model, loaded.config, Path(scratch) / model_id, half=loaded.config.get("stored_dtype") == "float16", int8=True
        )
        after = validation_dice(Segmenter(load_model(candidate), backend=backend), dataset, data_root)
        record = {
            "codec": "int8 per channel (kernels)",
            "backend": backend,
            "val_dice_before": before,
            "val_dice_int8_storage": after,
            "drop": before - after,
            "max_drop": MAX_DICE_DROP,
            "accepted": before - after <= MAX_DICE_DROP,
            "bytes_before": (loaded.folder / WEIGHTS_NAME).stat().st_size,
            "bytes_after": (candidate / WEIGHTS_NAME).stat().st_size,
            "command": f"python -m seg_core store-int8 --model {model_id} --data-root {data_root}",
        }
        if record["accepted"]:
            config = json.loads((candidate / CONFIG_NAME).read_text())
            config.pop("int8", None)  # an int8 graph of the old weights; `quantize` builds a new one
            config["storage"] = record
            shutil.copyfile(candidate / WEIGHTS_NAME, loaded.folder / WEIGHTS_NAME)
            (loaded.folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
            for name in _LEGACY_GRAPH_FILES:
                (loaded.folder / name).unlink(missing_ok=True)
            # The int8-graph record was measured on the replaced weights (test figures say whose they are).
            forget_metrics(loaded.folder, "quantization")
    record_metrics(loaded.folder, "storage", record)
    log.info(
        "%s int8 storage: validation %.4f vs %.4f, %d -> %d bytes (%s)",
        model_id,
        after,
        before,
        record["bytes_before"],
        record["bytes_after"],
        "kept" if record["accepted"] else "refused",
    )
    return record
