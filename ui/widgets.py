"""Widgets shared by the pages: choosing a scan, a ground-truth mask, models and post-processing.

Each widget key starts with the page's name (``segment_upload``, ``compare_models`` ...), so the
pages never share a widget by accident and tests can address every widget by its key.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import streamlit as st

from seg_core.display_names import sequence_list
from seg_core.inference import Prediction, Segmenter
from seg_core.scans import DecodeBusy, Scan, ScanError, load_scan
from ui.cache import file_key, predict, sample, sample_list, scan_from_upload
from ui.state import PENDING_SAMPLE, ActiveScan, get_active_scan, set_active_scan, upload_stem

logger = logging.getLogger(__name__)

UPLOAD_HELP = (
    "A PNG/JPEG/TIFF slice, a NIfTI volume (.nii/.nii.gz), DICOM files or a ZIP of a series, a ZIP of slices, "
    "or the files of one BraTS case (select them together). Nothing you upload is stored."
)
SOURCES = ("Upload", "Sample")
#: The readers' format names (``Scan.source_format``) in words.
SOURCE_WORDS = {
    "png": "PNG image",
    "jpeg": "JPEG image",
    "tiff": "TIFF image",
    "nifti": "NIfTI volume",
    "dicom": "DICOM series",
    "brats": "BraTS case",
    "zip": "ZIP of slices",
}


def _describe(scan: Scan) -> str:
    depth, height, width = scan.shape
    size = f"{width}x{height} px" if scan.is_2d else f"{depth} slices of {width}x{height} px"
    modalities = sequence_list(scan.modalities)
    if not scan.spacing_known:
        spacing = ", no pixel size recorded"
    else:
        spacing = f", {scan.spacing[1]:.2g} x {scan.spacing[2]:.2g} mm pixels"
        spacing += "" if scan.is_2d else f", {scan.spacing[0]:.2g} mm slices"
    kind = SOURCE_WORDS.get(scan.source_format, scan.source_format or "scan")
    return f"{kind}: {size}; {modalities}{spacing}"


def _truth_of(scan: Scan) -> np.ndarray | None:
    return None if scan.label is None else (np.asarray(scan.label) > 0).astype(np.uint8)


def scan_picker(page: str) -> ActiveScan | None:
    """Upload a scan or pick a sample; the choice becomes the session's current scan.

    Returns the current scan (possibly chosen on another page), or None. A file that cannot be read
    gives an ``st.error`` with the reader's message and None; the app keeps running.
    """
    active = get_active_scan()
    if (pending := st.session_state.pop(PENDING_SAMPLE, None)) is not None:  # a sample chosen on Home
        st.session_state[f"{page}_source"] = "Sample"
        st.session_state[f"{page}_sample"] = pending
    source = st.radio("Scan source", SOURCES, key=f"{page}_source", horizontal=True, label_visibility="collapsed")
    if source == "Upload":
        uploads = st.file_uploader(
            "Upload a brain MRI scan", type=None, accept_multiple_files=True, key=f"{page}_upload", help=UPLOAD_HELP
        )
        if uploads:
            files = [(upload.name, upload.getvalue()) for upload in uploads]
            key = file_key(files)
            if active is None or active.key != key:
                try:
                    scan = scan_from_upload(key, files)
                except ScanError as error:
                    st.error(f"Could not use this upload: {error}")
                    return None
                except DecodeBusy as error:  # not the file's fault: the server is reading other uploads
                    st.warning(busy_message(error))
                    return None
                except Exception as error:  # the reader is hardened; anything else is still the file's fault
                    logger.exception("unexpected error reading an upload")
                    st.error(f"Could not use this upload: unexpected {type(error).__name__}: {error}")
                    return None
                stem = upload_stem([n for n, _ in files])
                # Named after the files (a multi-file upload has no name of its own: the reader calls it "upload").
                active = ActiveScan(key, scan, _truth_of(scan), stem, "upload", stem)
                set_active_scan(active)
    else:
        samples = {info.name: info for info in sample_list(None)}
        choice = st.selectbox(
            "Sample",
            list(samples),
            index=None,
            format_func=lambda name: samples[name].title,
            key=f"{page}_sample",
            placeholder="Choose a sample scan",
            help="Built-in synthetic phantoms always; cases from the test splits when BRAINSEG_DATA_ROOT points at the data.",
        )
        if choice is not None:
            key = f"sample:{choice}"
            if active is None or active.key != key:
                try:
                    scan, truth = sample(choice, None)
                except (KeyError, ScanError, OSError) as error:
                    st.error(f"Could not load sample {choice}: {error}")
                    return None
                active = ActiveScan(key, scan, truth, choice, "sample", upload_stem([choice]))
                set_active_scan(active)
    if active is None:
        st.info("Upload a brain MRI slice or volume, or choose a sample, to begin. Nothing you upload is stored.")
        return None
    truth_note = " · ground truth available" if active.truth is not None else ""
    st.caption(f"**{active.label}**: {_describe(active.scan)}{truth_note}")
    return active


def busy_message(error: DecodeBusy) -> str:
    """What to tell the user when other uploads hold the decode budget: their file is fine, wait and retry."""
    seconds = max(1, round(error.retry_after_s))
    return (
        "The server is busy reading other uploads, so this file was not read yet (nothing is wrong with it). "
        f"Try again in about {seconds} s: press R or re-select the file."
    )


def truth_picker(page: str, active: ActiveScan) -> np.ndarray | None:
    """Optional ground-truth mask upload (same size as the scan); returns the mask ``(D, H, W)`` or the scan's own."""
    upload = st.file_uploader(
        "Ground-truth mask (optional): PNG for a slice, NIfTI for a volume",
        type=None,
        key=f"{page}_truth",
        help="Any nonzero pixel counts as tumor. It must have the scan's size.",
    )
    if upload is None:
        return active.truth
    try:
        mask_scan = load_scan(upload.getvalue(), name=upload.name)
    except ScanError as error:
        st.error(f"Could not use this mask: {error}")
        return active.truth
    except DecodeBusy as error:
        st.warning(busy_message(error))
        return active.truth
    mask = (mask_scan.array[0] > 0).astype(np.uint8)
    if mask.shape != active.scan.shape:
        st.error(
            f"The mask is {mask.shape[2]}x{mask.shape[1]} px with {mask.shape[0]} slice(s); "
            f"the scan is {active.scan.shape[2]}x{active.scan.shape[1]} px with {active.scan.shape[0]}."
        )
        return active.truth
    return mask


