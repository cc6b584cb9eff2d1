"""``GET /health`` (liveness) and ``GET /ready`` (readiness): both answer from the event loop at once.

They are ``async`` and touch neither a thread pool nor a model, so they never wait behind a
segmentation: a liveness probe of a busy server still gets its answer in milliseconds (issue 19
measured 3-4 s with 64 clients when ``/health`` shared the thread pool with inference).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from seg_core import __version__
from seg_core.api.schemas import Health, Readiness
from seg_core.api.shared import Inference, Segmenters
from seg_core.scans import decode_budget
from seg_core.weights import WeightsError, read_config

router = APIRouter()


@router.get("/health", response_model=Health, summary="Liveness and version")
async def health(segmenters: Segmenters) -> Health:
    return Health(status="ok", version=__version__, models=len(segmenters.ids()))


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "no model can be loaded, or the inference queue is full"}},
    summary="Readiness: models loadable, inference queue depth",
)
async def ready(segmenters: Segmenters, inference: Inference) -> JSONResponse:
    loadable = []
    for model_id in segmenters.ids():  # a few small JSON files: cheap enough for the event loop
        try:
            read_config(segmenters.weights_dir / model_id)
        except (WeightsError, OSError):
            continue  # e.g. a training job is writing it right now
        loadable.append(model_id)
    queue = inference.snapshot()
    budget = decode_budget()
    answer = Readiness(
        ready=bool(loadable) and queue["admitted"] < queue["capacity"],
        models=len(loadable),
        loaded=segmenters.loaded_ids(),
        queue=queue,
        decode_budget={"capacity": budget.capacity, "reserved": budget.reserved, "peak": budget.peak},
    )
    return JSONResponse(answer.model_dump(), status_code=200 if answer.ready else 503)
