"""Where a network's forward pass runs: torch eager (the reference) or ONNX Runtime.

Both backends take a batch of preprocessed slices ``(N, C, H, W)`` float32 and return logits
``(N, 1, H, W)`` float32, so :class:`~seg_core.inference.Segmenter` never knows which one runs.

* ``torch``: the network itself, channels-last, under ``torch.inference_mode``; bfloat16 autocast
  only when asked for and the CPU computes it natively (:func:`seg_core.inference.fast_bfloat16`).
* ``onnxruntime`` / ``onnxruntime-int8``: the network exported with ``torch.onnx.export`` (dynamo exporter, dynamic batch)
  at first use, cached outside git under :func:`export_cache_dir`, keyed by the weights' sha256,
  the input shape and the torch / ONNX Runtime versions, so a new runtime or new weights never reuse
  a stale graph. ``python -m seg_core export --model ID`` builds the same file ahead of time. The
  int8 graph is quantised from that export with the weights' shipped calibration ranges, at first use
  too (:func:`int8_graph`), and cached beside it.

Why ONNX Runtime by default (``benchmarks/volume_speed.py``, the README's tables, one BraTS volume
with unet.figshare on 2 cores): its fp32 graph took 1.55 s against 1.98 s for torch eager fp32, and
the int8 graph (:func:`int8_graph`, built from the calibration ranges :mod:`seg_core.quantize` ships
beside validated weights) 1.15 s; with torch held to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, no bf16) torch
took 1.76 s and int8 1.11 s. Its masks agree with torch's (``tests/test_backends.py``). OpenVINO was
probed by the issue's reporter at torch-eager speed with default settings, so it is not added.

Spiking models stay on torch: their forward pass loops over time steps with LIF state, and their
attention maps (``seg_core.explain``) are read from the torch modules during that loop; the
baselines (naive prior, pixel classifier) are not convolutional nets and cost microseconds on torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "Backend",
    "OnnxRuntimeBackend",
    "TorchBackend",
    "create_backend",
    "export_cache_dir",
    "export_onnx",
    "int8_graph",
    "onnx_unsupported_reason",
]

BACKENDS = ("auto", "torch", "onnxruntime", "onnxruntime-int8")
# The opset of the exported graphs: the newest the dynamo exporter of torch 2.13 writes by default.
OPSET = 18


class Backend(Protocol):
    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """The network in torch eager mode: the reference every other backend is tested against.

    Not thread-safe for spiking models (membrane state lives in the modules during a pass): the
    :class:`~seg_core.inference.Segmenter` that owns it runs one pass at a time.
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device, bfloat16: bool = False) -> None:
        # Channels-last (NHWC) is the layout oneDNN's and cuDNN's convolutions run fastest: measured
        # 1.45x for the U-Net on a 2-core AVX-512 CPU (bfloat16 and float32), 1.1-2x across the zoo.
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self.device = device
        self.bfloat16 = bfloat16
        if bfloat16:
            self.name = "torch-bf16"

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            logits = self.model(batch)
        return logits.float().cpu().numpy()