def postprocessing_controls(page: str, runner: Segmenter) -> dict[str, Any]:
    """Threshold and clean-up settings, starting from what the weights chose on validation."""
    default = runner.postprocessing.to_dict()
    model = runner.model_id.replace(".", "_")
    with st.expander("Threshold and post-processing", expanded=False):
        st.caption(
            "Defaults are the settings chosen for this model on its validation split. Changing them never reruns the model."
        )
        threshold = st.slider(
            "Threshold (tumor probability)", 0.05, 0.95, float(default["threshold"]), 0.05, key=f"{page}_threshold_{model}"
        )
        fill_holes = st.checkbox("Fill holes inside the tumor", bool(default["fill_holes"]), key=f"{page}_fill_{model}")
        largest = st.checkbox(
            "Keep only the largest connected region", bool(default["largest_component_only"]), key=f"{page}_largest_{model}"
        )
        opening = st.slider(
            "Remove specks thinner than (opening radius, px)", 0, 5, int(default["opening_radius"]), key=f"{page}_opening_{model}"
        )
        min_size = st.number_input(
            "Remove regions smaller than (mm² per slice; pixels when the file has no pixel size)",
            min_value=0.0,
            value=float(default["min_size_mm2"]),
            step=5.0,
            key=f"{page}_minsize_{model}",
        )
    return {
        **default,
        "threshold": float(threshold),
        "fill_holes": bool(fill_holes),
        "largest_component_only": bool(largest),
        "opening_radius": int(opening),
        "min_size_mm2": float(min_size),
    }


def progress_callback(label: str):
    """A ``(done, total)`` callback drawing a Streamlit progress bar; returns ``(callback, bar)``."""
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int) -> None:
        bar.progress(1.0 if not total else min(done / total, 1.0), text=f"{label} {done}/{total} slices")

    return update, bar


def predict_with_progress(
    active: ActiveScan,
    model_id: str,
    postprocessing: dict[str, Any] | None = None,
    failure: str = "Could not segment this scan",
) -> Prediction | None:
    """The model's prediction, with a progress bar for volumes.

    A scan the model cannot read (e.g. it lacks a sequence the model needs) shows ``failure`` and the reason,
    and gives ``None``, so the page decides whether to stop or go on with other models.
    """
    label = f"Segmenting with {model_id}:"
    update, bar = progress_callback(label) if active.scan.num_slices > 1 else (None, None)
    try:
        return predict(active.key, active.scan, model_id, postprocessing, update)
    except ScanError as error:
        st.error(f"{failure}: {error}")
        return None
    finally:
        if bar is not None:
            bar.empty()
