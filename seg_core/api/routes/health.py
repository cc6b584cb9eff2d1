"""``GET /health``: liveness and version."""

from __future__ import annotations

from fastapi import APIRouter

from seg_core import __version__
from seg_core.api.schemas import Health
from seg_core.api.shared import Segmenters

router = APIRouter()


@router.get("/health", response_model=Health, summary="Liveness and version")
def health(segmenters: Segmenters) -> Health:
    return Health(status="ok", version=__version__, models=len(segmenters.ids()))
