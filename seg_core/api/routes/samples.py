"""``GET /samples`` and ``/samples/{name}`` (+ ``/file``, ``/mask``): the sample scans of :mod:`seg_core.samples`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from seg_core.api.schemas import PROBLEMS, SampleDetail, SampleSummary
from seg_core.api.shared import MEDIA_TYPES, Settings, mask_figures, mask_filename
from seg_core.evaluate import json_safe
from seg_core.postprocess import tumor_size
from seg_core.samples import SampleInfo, check_sample_name, list_samples, load_sample, sample_file
from seg_core.scans import describe, save_mask

router = APIRouter()


def _summary(info: SampleInfo) -> dict[str, Any]:
    return {
        **info.to_dict(),
        "file_url": f"/samples/{info.name}/file",
        "mask_url": f"/samples/{info.name}/mask" if info.has_mask else None,
    }


def _known(name: str, settings: Settings) -> SampleInfo:
    """The sample's info; 404 listing the valid names for an unknown one."""
    try:
        return check_sample_name(name, settings.data_root)
    except KeyError as error:
        raise HTTPException(404, str(error.args[0])) from None


@router.get("/samples", response_model=list[SampleSummary], summary="Sample scans: synthetic phantoms and data-root test cases")
def samples(settings: Settings) -> list[dict[str, Any]]:
    return [_summary(info) for info in list_samples(settings.data_root)]


@router.get("/samples/{name}", response_model=SampleDetail, responses={404: PROBLEMS[404]}, summary="A sample's scan summary")
def sample(name: str, settings: Settings) -> dict[str, Any]:
    info = _known(name, settings)
    scan, mask = load_sample(name, settings.data_root)
    truth = None if mask is None else mask_figures(mask, scan, tumor_size(mask, scan.spacing))
    return {**_summary(info), "scan": json_safe(describe(scan)), "ground_truth": truth}


@router.get(
    "/samples/{name}/file",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the sample as one uploadable file"},
        404: PROBLEMS[404],
    },
    summary="Download a sample as the file to upload",
)
def sample_download(name: str, settings: Settings) -> Response:
    _known(name, settings)
    filename, data = sample_file(name, settings.data_root)
    return Response(
        data, media_type="application/octet-stream", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get(
    "/samples/{name}/mask",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "application/gzip": {}}, "description": "the ground-truth mask"},
        404: PROBLEMS[404],
    },
    summary="Download a sample's ground-truth mask",
)
def sample_mask(name: str, settings: Settings) -> Response:
    _known(name, settings)
    scan, mask = load_sample(name, settings.data_root)
    if mask is None:
        raise HTTPException(404, f"sample {name!r} has no ground-truth mask")
    fmt = "png" if scan.is_2d else "nifti"
    headers = {"Content-Disposition": f'attachment; filename="{name}_{mask_filename(fmt)}"'}
    return Response(save_mask(scan, mask, fmt=fmt), media_type=MEDIA_TYPES[fmt], headers=headers)
