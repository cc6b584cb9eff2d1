"""The application: settings, the upload limit, one error shape, and the routers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from seg_core import __version__
from seg_core.api.cache import SegmenterCache
from seg_core.api.routes import health, models, samples, segment
from seg_core.api.shared import DISCLAIMER, ApiSettings
from seg_core.scans import ScanError
from seg_core.weights import WEIGHTS_DIR

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app"]

#: Largest request body accepted, in bytes (``BRAINSEG_API_MAX_UPLOAD_MB`` overrides): a 4-modality
#: BraTS case as .nii.gz is ~40 MB, a DICOM series a few hundred.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


def _max_upload_bytes_from_env() -> int:
    env = os.environ.get("BRAINSEG_API_MAX_UPLOAD_MB", "").strip()
    return int(float(env) * 1024 * 1024) if env else DEFAULT_MAX_UPLOAD_BYTES


async def _limit_upload_size(request: Request, call_next: Any) -> Response:
    # Refuse before reading: a declared body over the limit never reaches the multipart parser.
    limit = request.app.state.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            return JSONResponse({"detail": "invalid Content-Length header"}, status_code=400)
        if int(length) > limit:
            return JSONResponse({"detail": f"the upload is larger than {limit // (1024 * 1024)} MiB"}, status_code=413)
    return await call_next(request)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    # One error shape for every 4xx ({"detail": "..."}), readable by a person.
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid")))
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


async def _scan_error(request: Request, error: ScanError) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=422)


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
    settings = ApiSettings(
        weights_dir=Path(weights_dir),
        data_root=data_root,
        max_upload_bytes=_max_upload_bytes_from_env() if max_upload_bytes is None else max_upload_bytes,
    )
    app = FastAPI(
        title="BrainSeg Studio API",
        version=__version__,
        description="Brain tumor segmentation of MRI uploads with conventional and spiking models. " + DISCLAIMER,
    )
    app.state.settings = settings
    app.state.segmenters = SegmenterCache(settings.weights_dir)
    app.middleware("http")(_limit_upload_size)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(ScanError, _scan_error)  # type: ignore[arg-type]
    for route_module in (health, models, segment, samples):
        app.include_router(route_module.router)
    return app
