"""Cached access to the library, so moving a slider never reloads a model, re-reads a file or reruns a model.

* Models: one :class:`~seg_core.inference.Segmenter` per weights id for the whole server
  (``st.cache_resource``), keyed also by the weights file's modification time so retrained weights
  are picked up.
* Scans: decoded once per upload, keyed by the SHA-256 of the files' names and bytes.
* Results: a small server-side store (:class:`ResultStore`, least recently used, one hour): the
  model's probabilities per (scan hash, model), and post-processed predictions per (scan hash,
  model, post-processing settings). Changing the threshold re-runs only the post-processing.

``st.cache_resource`` rather than ``st.cache_data`` throughout: ``cache_data`` pickles its values,
and nothing in this project unpickles. Entries expire after an hour so uploads are not kept beyond a
working session; nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from seg_core.inference import Prediction, Segmenter
from seg_core.postprocess import PostProcessing
from seg_core.scans import Scan, load_scan
from seg_core.weights import WEIGHTS_DIR, list_weights, load_model, read_config

#: Environment variable naming another weights folder (tests point it at a temporary one).
WEIGHTS_DIR_ENV = "BRAINSEG_WEIGHTS_DIR"
TTL_SECONDS = 3600


def weights_dir() -> Path:
    """Where the app looks for weights: ``$BRAINSEG_WEIGHTS_DIR`` or the repository's ``weights/``."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured) if configured else WEIGHTS_DIR


def available_weights() -> list[str]:
    """Weights ids in :func:`weights_dir`, read on every call so weights added while the app runs appear."""
    return list_weights(weights_dir())


def weights_config(model_id: str) -> dict[str, Any]:
    """The ``config.json`` of ``model_id`` (small; read each time, so it is always current)."""
    return read_config(weights_dir() / model_id)


def _stamp(model_id: str) -> float:
    path = weights_dir() / model_id / "model.safetensors"
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(max_entries=12, show_spinner="Loading model...")
def _segmenter(model_id: str, folder: str, stamp: float) -> Segmenter:
    del stamp  # part of the cache key only: retrained weights get a fresh entry
    return Segmenter(load_model(model_id, folder))


def segmenter(model_id: str) -> Segmenter:
    """One shared model per weights id for the whole server (a Segmenter serialises its forward passes)."""
    return _segmenter(model_id, str(weights_dir()), _stamp(model_id))


@st.cache_resource(show_spinner=False)
def _warm(model_id: str, folder: str, stamp: float) -> bool:
    import numpy as np

    runner = _segmenter(model_id, folder, stamp)
    # The first forward pass pays for the backend (an ONNX export on first use, then its session) and
    # lazy initialisation: do it before any upload.
    runner.forward(np.zeros((1, len(runner.modalities), *runner.input_size), dtype=np.float32))
    return True


def prewarm(model_id: str | None = None) -> str | None:
    """Load (and run once) the default model while the user is still choosing a file; its id, or None.

    Errors are left for the page to report when the model is used.
    """
    ids = available_weights()
    model_id = model_id or ("unet.figshare" if "unet.figshare" in ids else (ids[0] if ids else None))
    if model_id is None:
        return None
    try:
        _warm(model_id, str(weights_dir()), _stamp(model_id))
    except Exception:  # the page reports problems with a model when it is used
        return None
    return model_id


def file_key(files: list[tuple[str, bytes]]) -> str:
    """SHA-256 of the files' names and contents: the key of everything computed from an upload."""
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode())
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


@st.cache_resource(max_entries=8, ttl=TTL_SECONDS, show_spinner="Reading scan...")
def scan_from_upload(key: str, files: list[tuple[str, bytes]]) -> Scan:
    """Decode an upload (kept in memory only); ``key`` is :func:`file_key` of the files."""
    del key  # part of the cache key only
    if len(files) == 1:
        name, data = files[0]
        return load_scan(data, name=name)
    return load_scan(files)


@st.cache_resource(max_entries=8, ttl=TTL_SECONDS, show_spinner="Loading sample...")
def sample(name: str, data_root: str | None) -> tuple[Scan, np.ndarray | None]:
    """A sample scan and its ground truth (:func:`seg_core.samples.load_sample`)."""
    from seg_core.samples import load_sample

    return load_sample(name, data_root)


@st.cache_resource(show_spinner=False)
def sample_list(data_root: str | None) -> list[Any]:
    from seg_core.samples import list_samples

    return list_samples(data_root)


class ResultStore:
    """A thread-safe least-recently-used store with a time limit, shared by all sessions.

    Keys start with the scan's hash, so one user's results are only reachable with the same bytes.
    """

    def __init__(self, max_entries: int = 24, ttl: float = TTL_SECONDS) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._items: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            stored, value = item
            if time.monotonic() - stored > self.ttl:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: Any) -> Any:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()


Progress = Callable[[int, int], None]

# Energy profiling counts operations with torch's FlopCounterMode, whose module tracker installs
# process-wide module hooks while it runs; an explanation's backward pass running at the same time
# in another thread (another session, or a page left mid-run: Streamlit starts the next run at once)
# would trip over them. The two kinds of instrumented work therefore take turns.
INSTRUMENTED = threading.Lock()


