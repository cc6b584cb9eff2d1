"""Segment: upload a scan (or pick a sample), choose a model, see the tumor mask over the scan, download it."""

from __future__ import annotations

import json

import streamlit as st

from ui.frame import frame

frame("Segment", "Upload a brain MRI slice or volume, choose a model, and look at the tumor it finds.")

from seg_core.display_names import sequence_name  # noqa: E402
from seg_core.report import report_csv  # noqa: E402
from seg_core.visualize import (  # noqa: E402
    PLANES,
    apply_window,
    display_channel,
    mask_picture,
    plane_count,
    plane_slice,
    plane_spacing,
)
from ui.cache import mask_file, segmenter, window_limits  # noqa: E402
from ui.frame import scan_and_model  # noqa: E402
from ui.niivue_view import show_volume  # noqa: E402
from ui.summaries import cached_report, size_metrics, slice_profile, truth_line  # noqa: E402
from ui.viewer import clickable_strip, follow_tumor, go_to_slice  # noqa: E402
from ui.widgets import postprocessing_controls, predict_with_progress, truth_picker  # noqa: E402

SLICE_VIEW, NIIVUE_VIEW = "Slices", "Three planes (NiiVue)"
NIIVUE_HELP = "Slices: one plane, the view goes to the tumor. NiiVue: three linked planes in the browser (WebGL)."

active, model_id = scan_and_model("segment", prewarm_model=True)
scan = active.scan
with st.sidebar:
    settings = postprocessing_controls("segment", segmenter(model_id))

prediction = predict_with_progress(active, model_id, settings)
if prediction is None:
    st.stop()

with st.expander("Ground truth (optional)", expanded=False):
    truth = truth_picker("segment", active)
    if truth is None:
        st.caption("Upload the scan's expert mask to see Dice, IoU and HD95 and its outline over the image.")
    elif truth is active.truth:
        st.caption("Using the ground truth that came with the scan.")
# What to look at in one row; how it is drawn in an expander, so the image stays near the top of the page.
view = st.columns([3, 3, 2], vertical_alignment="bottom")
plane = "axial"
if not scan.is_2d:
    plane = view[0].radio("Plane", PLANES, horizontal=True, key="segment_plane")
channel = 0
if scan.num_channels > 1:
    channel = view[1].selectbox(
        "Sequence shown",
        range(scan.num_channels),
        index=display_channel(scan.modalities),
        format_func=lambda c: sequence_name(scan.modalities[c]),
        key="segment_channel",
    )
show_truth = truth is not None and view[2].checkbox(
    "Show the ground-truth outline (blue)", value=True, key="segment_truth_outline"
)
with st.expander("Overlay, opacity and intensity window"):
    drawing = st.columns([2, 2, 3])
    style = drawing[0].radio("Overlay", ["fill", "contour"], horizontal=True, key="segment_style")
    opacity = drawing[1].slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="segment_opacity")
    lower, upper = drawing[2].slider(
        "Intensity window (percentiles)",
        0.0,
        100.0,
        (0.5, 99.5),
        0.5,
        key="segment_window",
        help="Clip the scan's intensities to these percentiles.",
    )

count = plane_count(scan.shape, plane)
per_slice, unit = slice_profile(scan, prediction, plane)
index = 0
slider_key = f"segment_slice_{plane}"
if count > 1:
    run = (model_id, json.dumps(prediction.postprocessing, sort_keys=True))
    target = follow_tumor(slider_key, active.key, run, per_slice)
    slide, jump = st.columns([5, 1], vertical_alignment="bottom")
    index = slide.slider(f"{plane.capitalize()} slice", 0, count - 1, key=slider_key)
    if index != target and per_slice[target] > 0:
        jump.button(f"Go to the tumor ({target})", key="segment_go_to_tumor", on_click=go_to_slice, args=(slider_key, target))

low, high = window_limits(active.key, scan, channel, lower, upper)
gray = apply_window(plane_slice(scan.array[channel], plane, index), low, high)
picture = mask_picture(
    gray,
    plane_slice(prediction.mask, plane, index),
    plane_slice(truth, plane, index) if show_truth else None,
    plane_spacing(scan.spacing, plane),
    opacity=opacity,
    style=style,
)

left, right = st.columns([3, 2])
with left:
    viewer = SLICE_VIEW
    if not scan.is_2d:
        viewer = st.radio("Viewer", (SLICE_VIEW, NIIVUE_VIEW), horizontal=True, key="segment_viewer", help=NIIVUE_HELP)
    if viewer == NIIVUE_VIEW and show_volume(active, prediction, channel, key="segment_niivue"):
        st.caption(
            f"NiiVue: the three planes are linked; click to move the crosshair, right-drag to set window and level. "
            f"Red: {model_id}'s mask."
        )
    else:
        if viewer == NIIVUE_VIEW:
            st.caption("NiiVue is not installed here (`pip install niivue-streamlit`); showing the slice view.")
        where = f"{plane} slice {index} of {count}" if count > 1 else "the slice"
        st.image(picture, caption=f"{active.label}: {where}, {model_id}'s mask (orange)", width="stretch")
        if count > 1:
            clickable_strip(per_slice, index, unit, plane, f"segment_strip_{plane}", slider_key)

report = cached_report(active, prediction, truth)
with right:
    for label, value in size_metrics(scan, report, prediction.seconds, prediction.backend):
        st.metric(label, value)
    if (line := truth_line(scan, report)) is not None:
        st.markdown(line)
    if not scan.spacing_known:
        st.caption("This file records no pixel size, so sizes are in pixels.")
    name, data, mime = mask_file(active.key, active.stem, scan, prediction)
    st.download_button("Download mask", data, file_name=name, mime=mime, key="segment_download_mask")
    st.download_button(
        "Download report (JSON)",
        json.dumps(report, indent=2),
        file_name=f"{active.stem}_{model_id}_report.json",
        mime="application/json",
        key="segment_download_json",
    )
    st.download_button(
        "Download report (CSV)",
        report_csv(report),
        file_name=f"{active.stem}_{model_id}_report.csv",
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
