"""Compare: the same scan through two to four models, where they agree, how good and how costly each is."""

from __future__ import annotations

import streamlit as st

from ui.frame import frame

frame(
    "Compare",
    "Run two to four models on the same scan and see where they agree, how close each is to a ground truth, and what each costs.",
)

from seg_core.compare import agreement_share  # noqa: E402
from seg_core.visualize import (  # noqa: E402
    agreement_map,
    apply_window,
    display_channel,
    mask_picture,
    plane_spacing,
    square_pixels,
)
from ui.cache import window_limits  # noqa: E402
from ui.compare import cost_table_for_people, costs, pairwise_agreement, truth_metrics  # noqa: E402
from ui.figures import cost_figure, pairwise_figure  # noqa: E402
from ui.model_choice import models_picker  # noqa: E402
from ui.summaries import size_caption  # noqa: E402
from ui.viewer import follow_tumor  # noqa: E402
from ui.widgets import predict_with_progress, scan_picker, truth_picker  # noqa: E402

active = scan_picker("compare")
if active is None:
    st.stop()
scan = active.scan
with st.expander("Ground truth", expanded=active.truth is None):
    truth = truth_picker("compare", active)
    if truth is None:
        st.caption("Upload a mask to see Dice, IoU and HD95 per model.")
    elif active.truth is not None and truth is active.truth:
        st.caption("Using the ground truth that came with the scan.")

model_ids = models_picker("compare", active)
if not model_ids:
    st.info("Choose models to compare above.")
    st.stop()
if len(model_ids) < 2:
    st.warning("Comparing needs two models; only one is chosen (or only one trained model fits this scan). Showing it alone.")

predictions = {}
for model_id in model_ids:
    prediction = predict_with_progress(active, model_id, failure=f"{model_id} could not segment this scan")
    if prediction is not None:
        predictions[model_id] = prediction
if not predictions:
    st.stop()
names = list(predictions)

index = 0
if scan.num_slices > 1:
    # The first model's largest tumor slice (a union would follow whichever model marks the most).
    first = predictions[names[0]].sizes["slice_area_mm2"]
    follow_tumor("compare_slice", active.key, tuple(names), first)
    index = st.slider("Axial slice", 0, scan.num_slices - 1, key="compare_slice")
channel = display_channel(scan.modalities)
low, high = window_limits(active.key, scan, channel, 0.5, 99.5)
gray = apply_window(scan.array[channel, index], low, high)
pixel = plane_spacing(scan.spacing, "axial")
show_truth = truth is not None and st.checkbox("Outline the ground truth (blue)", value=True, key="compare_truth_outline")

st.subheader("Side by side")
columns = st.columns(len(names))
for column, name in zip(columns, names, strict=True):
    prediction = predictions[name]
    with column:
        picture = mask_picture(gray, prediction.mask[index], truth[index] if show_truth else None, pixel)
        st.image(picture, caption=name, width="stretch")
        st.caption(size_caption(scan, prediction))

st.subheader("Agreement")
left, right = st.columns([3, 2])
with left:
    agreement = agreement_map(gray, [predictions[name].mask[index] for name in names])
    st.image(square_pixels(agreement, pixel), caption="Agreement map", width="stretch")
    st.caption(
        "**Green**: every model marks tumor. **Orange**: only some do (brighter = more of them). "
        "Disagreement is where a reader should look twice."
    )
with right:
    share = agreement_share([predictions[name].mask for name in names])
    st.metric("Tumor voxels all models agree on", f"{share:.0%}", help="Voxels every model marks, out of those any model marks.")
    if len(names) > 1:
        st.plotly_chart(pairwise_figure(names, pairwise_agreement(active.key, predictions)), key="compare_pairwise")

if truth is not None:
    st.subheader("Against the ground truth")
    st.dataframe(truth_metrics(active.key, scan, predictions, truth), hide_index=True, width="stretch", key="compare_truth_table")
    st.caption("Computed over the whole scan (all slices together). HD95 is undefined when a mask is empty.")

st.subheader("Cost")
with st.spinner("Profiling models (once per model)..."):
    table, failures = costs(predictions)
for failure in failures:
    st.warning(failure)
if not table.empty:
    st.dataframe(cost_table_for_people(table), hide_index=True, width="stretch", key="compare_cost_table")
    st.plotly_chart(cost_figure(table), key="compare_cost_chart")
    st.caption(
        "Energy is estimated from operation counts at the model's input size (dense MACs at 4.6 pJ, spike-driven "
        "accumulates at 0.9 pJ; Horowitz 2014, 45 nm): it compares models, it does not predict a chip's power. Latency "
        "is the median CPU time of one slice; 'this scan' includes every slice and test-time flipping."
    )