def probabilities(key: str, scan: Scan, model_id: str, progress: Progress | None = None) -> tuple[np.ndarray, float]:
    """Tumor probabilities ``(D, H, W)`` of ``model_id`` on the scan with hash ``key``, and the seconds taken.

    Runs the model only the first time for a (scan, model); ``progress(done, total)`` is called per batch then.
    """
    store = result_store()
    entry = ("probabilities", key, model_id, _stamp(model_id))
    cached = store.get(entry)
    if cached is not None:
        return cached
    start = time.perf_counter()
    values = segmenter(model_id).predict_probabilities(scan, progress)
    return store.put(entry, (values, time.perf_counter() - start))


def predict(
    key: str, scan: Scan, model_id: str, postprocessing: dict[str, Any] | None = None, progress: Progress | None = None
) -> Prediction:
    """The post-processed prediction; the model runs once per (scan, model), post-processing once per setting.

    ``postprocessing`` defaults to the settings the weights chose on validation.
    """
    post = PostProcessing.from_dict(postprocessing) if postprocessing is not None else segmenter(model_id).postprocessing
    store = result_store()
    entry = ("prediction", key, model_id, _stamp(model_id), json.dumps(post.to_dict(), sort_keys=True))
    cached = store.get(entry)
    if cached is not None:
        return cached
    values, seconds = probabilities(key, scan, model_id, progress)
    # The Segmenter post-processes the cached probabilities, as its __call__ would after the model pass.
    return store.put(entry, segmenter(model_id).finish(scan, values, post, seconds))


def explanation(
    key: str,
    scan: Scan,
    model_id: str,
    index: int,
    methods: tuple[str, ...],
    layer: str | None,
    progress: Any = None,
    n_steps: int = 16,
    spiking: bool = True,
) -> Any:
    """:func:`seg_core.explain.explain_slice` for one slice, computed once per settings."""
    from seg_core.explain import explain_slice

    store = result_store()
    entry = ("explanation", key, model_id, _stamp(model_id), index, tuple(methods), layer, n_steps, spiking)
    cached = store.get(entry)
    if cached is not None:
        return cached
    runner = segmenter(model_id)
    with INSTRUMENTED:
        result = explain_slice(runner, scan, index, methods, layer=layer, n_steps=n_steps, spiking=spiking, progress=progress)
    return store.put(entry, result)


def gradcam_layers(key: str, scan: Scan, model_id: str, index: int) -> list[Any]:
    """The Grad-CAM layers of ``model_id`` (they depend on the input size only, so slice 0 is as good as any)."""
    from seg_core.explain import gradcam_layers as find_layers
    from seg_core.explain import slice_input

    store = result_store()
    entry = ("layers", model_id, _stamp(model_id))
    cached = store.get(entry)
    if cached is not None:
        return cached
    runner = segmenter(model_id)
    return store.put(entry, find_layers(runner.model, slice_input(runner, scan, index)))


@st.cache_resource(max_entries=32, show_spinner=False)
def _cost(model_id: str, folder: str, stamp: float) -> dict[str, Any]:
    from seg_core.leaderboard import inference_cost as profile_cost  # the one cost table, also behind evaluate --all

    del stamp
    with INSTRUMENTED:
        return {**profile_cost(model_id, folder, repeats=3), "source": "measured now"}


def inference_cost(model_id: str) -> dict[str, Any]:
    """Parameters, MACs, SOPs, estimated energy (mJ) and CPU latency (ms) of one inference at the model's input size.

    Read from the weights' ``metrics.json`` (``inference_cost``, written by ``evaluate --all``) when
    there; otherwise measured once with :func:`seg_core.energy.profile` on its head phantom and cached.
    """
    metrics_path = weights_dir() / model_id / "metrics.json"
    if metrics_path.exists():
        try:
            recorded = json.loads(metrics_path.read_text()).get("inference_cost")
        except (OSError, json.JSONDecodeError):
            recorded = None
        if recorded and recorded.get("energy_mj") is not None:
            return {**recorded, "source": "metrics.json"}
    return _cost(model_id, str(weights_dir()), _stamp(model_id))


def memo(entry: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per ``entry`` (a tuple starting with a kind and the scan's hash) in the shared store."""
    store = result_store()
    cached = store.get(entry)
    if cached is not None:
        return cached
    return store.put(entry, compute())


def window_limits(key: str, scan: Scan, channel: int, lower: float, upper: float) -> tuple[float, float]:
    """Intensity window of one channel of the whole scan, so every slice and plane shares it."""
    from seg_core.visualize import intensity_limits

    return memo(("limits", key, channel, lower, upper), lambda: intensity_limits(scan.array[channel], lower, upper))


def mask_file(key: str, stem: str, scan: Scan, prediction: Prediction) -> tuple[str, bytes, str]:
    """The mask as a file to download, named ``<stem>_<model>_mask``: PNG for a 2D input, NIfTI with the input's
    affine for a volume. ``stem`` is the uploaded file's name (:func:`ui.state.upload_stem`)."""
    from seg_core.scans import save_mask

    settings = json.dumps(prediction.postprocessing, sort_keys=True)
    if scan.is_2d:
        data = memo(("mask_png", key, prediction.model_id, settings), lambda: save_mask(scan, prediction.mask, None, fmt="png"))
        return f"{stem}_{prediction.model_id}_mask.png", data, "image/png"
    data = memo(("mask_nifti", key, prediction.model_id, settings), lambda: save_mask(scan, prediction.mask, None, fmt="nifti"))
    return f"{stem}_{prediction.model_id}_mask.nii.gz", data, "application/gzip"
