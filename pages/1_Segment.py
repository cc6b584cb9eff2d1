"""Segment: upload a scan (or pick a sample), choose a model, see the tumor mask over the scan, download it."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from ui.frame import frame

frame("Segment", "Upload a brain MRI slice or volume, choose a model, and look at the tumor it finds.")

from seg_core.report import prediction_report, report_csv  # noqa: E402
from seg_core.visualize import (  # noqa: E402
    PLANES,
    TRUTH_COLOR,
    apply_window,
    draw_mask,
    overlay,
    plane_count,
    plane_slice,
    plane_spacing,
    square_pixels,
)
from ui.cache import mask_file, memo, prewarm, segmenter, window_limits  # noqa: E402
from ui.figures import presence_strip  # noqa: E402
from ui.state import LAST_MODEL  # noqa: E402
from ui.widgets import model_picker, postprocessing_controls, predict_with_progress, scan_picker  # noqa: E402

active = scan_picker("segment")
if active is None:
    ready = prewarm(st.session_state.get(LAST_MODEL))  # load the model while the user picks a file
    if ready:
        st.caption(f"Model {ready} is loaded and ready.")
    st.stop()
scan = active.scan

with st.sidebar:
    model_id = model_picker("segment", scan)
if model_id is None:
    st.stop()
runner = segmenter(model_id)
with st.sidebar:
    settings = postprocessing_controls("segment", runner)

prediction = predict_with_progress(active, model_id, settings)
if prediction is None:
    st.stop()

truth = active.truth
controls = st.columns([2, 2, 2, 3])
plane = "axial"
if not scan.is_2d:
    plane = controls[0].radio("Plane", PLANES, horizontal=True, key="segment_plane")
style = controls[1].radio("Overlay", ["fill", "contour"], horizontal=True, key="segment_style")
opacity = controls[2].slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="segment_opacity")
lower, upper = controls[3].slider(
    "Intensity window (percentiles)",
    0.0,
    100.0,
    (0.5, 99.5),
    0.5,
    key="segment_window",
    help="Clip the scan's intensities to these percentiles.",
)
channel = 0
if scan.num_channels > 1:
    default_channel = scan.modalities.index("t1c") if "t1c" in scan.modalities else 0
    channel = st.selectbox(
        "Sequence shown",
        range(scan.num_channels),
        index=default_channel,
        format_func=lambda c: scan.modalities[c],
        key="segment_channel",
    )
show_truth = truth is not None and st.checkbox("Show the ground-truth outline (blue)", value=True, key="segment_truth")

count = plane_count(scan.shape, plane)
mask = prediction.mask
if plane == "axial":
    per_slice = np.asarray(prediction.sizes["slice_area_mm2"], dtype=float)
    unit = "mm²" if scan.spacing_known else "px"
else:
    axes = (0, 2) if plane == "coronal" else (0, 1)
    per_slice = mask.sum(axis=axes).astype(float)
    unit = "voxels"
index = 0
if count > 1:
    default = int(np.argmax(per_slice)) if per_slice.any() else count // 2
    index = st.slider(f"{plane.capitalize()} slice", 0, count - 1, default, key=f"segment_slice_{plane}")

low, high = window_limits(active.key, scan, channel, lower, upper)
gray = apply_window(plane_slice(scan.array[channel], plane, index), low, high)
picture = overlay(gray, plane_slice(mask, plane, index), opacity=opacity, style=style, windowed=True)
if show_truth:
    picture = draw_mask(picture, plane_slice(truth, plane, index), color=TRUTH_COLOR, style="contour")
picture = square_pixels(picture, plane_spacing(scan.spacing, plane))

left, right = st.columns([3, 2])
with left:
    where = f"{plane} slice {index} of {count}" if count > 1 else "the slice"
    st.image(picture, caption=f"{active.label}: {where}, {model_id}'s mask (orange)", width="stretch")
    if count > 1:
        st.plotly_chart(
            presence_strip(per_slice, index, unit, f"Tumor per {plane} slice (the dotted line is the slice shown)"),
            key="segment_strip",
            config={"displayModeBar": False},
        )

# The report includes HD95 against the ground truth, which takes a while on a volume: once per setting.
report = memo(
    ("report", active.key, model_id, json.dumps(prediction.postprocessing, sort_keys=True), truth is not None),
    lambda: prediction_report(scan, prediction, truth),
)
with right:
    sizes = prediction.sizes
    st.metric("Tumor found", "yes" if report["tumor_present"] else "no")
    if scan.is_2d:
        area = report["largest_slice_area"]
        st.metric("Tumor area", f"{area:.1f} mm²" if scan.spacing_known else f"{report['tumor_pixels']} px")
    else:
        volume = report["volume_ml"]
        st.metric("Tumor volume", f"{volume:.2f} mL" if volume is not None else f"{report['tumor_pixels']} voxels")
        st.metric("Slices with tumor", f"{report['slices_with_tumor']} of {scan.num_slices}")
    st.metric("Separate regions", report["components"])
    st.metric("Time", f"{prediction.seconds * 1000:.0f} ms")
    if "metrics" in report:
        figures = report["metrics"]
        hd95 = figures.get("hd95")
        st.markdown(
            f"**Against the ground truth:** Dice {figures['dice']:.3f} · IoU {figures['iou']:.3f} · "
            f"HD95 {'n/a' if hd95 is None else f'{hd95:.1f}'} {'mm' if scan.spacing_known else 'px'}"
        )
    if not scan.spacing_known:
        st.caption("This file records no pixel size, so sizes are in pixels.")
    name, data, mime = mask_file(active.key, scan, prediction)
    st.download_button("Download mask", data, file_name=name, mime=mime, key="segment_download_mask")
    st.download_button(
        "Download report (JSON)",
        json.dumps(report, indent=2),
        file_name=f"{model_id}_report.json",
        mime="application/json",
        key="segment_download_json",
    )
    st.download_button(
        "Download report (CSV)",
        report_csv(report),
        file_name=f"{model_id}_report.csv",
        mime="text/csv",
        key="segment_download_csv",
    )
    st.caption(
        "The mask is "
        + (
            "a PNG (0/255) of the slice."
            if scan.is_2d
            else "a NIfTI in the input's own voxel order with its affine, so it overlays the original in any viewer."
        )
    )