class OnnxRuntimeBackend:
    """An exported graph in an ONNX Runtime CPU session (thread-safe: ``run`` may be called concurrently)."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, name: str = "onnxruntime") -> None:
        import onnxruntime as ort

        self.name = name
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]


def export_cache_dir() -> Path:
    """``$BRAINSEG_CACHE_DIR/onnx``, else ``~/.cache/brainseg-studio/onnx``: outside git, safe to delete."""
    root = os.environ.get("BRAINSEG_CACHE_DIR") or Path.home() / ".cache" / "brainseg-studio"
    return Path(root) / "onnx"


def onnx_unsupported_reason(config: dict[str, Any]) -> str | None:
    """Why a model stays on torch, or ``None`` when it can be exported."""
    if config.get("spiking"):
        return "spiking models keep their LIF state and attention recordings in torch"
    if config.get("architecture") in ("naive_prior", "pixel_classifier"):
        return "baselines are not convolutional networks; they run in microseconds on torch"
    return None


def _export_key(model: nn.Module, config: dict[str, Any], channels: int) -> str:
    import onnxruntime

    digest = hashlib.sha256()
    weights = config.get("sha256") or {}
    if weights:
        digest.update(repr(sorted(weights.items())).encode())
    else:  # weights made in this process (tests, training): hash the tensors themselves
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    size = tuple(config["input_size"])
    versions = f"torch{torch.__version__}-ort{onnxruntime.__version__}-opset{OPSET}"
    digest.update(f"{config.get('architecture')}|{channels}|{size}|{versions}".encode())
    return digest.hexdigest()[:24]


_EXPORT_LOCK = threading.Lock()


def export_onnx(model: nn.Module, config: dict[str, Any], cache_dir: Path | None = None) -> Path:
    """The network as an ONNX graph with a dynamic batch axis, exported once and cached.

    The file name is ``<model id>-<key>.onnx``; the key covers the weights' sha256, the input shape
    and the torch, ONNX Runtime and opset versions. Written to a temporary name and renamed, so a
    concurrent reader never sees half a file.
    """
    channels = len(config["modalities"])
    height, width = config["input_size"]
    folder = cache_dir or export_cache_dir()
    path = folder / f"{config.get('id', config.get('architecture'))}-{_export_key(model, config, channels)}.onnx"
    with _EXPORT_LOCK:
        if path.is_file():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        example = torch.zeros(2, channels, height, width)
        batch = torch.export.Dim("batch", min=1, max=4096)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        model = model.float().eval()
        # The exporter reports its progress with print() and warns that torchvision's ops are not
        # registered (we use none): keep both out of users' terminals.
        registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = registration_log.level
        registration_log.setLevel(logging.ERROR)
        try:
            with torch.no_grad(), open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    opset_version=OPSET,
                    dynamic_shapes=({0: batch},),
                    input_names=["images"],
                    output_names=["logits"],
                )
        finally:
            registration_log.setLevel(level)
        program.save(str(partial))
        partial.replace(path)
        log.info("exported %s to %s", config.get("id"), path)
    return path


def int8_graph(model: nn.Module, config: dict[str, Any], folder: Path | None) -> Path | None:
    """The weights' accepted int8 graph, built at first use from their calibration ranges, or ``None``.

    The ranges (``config["int8"]["file"]`` in ``folder``) must match the sha256 in ``config.json``.
    The graph is built once into :func:`export_cache_dir` beside the fp32 export
    (:func:`seg_core.int8_graph.cached_int8_graph`) and used only when its content digest equals the
    ``graph_digest`` that :mod:`seg_core.quantize` validated; otherwise a warning says why and the
    result is ``None``, so ``auto`` runs the fp32 graph.

    Raises:
        WeightsError: the ranges do not match their sha256.
    """
    return _int8_graph_or_why_not(model, config, folder)[0]


def _int8_graph_or_why_not(model: nn.Module, config: dict[str, Any], folder: Path | None) -> tuple[Path | None, str | None]:
    """``(graph, None)``, or ``(None, why)``; ``why`` is None where the weights have no accepted int8 record."""
    from seg_core.int8_graph import cached_int8_graph, graph_digest, toolchain_versions
    from seg_core.weights import WeightsError

    record = config.get("int8") or {}
    if not record.get("accepted") or folder is None:
        return None, None
    ranges = Path(folder) / record["file"]
    if "graph_digest" not in record:
        why = f"its int8 record is in the old layout (a shipped {record['file']}, no calibration ranges)"
    elif not ranges.is_file():
        why = f"its int8 calibration ranges {record['file']} are missing"
    else:
        calibration = ranges.read_bytes()
        if hashlib.sha256(calibration).hexdigest() != record.get("sha256"):
            raise WeightsError(f"{ranges} does not match the sha256 in its config.json; refusing to load it")
        try:
            graph = cached_int8_graph(export_onnx(model, config), calibration)
        except Exception as error:  # noqa: BLE001 - a graph that cannot be built here is run as fp32
            why = f"the int8 graph could not be built here ({error})"
        else:
            if graph_digest(graph) == record["graph_digest"]:
                return graph, None
            # Same weights and ranges, so the exporter or quantiser differs: say which versions validated it.
            built, here = record.get("versions") or {}, toolchain_versions()
            why = (
                f"the int8 graph rebuilt here ({graph}) differs from the validated one (validated with torch "
                f"{built.get('torch', '?')} / ONNX Runtime {built.get('onnxruntime', '?')}, here {here['torch']} / "
                f"{here['onnxruntime']})"
            )
    log.warning("%s: %s; running the fp32 graph", config.get("id"), why)
    return None, f"{why}; rerun python -m seg_core quantize"


def create_backend(
    model: nn.Module,
    config: dict[str, Any],
    device: torch.device,
    preference: str = "auto",
    bfloat16: bool = False,
    folder: Path | None = None,
) -> tuple[Backend, str]:
    """The backend to run ``model`` on, and a sentence saying why that one.

    ``auto``: ONNX Runtime for exportable networks on the CPU unless bfloat16 was asked for (then
    torch, whose oneDNN bf16 kernels are the fast path on CPUs that have them), else torch; the int8
    graph (:func:`int8_graph`, built from the ranges in ``folder``) where its validation Dice passed
    :mod:`seg_core.quantize`'s gate and the graph built here is the one validated, else the fp32
    export, and the reason says why not int8. ``onnxruntime`` is always the fp32 graph.
    ``onnxruntime`` and ``onnxruntime-int8`` fail loudly when impossible; ``auto`` falls back to
    torch and says why.
    """
    if preference not in BACKENDS:
        raise ValueError(f"unknown backend {preference!r}; choose one of {', '.join(BACKENDS)}")
    reason = onnx_unsupported_reason(config)
    if preference == "onnxruntime-int8" and (bfloat16 or device.type != "cpu"):
        raise ValueError(
            f"onnxruntime-int8 runs float32 inputs on the CPU; it cannot honour {'bfloat16' if bfloat16 else device.type}"
        )
    why_not_int8 = None
    if preference in ("auto", "onnxruntime-int8") and not reason and not bfloat16 and device.type == "cpu":
        int8, why_not_int8 = _int8_graph_or_why_not(model, config, folder)
        if int8 is not None:
            drop = config["int8"]["drop"]
            return OnnxRuntimeBackend(int8, name="onnxruntime-int8"), f"int8 graph (validation Dice drop {drop:+.4f})"
        if preference == "onnxruntime-int8":
            raise ValueError(
                f"{config.get('id')} cannot run on onnxruntime-int8: "
                + (why_not_int8 or "it has no accepted int8 graph; make one with python -m seg_core quantize")
            )
    if preference == "torch" or (preference == "auto" and (reason or bfloat16 or device.type != "cpu")):
        why = "asked for" if preference == "torch" else reason or ("bfloat16 asked for" if bfloat16 else "not on the CPU")
        return TorchBackend(model, device, bfloat16), why
    if reason:
        raise ValueError(f"{config.get('id')} cannot run on {preference}: {reason}")
    try:
        why = f"fp32 exported graph: {why_not_int8}" if why_not_int8 else "exported graph (default on the CPU)"
        return OnnxRuntimeBackend(export_onnx(model, config)), why
    except Exception as error:  # noqa: BLE001 - any exporter/runtime failure falls back to the reference
        if preference == "onnxruntime":
            raise
        log.warning("%s: ONNX export failed (%s); running on torch", config.get("id"), error)
        return TorchBackend(model, device, bfloat16), f"ONNX export failed: {error}"
