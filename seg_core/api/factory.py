"""The application: settings, the limits on a request's body, backpressure, one error shape, and the routers.

Body limits are FastAPI's own (``max_body_size``, ``form_limits`` on the routers; Starlette's
``RequestBodyLimitMiddleware`` underneath): bytes are counted as they arrive, chunked or not, and
the rest of an oversized body is never read (nor spooled to a temporary file). A declared
``Content-Length`` over the limit is refused before anything else by :func:`_refuse_declared_oversize`
(FastAPI's app-level limiter would answer it too, but in plain text over any other response, and
every error here is ``{"detail": ...}``). Files per request are
:data:`seg_core.scans.limits.MAX_FILES`, the number every reader uses, so the multipart parser and
the readers agree (Starlette's own default is 1000).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from seg_core import __version__
from seg_core.api.admission import AdmissionMiddleware, InferenceQueue
from seg_core.api.cache import SegmenterCache
from seg_core.api.routes import health, models, samples, segment
from seg_core.api.shared import DISCLAIMER, ApiSettings
from seg_core.scans import DecodeBusy, ScanError, limits
from seg_core.weights import WEIGHTS_DIR

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "MAX_FORM_FIELDS", "create_app"]

#: Largest request body accepted, in bytes (``BRAINSEG_API_MAX_UPLOAD_MB`` overrides): a 4-modality
#: BraTS case as .nii.gz is ~40 MB, a DICOM series a few hundred.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: Text fields one form may carry: /segment reads two (model, modalities); more is not a client of ours.
MAX_FORM_FIELDS = 16


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None


def _default_workers() -> int:
    # One per core, at most four: each forward pass already uses the model's intra-op threads.
    return max(1, min(os.cpu_count() or 1, 4))


async def _refuse_declared_oversize(request: Request, call_next: Any) -> Any:
    # Before admission and before the body: a declared body over the limit costs nothing.
    limit = request.app.state.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            return JSONResponse({"detail": "invalid Content-Length header"}, status_code=400)
        if int(length) > limit:
            return _upload_too_large(limit)
    return await call_next(request)


def _upload_too_large(limit: int) -> JSONResponse:
    detail = f"the upload is larger than {limits.human_bytes(limit)}, the most one request may send (BRAINSEG_API_MAX_UPLOAD_MB)"
    # The rest of the body is not read, so the connection cannot carry another request.
    return JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})


async def _http_error(request: Request, error: StarletteHTTPException) -> Any:
    # Starlette's body limit says only "Content Too Large"; the answer names the limit.
    if error.status_code == 413:
        return _upload_too_large(request.app.state.settings.max_upload_bytes)
    return await http_exception_handler(request, error)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    # One error shape for every 4xx ({"detail": "..."}), readable by a person.
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid")))
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


async def _scan_error(request: Request, error: ScanError) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=422)


async def _decode_busy(request: Request, error: DecodeBusy) -> JSONResponse:
    # Not the file's fault: other uploads hold the process-wide decode budget (seg_core.scans.budget).
    retry = str(max(1, math.ceil(error.retry_after_s)))
    return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": retry})


def create_app(
    weights_dir: str | Path = WEIGHTS_DIR,
    *,
    data_root: str | Path | None = None,
    max_upload_bytes: int | None = None,
    inference_workers: int | None = None,
    max_waiting: int | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        weights_dir: where trained weights are listed and loaded from.
        data_root: folder of the public data sets for ``/samples`` (default ``$BRAINSEG_DATA_ROOT``,
            read per request; phantoms only when unset).
        max_upload_bytes: largest request body (default ``$BRAINSEG_API_MAX_UPLOAD_MB`` MiB, else 512 MiB).
        inference_workers: segmentations run at once (default ``$BRAINSEG_API_WORKERS``, else one
            per core, at most 4).
        max_waiting: segmentations admitted beyond the running ones before 429 answers (default
            ``$BRAINSEG_API_MAX_WAITING``, else 4 per worker).
    """
    workers = int(_env_number("BRAINSEG_API_WORKERS", _default_workers()) if inference_workers is None else inference_workers)
    settings = ApiSettings(
        weights_dir=Path(weights_dir),
        data_root=data_root,
        max_upload_bytes=(
            int(_env_number("BRAINSEG_API_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_BYTES / 2**20) * 2**20)
            if max_upload_bytes is None
            else max_upload_bytes
        ),
        inference_workers=workers,
        max_waiting=int(_env_number("BRAINSEG_API_MAX_WAITING", 4 * workers) if max_waiting is None else max_waiting),
    )
    app = FastAPI(
        title="BrainSeg Studio API",
        version=__version__,
        description="Brain tumor segmentation of MRI uploads with conventional and spiking models. " + DISCLAIMER,
    )
    app.state.settings = settings
    app.state.segmenters = SegmenterCache(settings.weights_dir)
    app.state.inference_queue = InferenceQueue(settings.inference_workers, settings.max_waiting)
    app.add_middleware(AdmissionMiddleware, queue=app.state.inference_queue)
    app.middleware("http")(_refuse_declared_oversize)  # added last: runs first
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(ScanError, _scan_error)  # type: ignore[arg-type]
    app.add_exception_handler(DecodeBusy, _decode_busy)  # type: ignore[arg-type]
    for route_module in (health, models, segment, samples):
        app.include_router(
            route_module.router,
            max_body_size=settings.max_upload_bytes,
            # Read when the app is built, so a test lowering limits.MAX_FILES builds an app that agrees.
            form_limits={"max_files": limits.MAX_FILES, "max_fields": MAX_FORM_FIELDS},
        )
    return app
