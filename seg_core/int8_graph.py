"""A network's int8 ONNX graph, built from its calibration ranges, and a digest of what the graph computes.

Why the ranges ship and the graph does not: ``weights/`` must stay under 80 MB, and an int8 graph is
2-3 MB where ONNX Runtime's calibration cache (one min/max per activation, JSON) is about 10 KB.
Users have no training data to calibrate on; given the ranges, ``quantize_static`` skips calibration
and writes the same graph every time (0.14 s for unet.figshare), so the graph is built at first use
(:func:`seg_core.backends.int8_graph`) into the export cache outside git.

A rebuilt graph is compared with the validated one by :func:`graph_digest`, not by file sha256: the
exporter's annotations (node ``metadata_props`` holding module paths and stack traces, doc strings)
change when the code is refactored, while what ONNX Runtime executes does not.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = ["RECIPE", "build_int8_graph", "cached_int8_graph", "graph_digest", "toolchain_versions"]

#: The quantisation settings of :func:`build_int8_graph`; part of the cache key, so a changed recipe
#: never serves a graph built with the old one.
RECIPE = "QDQ, per-channel int8 weights, uint8 activations, MinMax ranges"


def build_int8_graph(fp32_path: Path, calibration_json: Path, target: Path, slices: list[np.ndarray] | None = None) -> Path:
    """Quantise the fp32 graph at ``fp32_path`` into ``target`` with ONNX Runtime's static quantisation.

    With ``slices`` (preprocessed ``(1, C, H, W)`` float32 arrays) the activation ranges are measured on
    them and saved to ``calibration_json``, which must not exist yet (ONNX Runtime would silently use
    it instead). Without, the ranges are read from ``calibration_json`` and nothing is measured.
    ``target`` is written under a temporary name and renamed, so a concurrent reader never sees half a
    file. Returns ``target``.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration_json, target = Path(calibration_json), Path(target)
    if slices is not None and calibration_json.exists():
        raise FileExistsError(f"{calibration_json} exists; delete it to calibrate again")
    if slices is None and not calibration_json.is_file():
        raise FileNotFoundError(f"no calibration ranges at {calibration_json}; give slices to measure them")

    class Reader(CalibrationDataReader):
        def __init__(self, batches: list[np.ndarray]) -> None:
            self.items = iter([{"images": s.astype(np.float32)} for s in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    partial = target.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32_path), str(prepared))
        except TypeError:
            # ORT's symbolic shape inference fails on some graphs (SA-UNet's DropBlock/attention
            # concat); ONNX's own shape inference is enough for convolutional nets.
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        try:
            quantize_static(
                str(prepared),
                str(partial),
                None if slices is None else Reader(slices),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibration_cache_path=str(calibration_json),
            )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def toolchain_versions() -> dict[str, str]:
    """The versions a built graph depends on besides the weights and ranges (recorded by :mod:`seg_core.quantize`)."""
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}


_BUILD_LOCK = threading.Lock()


def cached_int8_graph(fp32_path: Path, calibration: bytes) -> Path:
    """The int8 graph of the fp32 export at ``fp32_path`` with the ranges ``calibration`` (the JSON's bytes), built once.

    It lies beside the fp32 export as ``<fp32 export name>.int8-<key>.onnx``: the fp32 name already
    carries the weights' sha256, the input shape and the torch / ONNX Runtime / opset versions
    (:func:`seg_core.backends.export_onnx`); the key adds the sha256 of the ranges and :data:`RECIPE`.
    The bytes are passed, not a path, so the ranges built from are the ones the caller checked.
    """
    key = hashlib.sha256(RECIPE.encode() + b"\0" + calibration).hexdigest()[:16]
    path = Path(fp32_path).with_name(f"{Path(fp32_path).stem}.int8-{key}.onnx")
    with _BUILD_LOCK:
        if not path.is_file():
            with tempfile.TemporaryDirectory() as scratch:
                ranges = Path(scratch) / "calibration.json"
                ranges.write_bytes(calibration)
                build_int8_graph(fp32_path, ranges, path)
    return path


def graph_digest(graph: str | Path | onnx.ModelProto) -> str:
    """sha256 of the graph with its annotations removed: equal digests mean ONNX Runtime runs the same computation.

    Cleared: ``doc_string`` and ``metadata_props`` of the model, its graphs (subgraphs and functions
    included), nodes, inputs, outputs, value infos and initializers. Kept: every node's operator,
    inputs, outputs and attributes, every initializer's values, the opsets.
    """
    import onnx

    model = onnx.ModelProto()
    if isinstance(graph, onnx.ModelProto):
        model.CopyFrom(graph)
    else:
        model.ParseFromString(Path(graph).read_bytes())
    _clear_annotations(model)
    for function in model.functions:
        _clear_annotations(function)
        for node in function.node:
            _clear_node(node)
    _clear_graph(model.graph)
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def _clear_annotations(message) -> None:  # noqa: ANN001 - any ONNX message with these fields
    for field in ("doc_string", "metadata_props"):
        if field in message.DESCRIPTOR.fields_by_name:
            message.ClearField(field)


def _clear_graph(graph: onnx.GraphProto) -> None:
    _clear_annotations(graph)
    for item in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        _clear_annotations(item)
    for node in graph.node:
        _clear_node(node)


def _clear_node(node: onnx.NodeProto) -> None:
    import onnx

    _clear_annotations(node)
    for attribute in node.attribute:
        _clear_annotations(attribute)
        if attribute.type == onnx.AttributeProto.GRAPH:
            _clear_graph(attribute.g)
        for subgraph in attribute.graphs:
            _clear_graph(subgraph)
