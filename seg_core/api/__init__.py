"""REST API over the library (FastAPI): health, the model zoo, segmentation of uploads, sample scans.

Start it with one command (binds to 127.0.0.1; the OpenAPI schema is at ``/openapi.json``, the
interactive docs at ``/docs``)::

    python -m seg_core serve --port 8000            # or: uvicorn seg_core.api:app --port 8000

Endpoints:

* ``GET /health``: status and version.
* ``GET /models``: trained weights in ``weights/`` with their inputs (modalities, input size) and
  test figures from ``metrics.json``.
* ``POST /segment``: multipart upload of one file or several (``files``; any input
  :func:`seg_core.scans.load_scan` reads: PNG/JPEG/TIFF, NIfTI, DICOM files, a ZIP, a BraTS case's
  files) and a ``model`` id; ``format=json`` (default) answers the figures with the mask as base64,
  ``format=png`` / ``format=nifti`` the mask file itself with the main figures in ``X-Segmentation``.
* ``GET /samples``, ``GET /samples/{name}`` (+ ``/file``, ``/mask``): the built-in synthetic phantoms,
  and test-split cases of the public data sets when ``BRAINSEG_DATA_ROOT`` is set.

Bad input is a 4xx answer carrying the reader's message (422 for a file that cannot be used, 404 for
an unknown model or sample, 413 for an upload over the size limit), never a 500.

Privacy: uploads are read into memory and dropped with the request (multipart parts over 1 MiB are
spooled by Starlette to an anonymous temporary file, unlinked from the start and closed when the
request ends); nothing is written to disk. Logs name the model, the scan's size and the time taken,
never file names or header fields (a DICOM's PatientName is never read into a log or an answer).

Segmenters are cached per model id (reloaded when the weights files change on disk) and shared by
every request; each serialises its forward passes with its own lock, so a spiking model's membrane
state never crosses requests.

Research and teaching only: not a medical device.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from seg_core import __version__
from seg_core.evaluate import json_safe
from seg_core.inference import Segmenter
from seg_core.leaderboard import read_leaderboard
from seg_core.models import get_spec
from seg_core.postprocess import tumor_size
from seg_core.samples import check_sample_name, list_samples, load_sample, sample_file
from seg_core.scans import MAX_FILES, SUPPORTED_FORMATS, ScanError, describe, load_scan, save_mask
from seg_core.weights import (
    CONFIG_NAME,
    METRICS_NAME,
    WEIGHTS_DIR,
    WEIGHTS_NAME,
    WeightsError,
    list_weights,
    load_model,
    read_config,
)

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "BackgroundServer", "SegmenterCache", "app", "create_app", "serve"]

logger = logging.getLogger(__name__)

#: Largest request body accepted, in bytes (``BRAINSEG_API_MAX_UPLOAD_MB`` overrides): a 4-modality
#: BraTS case as .nii.gz is ~40 MB, a DICOM series a few hundred.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: Segmenters kept loaded at once (least recently used ones are dropped).
MAX_CACHED_MODELS = 4
DISCLAIMER = "Research and teaching only: not a medical device; not for diagnosis or treatment."
_MEDIA_TYPES = {"png": "image/png", "nifti": "application/gzip"}
_TEST_FIGURES = ("n", "groups", "dice_mean", "dice_std", "iou_mean", "hd95_mean", "sensitivity_mean", "precision_mean")


# --------------------------------------------------------------------------------------------
# Response schemas (they make the OpenAPI document)
# --------------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    models: int = Field(description="trained weights available")


class ModelInputs(BaseModel):
    modalities: list[str] = Field(description="channels the model reads, in order (t1, t1c, t2, flair)")
    input_size: list[int] = Field(description="(H, W) in pixels the slices are resized to")
    formats: str = Field(description="the files /segment accepts")


class LeaderboardEntry(BaseModel):
    rank: int = Field(description="1 = best of its data set by the primary figure")
    of: int = Field(description="models ranked on this data set")
    primary_metric: str = Field(description="volume_dice (per patient) for LGG and BraTS, dice (per image) for figshare")
    primary_mean: float | None = None
    primary_std: float | None = None
    primary_n: int | None = Field(default=None, description="test patients (volumes) or images")
    hd95_mean: float | None = Field(default=None, description="mm; a missed tumor counts as the image diagonal")
    energy_mj: float | None = None
    latency_ms: float | None = None


class ModelInfo(BaseModel):
    id: str
    architecture: str
    title: str
    spiking: bool
    dataset: str | None = None
    inputs: ModelInputs
    metrics: dict[str, dict[str, float | int | None]] = Field(description="test figures per data set (metrics.json)")
    ranking: LeaderboardEntry | None = Field(
        default=None, description="its place in weights/leaderboard.json, the ranking the README and the app show"
    )


class MaskFile(BaseModel):
    format: Literal["png", "nifti"]
    filename: str
    base64: str = Field(description="the mask file: PNG 0/255 for 2D inputs, NIfTI uint8 0/1 with the input's affine otherwise")


class SegmentResult(BaseModel):
    model: str
    seconds: float
    input: dict[str, Any] = Field(description="shape, modalities, spacing, format ... of the scan as read")
    figures: dict[str, Any] = Field(description="tumor pixels, area (mm2, or px without spacing), volume (mL), slices")
    mask: MaskFile
    disclaimer: str


class SampleSummary(BaseModel):
    name: str
    title: str
    source: str
    is_2d: bool
    has_mask: bool
    filename: str
    license: str
    file_url: str
    mask_url: str | None


class SampleDetail(SampleSummary):
    scan: dict[str, Any]
    ground_truth: dict[str, Any] | None


class Problem(BaseModel):
    detail: str


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    # Starlette answers a body that is not valid multipart with 400 before our code runs.
    400: {"model": Problem, "description": "the request body is not valid multipart form data"},
    404: {"model": Problem, "description": "unknown model or sample"},
    413: {"model": Problem, "description": "upload too large"},
    422: {"model": Problem, "description": "the upload cannot be used as a scan (the message says why)"},
    503: {"model": Problem, "description": "the model's weights cannot be loaded right now"},
}


# --------------------------------------------------------------------------------------------
# Segmenter cache
# --------------------------------------------------------------------------------------------


class SegmenterCache:
    """Loaded segmenters by model id, shared by all requests (thread-safe, LRU, reloads changed weights)."""

    def __init__(self, weights_dir: str | Path = WEIGHTS_DIR, max_models: int = MAX_CACHED_MODELS) -> None:
        self.weights_dir = Path(weights_dir)
        self.max_models = max_models
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[str, tuple[tuple[int, int], Segmenter]] = OrderedDict()

    def ids(self) -> list[str]:
        return list_weights(self.weights_dir)

    def _stamp(self, model_id: str) -> tuple[int, int]:
        folder = self.weights_dir / model_id
        return ((folder / CONFIG_NAME).stat().st_mtime_ns, (folder / WEIGHTS_NAME).stat().st_mtime_ns)

    def get(self, model_id: str) -> Segmenter:
        """The segmenter of ``model_id``, loading it once (concurrent first requests wait for one load).

        Raises:
            KeyError: not a trained model in ``weights_dir`` (message lists the valid ids).
            WeightsError: the folder cannot be loaded (e.g. a training job is writing it).
        """
        available = self.ids()
        if model_id not in available:  # only listed ids: a request never names a path
            raise KeyError(f"unknown model {model_id!r}; available: {', '.join(available) or 'none'}")
        with self._lock:
            loading = self._loading.setdefault(model_id, threading.Lock())
        with loading:
            stamp = self._stamp(model_id)
            with self._lock:
                cached = self._cache.get(model_id)
                if cached is not None and cached[0] == stamp:
                    self._cache.move_to_end(model_id)
                    return cached[1]
            segmenter = Segmenter(load_model(model_id, self.weights_dir))
            with self._lock:
                self._cache[model_id] = (stamp, segmenter)
                self._cache.move_to_end(model_id)
                while len(self._cache) > self.max_models:
                    self._cache.popitem(last=False)
            logger.info("Loaded model %s", model_id)
            return segmenter


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _leaderboard_entries(board: dict[str, Any]) -> dict[str, LeaderboardEntry]:
    rows = {row["id"]: row for row in board["rows"]}
    entries = {}
    for entry in board.get("datasets", {}).values():
        for rank, model_id in enumerate(entry["ranking"], start=1):
            row = json_safe(rows[model_id])
            fields = {key: row.get(key) for key in LeaderboardEntry.model_fields if key in row}
            entries[model_id] = LeaderboardEntry(rank=rank, of=len(entry["ranking"]), **fields)
    return entries


def _model_info(weights_dir: Path, model_id: str) -> ModelInfo:
    folder = weights_dir / model_id
    config = read_config(folder)
    spec = get_spec(config["architecture"])
    metrics_path = folder / METRICS_NAME
    metrics: dict[str, dict[str, Any]] = {}
    if metrics_path.is_file():
        recorded = json.loads(metrics_path.read_text())
        for key, value in recorded.items():
            if key.startswith("test:") and isinstance(value, dict):
                metrics[key.removeprefix("test:")] = json_safe({k: value[k] for k in _TEST_FIGURES if k in value})
    return ModelInfo(
        id=model_id,
        architecture=config["architecture"],
        title=spec.title,
        spiking=bool(spec.spiking),
        dataset=config.get("dataset"),
        inputs=ModelInputs(
            modalities=list(config["modalities"]), input_size=list(config["input_size"]), formats=SUPPORTED_FORMATS
        ),
        metrics=metrics,
    )


def _figures(mask: Any, scan: Any, sizes: dict[str, Any]) -> dict[str, Any]:
    figures = {k: v for k, v in sizes.items() if not isinstance(v, list | tuple)}
    figures["slice_area_mm2"] = list(sizes.get("slice_area_mm2", []))
    figures["slices_with_tumor"] = [int(i) for i, area in enumerate(figures["slice_area_mm2"]) if area > 0]
    figures["tumor_pixels"] = int(mask.sum())
    figures["spacing_known"] = scan.spacing_known
    figures["area_unit"] = "mm2" if scan.spacing_known else "px"
    return json_safe(figures)


def _mask_format(scan: Any, requested: str) -> str:
    fmt = ("png" if scan.is_2d else "nifti") if requested in ("json", "auto") else requested
    if fmt == "png" and not scan.is_2d:
        raise ScanError(f"a PNG mask is only for 2D images; this scan has {scan.num_slices} slices: ask for format=nifti")
    return fmt


def _mask_filename(fmt: str) -> str:
    return "mask.png" if fmt == "png" else "mask.nii.gz"


def _sample_summary(info: Any) -> dict[str, Any]:
    return {
        **info.to_dict(),
        "file_url": f"/samples/{info.name}/file",
        "mask_url": f"/samples/{info.name}/mask" if info.has_mask else None,
    }


# --------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------


def create_app(
    weights_dir: str | Path = WEIGHTS_DIR,
    *,
    data_root: str | Path | None = None,
    max_upload_bytes: int | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        weights_dir: where trained weights are listed and loaded from.
        data_root: folder of the public data sets for ``/samples`` (default ``$BRAINSEG_DATA_ROOT``,
            read per request; phantoms only when unset).
        max_upload_bytes: largest request body (default ``$BRAINSEG_API_MAX_UPLOAD_MB`` MiB, else 512 MiB).
    """
    weights_dir = Path(weights_dir)
    if max_upload_bytes is None:
        env = os.environ.get("BRAINSEG_API_MAX_UPLOAD_MB", "").strip()
        max_upload_bytes = int(float(env) * 1024 * 1024) if env else DEFAULT_MAX_UPLOAD_BYTES
    limit = max_upload_bytes
    segmenters = SegmenterCache(weights_dir)
    app = FastAPI(
        title="BrainSeg Studio API",
        version=__version__,
        description="Brain tumor segmentation of MRI uploads with conventional and spiking models. " + DISCLAIMER,
    )
    app.state.segmenters = segmenters

    @app.middleware("http")
    async def limit_upload_size(request: Request, call_next: Any) -> Response:
        # Refuse before reading: a declared body over the limit never reaches the multipart parser.
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return JSONResponse({"detail": "invalid Content-Length header"}, status_code=400)
            if int(length) > limit:
                return JSONResponse({"detail": f"the upload is larger than {limit // (1024 * 1024)} MiB"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # One error shape for every 4xx ({"detail": "..."}), readable by a person.
        parts = []
        for problem in error.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid")))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(ScanError)
    async def scan_error(request: Request, error: ScanError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.get("/health", response_model=Health, summary="Liveness and version")
    def health() -> Health:
        return Health(status="ok", version=__version__, models=len(segmenters.ids()))

    @app.get("/models", response_model=list[ModelInfo], summary="Trained models with their inputs and test figures")
    def models() -> list[ModelInfo]:
        board = read_leaderboard(weights_dir) or {"datasets": {}, "rows": []}
        entries = _leaderboard_entries(board)
        # The leaderboard's order (per data set, best first); models it does not list yet come last.
        order = [model_id for entry in board.get("datasets", {}).values() for model_id in entry["ranking"]]
        ids = sorted(
            segmenters.ids(), key=lambda model_id: (order.index(model_id) if model_id in order else len(order), model_id)
        )
        infos = []
        for model_id in ids:
            try:
                info = _model_info(weights_dir, model_id)
            except (WeightsError, KeyError, OSError, ValueError) as error:
                # e.g. a training job is writing this folder right now: list the others.
                logger.warning("Skipping model %s in /models: %s", model_id, error)
                continue
            info.ranking = entries.get(model_id)
            infos.append(info)
        return infos

    @app.post(
        "/segment",
        response_model=SegmentResult,
        responses={
            200: {
                "description": "JSON figures and the mask (format=json), or the mask file (format=png / nifti)",
                "content": {"image/png": {}, "application/gzip": {}},
            },
            **_PROBLEMS,
        },
        summary="Segment an uploaded scan",
    )
    def segment(
        files: Annotated[
            list[UploadFile], File(description="one file, or the files of one scan (a DICOM series, a BraTS case)", min_length=1)
        ],
        model: Annotated[str, Form(description="model id from /models, e.g. unet.figshare", max_length=200)] = "unet.figshare",
        modalities: Annotated[
            str | None, Form(description="override the channel names, comma separated, e.g. t1c or flair,t1c", max_length=200)
        ] = None,
        format: Annotated[
            Literal["json", "png", "nifti"], Query(description="answer: JSON figures + mask, or the mask file")
        ] = "json",
    ) -> Any:
        if len(files) > MAX_FILES:
            raise HTTPException(422, f"{len(files)} files were uploaded; at most {MAX_FILES} are accepted")
        try:
            segmenter = segmenters.get(model)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        except (WeightsError, OSError) as error:
            logger.warning("Model %s cannot be loaded: %s", model, error)
            raise HTTPException(503, f"model {model!r} cannot be loaded right now; try another") from None
        uploads: list[tuple[str, bytes]] = []
        total = 0
        for upload in files:
            data = upload.file.read(limit + 1)
            total += len(data)
            if total > limit:
                raise HTTPException(413, f"the upload is larger than {limit // (1024 * 1024)} MiB")
            uploads.append((upload.filename or "upload", data))
        names = tuple(m for m in (modalities or "").replace(" ", "").split(",") if m) or None
        try:
            source = uploads[0][1] if len(uploads) == 1 else uploads
            scan = load_scan(source, name=uploads[0][0] if len(uploads) == 1 else None, modalities=names)
        except ScanError:
            raise
        except Exception as error:  # a reader bug must still be a clear 4xx, not a 500 with a traceback
            logger.error("Unexpected %s while reading an upload", type(error).__name__)
            raise HTTPException(
                422, f"the upload could not be read as a scan ({type(error).__name__}). Supported: {SUPPORTED_FORMATS}"
            ) from None
        finally:
            del uploads  # the upload's bytes go as soon as the scan is decoded
        fmt = _mask_format(scan, format)
        prediction = segmenter(scan)
        encoded = save_mask(scan, prediction.mask, fmt=fmt)
        figures = _figures(prediction.mask, scan, prediction.sizes)
        logger.info(
            "Segmented a %s scan of %s voxels with %s in %.2f s",
            scan.source_format,
            "x".join(map(str, scan.shape)),
            model,
            prediction.seconds,
        )
        if format != "json":
            summary = {
                "model": prediction.model_id,
                "seconds": round(prediction.seconds, 3),
                **{k: figures.get(k) for k in ("tumor_pixels", "largest_slice_area_mm2", "volume_ml", "area_unit")},
                "slices_with_tumor": len(figures["slices_with_tumor"]),
            }
            headers = {
                "Content-Disposition": f'attachment; filename="{_mask_filename(fmt)}"',
                "X-Segmentation": json.dumps(json_safe(summary), allow_nan=False),
            }
            return Response(encoded, media_type=_MEDIA_TYPES[fmt], headers=headers)
        return SegmentResult(
            model=prediction.model_id,
            seconds=round(prediction.seconds, 3),
            input=json_safe(describe(scan)),
            figures=figures,
            mask=MaskFile(format=fmt, filename=_mask_filename(fmt), base64=base64.b64encode(encoded).decode("ascii")),  # type: ignore[arg-type]
            disclaimer=DISCLAIMER,
        )

    @app.get("/samples", response_model=list[SampleSummary], summary="Sample scans: synthetic phantoms and data-root test cases")
    def samples() -> list[dict[str, Any]]:
        return [_sample_summary(info) for info in list_samples(data_root)]

    def _info(name: str) -> Any:
        try:
            return check_sample_name(name, data_root)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None

    @app.get("/samples/{name}", response_model=SampleDetail, responses={404: _PROBLEMS[404]}, summary="A sample's scan summary")
    def sample(name: str) -> dict[str, Any]:
        info = _info(name)
        scan, mask = load_sample(name, data_root)
        truth = None if mask is None else _figures(mask, scan, tumor_size(mask, scan.spacing))
        return {**_sample_summary(info), "scan": json_safe(describe(scan)), "ground_truth": truth}

    @app.get(
        "/samples/{name}/file",
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the sample as one uploadable file"},
            404: _PROBLEMS[404],
        },
        summary="Download a sample as the file to upload",
    )
    def sample_download(name: str) -> Response:
        _info(name)
        filename, data = sample_file(name, data_root)
        return Response(
            data, media_type="application/octet-stream", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )

    @app.get(
        "/samples/{name}/mask",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "application/gzip": {}}, "description": "the ground-truth mask"},
            404: _PROBLEMS[404],
        },
        summary="Download a sample's ground-truth mask",
    )
    def sample_mask(name: str) -> Response:
        _info(name)
        scan, mask = load_sample(name, data_root)
        if mask is None:
            raise HTTPException(404, f"sample {name!r} has no ground-truth mask")
        fmt = "png" if scan.is_2d else "nifti"
        headers = {"Content-Disposition": f'attachment; filename="{name}_{_mask_filename(fmt)}"'}
        return Response(save_mask(scan, mask, fmt=fmt), media_type=_MEDIA_TYPES[fmt], headers=headers)

    return app


def serve(
    host: str = "127.0.0.1", port: int = 8000, weights_dir: str | Path | None = None, data_root: str | Path | None = None
) -> None:
    """Run the API with uvicorn (one process; requests run on its thread pool)."""
    import uvicorn

    started = time.perf_counter()
    application = create_app(weights_dir or WEIGHTS_DIR, data_root=data_root)
    logger.info("BrainSeg Studio API ready in %.1f s", time.perf_counter() - started)
    uvicorn.run(application, host=host, port=port, log_level="info")


class BackgroundServer:
    """Serve ``application`` with uvicorn on 127.0.0.1 in a background thread (for benchmarks and tests).

    Example:
        >>> with BackgroundServer(create_app()) as server:   # doctest: +SKIP
        ...     httpx.get(server.url + "/health").json()
    """

    def __init__(self, application: FastAPI, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0) -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(application, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.startup_timeout = startup_timeout

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start at {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


#: The default application, for ``uvicorn seg_core.api:app``.
app = create_app()
