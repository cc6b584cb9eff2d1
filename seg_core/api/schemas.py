"""Response schemas of the REST API (they make its OpenAPI document)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from seg_core.samples import SampleInfo

__all__ = [
    "PROBLEMS",
    "Health",
    "LeaderboardEntry",
    "MaskFile",
    "ModelInfo",
    "ModelInputs",
    "Problem",
    "Readiness",
    "SampleDetail",
    "SampleSummary",
    "SegmentResult",
]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    models: int = Field(description="trained weights available")


class Readiness(BaseModel):
    ready: bool = Field(description="a model can be loaded and the inference queue has room (503 otherwise)")
    models: int = Field(description="weights folders with a readable config.json and model.safetensors")
    loaded: list[str] = Field(description="models loaded in memory now")
    queue: dict[str, int] = Field(
        description="the inference queue: workers, capacity, admitted, running, waiting, refused (429 answers so far)"
    )
    decode_budget: dict[str, int] = Field(
        description="bytes of the process-wide decode budget (seg_core.scans.budget): capacity, reserved now, peak"
    )


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


class ModelChoice(BaseModel):
    """Why ``model=auto`` ran this model on this scan (:class:`seg_core.matching.ModelFit`)."""

    model_id: str
    title: str
    group: Literal["made_for_scan", "other_data"] = Field(description="made for this kind of scan, or trained on other data")
    reason: str = Field(description="one plain sentence: why it fits, or why it may not")
    test_dice: float | None = Field(description="the model's test Dice on its own data set")
    val_dice: float | None = Field(None, description="its validation Dice, by which the models are ranked")


class SegmentResult(BaseModel):
    model: str
    model_choice: ModelChoice | None = Field(None, description="with model=auto: which model was chosen and why")
    seconds: float
    backend: str = Field(description="where the model ran: onnxruntime, torch or torch-bf16 (seg_core.backends)")
    input: dict[str, Any] = Field(description="shape, modalities, spacing, format ... of the scan as read")
    figures: dict[str, Any] = Field(description="tumor pixels, area (mm2, or px without spacing), volume (mL), slices")
    mask: MaskFile
    disclaimer: str


def _sample_fields() -> dict[str, Any]:
    # The summary carries every SampleInfo field, all required in the answer: taken from the
    # dataclass so that a field added to seg_core.samples reaches the API without a second list.
    hints = typing.get_type_hints(SampleInfo)
    return {field.name: (hints[field.name], ...) for field in dataclasses.fields(SampleInfo)}


SampleSummary = create_model("SampleSummary", **_sample_fields(), file_url=(str, ...), mask_url=(str | None, ...))


class SampleDetail(SampleSummary):  # type: ignore[misc, valid-type]
    scan: dict[str, Any]
    ground_truth: dict[str, Any] | None


class Problem(BaseModel):
    detail: str


PROBLEMS: dict[int | str, dict[str, Any]] = {
    # Starlette answers a body that is not valid multipart with 400 before our code runs.
    400: {"model": Problem, "description": "the request body is not valid multipart form data"},
    404: {"model": Problem, "description": "unknown model or sample"},
    413: {"model": Problem, "description": "upload too large"},
    422: {"model": Problem, "description": "the upload cannot be used as a scan (the message says why)"},
    429: {"model": Problem, "description": "the inference queue is full; retry after the Retry-After header's seconds"},
    503: {
        "model": Problem,
        "description": "the model's weights cannot be loaded right now, or the decode budget stayed in use (Retry-After)",
    },
}
