"""``POST /segment``: segment an uploaded scan; answer JSON figures with the mask, or the mask file.

The route is ``async`` only to hand the work to the :class:`~seg_core.api.admission.InferenceQueue`:
decoding, the model and the mask's encoding run on the queue's threads, never on the event loop.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response

from seg_core.api.cache import SegmenterCache
from seg_core.api.schemas import PROBLEMS, MaskFile, ModelChoice, SegmentResult
from seg_core.api.shared import DISCLAIMER, MEDIA_TYPES, ApiSettings, Inference, Segmenters, Settings, mask_figures, mask_filename
from seg_core.evaluate import json_safe
from seg_core.inference import Prediction, Segmenter
from seg_core.matching import ModelFit, choose_model, fit_summary
from seg_core.scans import SUPPORTED_FORMATS, DecodeBusy, Scan, ScanError, describe, load_scan, save_mask
from seg_core.weights import WeightsError

logger = logging.getLogger(__name__)
router = APIRouter()
#: The ``model`` value that lets the engine choose the best fit for the uploaded scan.
AUTO_MODEL = "auto"


def _segmenter(segmenters: SegmenterCache, model: str) -> Segmenter:
    try:
        return segmenters.get(model)
    except KeyError as error:
        raise HTTPException(404, str(error.args[0])) from None
    except (WeightsError, OSError) as error:
        logger.warning("Model %s cannot be loaded: %s", model, error)
        raise HTTPException(503, f"model {model!r} cannot be loaded right now; try another") from None


def _read_uploads(files: list[UploadFile], limit: int) -> list[tuple[str, bytes]]:
    """``(filename, bytes)`` of each upload; 413 once their total passes ``limit`` bytes."""
    uploads: list[tuple[str, bytes]] = []
    total = 0
    for upload in files:
        data = upload.file.read(limit + 1)
        total += len(data)
        if total > limit:
            raise HTTPException(413, f"the upload is larger than {limit // (1024 * 1024)} MiB")
        uploads.append((upload.filename or "upload", data))
    return uploads


def _read_scan(files: list[UploadFile], modalities: str | None, limit: int) -> Scan:
    uploads = _read_uploads(files, limit)
    names = tuple(m for m in (modalities or "").replace(" ", "").split(",") if m) or None
    try:
        source = uploads[0][1] if len(uploads) == 1 else uploads
        return load_scan(source, name=uploads[0][0] if len(uploads) == 1 else None, modalities=names)
    except (ScanError, DecodeBusy):  # 422, and 503 with Retry-After (the factory's handlers)
        raise
    except Exception as error:  # a reader bug must still be a clear 4xx, not a 500 with a traceback
        logger.error("Unexpected %s while reading an upload", type(error).__name__)
        raise HTTPException(
            422, f"the upload could not be read as a scan ({type(error).__name__}). Supported: {SUPPORTED_FORMATS}"
        ) from None
    finally:
        del uploads  # the upload's bytes go as soon as the scan is decoded


def _mask_format(scan: Scan, requested: str) -> str:
    fmt = ("png" if scan.is_2d else "nifti") if requested in ("json", "auto") else requested
    if fmt == "png" and not scan.is_2d:
        raise ScanError(f"a PNG mask is only for 2D images; this scan has {scan.num_slices} slices: ask for format=nifti")
    return fmt


def _choose_model(scan: Scan, segmenters: SegmenterCache) -> ModelFit:
    try:
        return choose_model(scan, segmenters.weights_dir)
    except WeightsError as error:  # no shipped model reads this scan's sequences: the upload's problem
        raise HTTPException(422, str(error)) from None


def _mask_file_answer(
    prediction: Prediction, figures: dict[str, Any], fmt: str, encoded: bytes, chosen: ModelFit | None
) -> Response:
    """The mask file itself, with the main figures in the ``X-Segmentation`` header."""
    summary = {
        "model": prediction.model_id,
        **({"model_choice": fit_summary(chosen)} if chosen is not None else {}),
        "seconds": round(prediction.seconds, 3),
        "backend": prediction.backend,
        **{k: figures.get(k) for k in ("tumor_pixels", "largest_slice_area_mm2", "volume_ml", "area_unit")},
        "slices_with_tumor": len(figures["slices_with_tumor"]),
    }
    headers = {
        "Content-Disposition": f'attachment; filename="{mask_filename(fmt)}"',
        "X-Segmentation": json.dumps(json_safe(summary), allow_nan=False),
    }
    return Response(encoded, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.post(
    "/segment",
    response_model=SegmentResult,
    responses={
        200: {
            "description": "JSON figures and the mask (format=json), or the mask file (format=png / nifti)",
            "content": {"image/png": {}, "application/gzip": {}},
        },
        **PROBLEMS,
    },
    summary="Segment an uploaded scan",
)
async def segment(
    settings: Settings,
    segmenters: Segmenters,
    inference: Inference,
    files: Annotated[
        list[UploadFile], File(description="one file, or the files of one scan (a DICOM series, a BraTS case)", min_length=1)
    ],
    model: Annotated[
        str, Form(description="model id from /models, e.g. unet.figshare, or auto: the best fit for the scan", max_length=200)
    ] = "unet.figshare",
    modalities: Annotated[
        str | None, Form(description="override the channel names, comma separated, e.g. t1c or flair,t1c", max_length=200)
    ] = None,
    format: Annotated[
        Literal["json", "png", "nifti"], Query(description="answer: JSON figures + mask, or the mask file")
    ] = "json",
) -> Any:
    # Files per request are bounded by the multipart parser (form_limits, = limits.MAX_FILES).
    return await inference.run(_segment_upload, settings, segmenters, files, model, modalities, format)


def _segment_upload(
    settings: ApiSettings, segmenters: SegmenterCache, files: list[UploadFile], model: str, modalities: str | None, format: str
) -> Any:
    chosen = None
    if model == AUTO_MODEL:  # the scan decides the model, so it is read first
        scan = _read_scan(files, modalities, settings.max_upload_bytes)
        chosen = _choose_model(scan, segmenters)
        model = chosen.model_id
        segmenter = _segmenter(segmenters, model)
    else:  # a bad model id is refused before the upload is decoded
        segmenter = _segmenter(segmenters, model)
        scan = _read_scan(files, modalities, settings.max_upload_bytes)
    fmt = _mask_format(scan, format)
    prediction = segmenter(scan)
    encoded = save_mask(scan, prediction.mask, fmt=fmt)
    figures = mask_figures(prediction.mask, scan, prediction.sizes)
    logger.info(
        "Segmented a %s scan of %s voxels with %s in %.2f s",
        scan.source_format,
        "x".join(map(str, scan.shape)),
        model,
        prediction.seconds,
    )
    if format != "json":
        return _mask_file_answer(prediction, figures, fmt, encoded, chosen)
    return SegmentResult(
        model=prediction.model_id,
        model_choice=ModelChoice(**fit_summary(chosen)) if chosen is not None else None,
        seconds=round(prediction.seconds, 3),
        backend=prediction.backend,
        input=json_safe(describe(scan)),
        figures=figures,
        mask=MaskFile(format=fmt, filename=mask_filename(fmt), base64=base64.b64encode(encoded).decode("ascii")),  # type: ignore[arg-type]
        disclaimer=DISCLAIMER,
    )
