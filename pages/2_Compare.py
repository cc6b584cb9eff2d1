"""Compare: the same scan through two to four models, where they agree, how good and how costly each is."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui.frame import frame

frame(
    "Compare",
    "Run two to four models on the same scan and see where they agree, how close each is to a ground truth, and what each costs.",
)

import torch  # noqa: E402

from seg_core.metrics import batch_dice, segmentation_metrics  # noqa: E402
from seg_core.visualize import TRUTH_COLOR, agreement_map, apply_window, draw_mask, overlay, square_pixels  # noqa: E402
from ui.cache import inference_cost, memo, window_limits  # noqa: E402
from ui.figures import cost_figure, pairwise_figure  # noqa: E402
from ui.widgets import models_picker, predict_with_progress, scan_picker, truth_picker  # noqa: E402

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

with st.sidebar:
    model_ids = models_picker("compare", scan)
if not model_ids:
    st.info("Choose models to compare in the sidebar.")
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
masks = [predictions[name].mask for name in names]

index = 0
if scan.num_slices > 1:
    # The first model's largest tumor slice (a union would follow whichever model marks the most).
    largest = predictions[names[0]].sizes["largest_slice_index"]
    default = largest if largest >= 0 else scan.num_slices // 2
    index = st.slider("Axial slice", 0, scan.num_slices - 1, default, key="compare_slice")
channel = scan.modalities.index("t1c") if "t1c" in scan.modalities else 0
low, high = window_limits(active.key, scan, channel, 0.5, 99.5)
gray = apply_window(scan.array[channel, index], low, high)
pixel = (scan.spacing[1], scan.spacing[2])
show_truth = truth is not None and st.checkbox("Outline the ground truth (blue)", value=True, key="compare_truth_outline")

st.subheader("Side by side")
columns = st.columns(len(names))
for column, name in zip(columns, names, strict=True):
    prediction = predictions[name]
    picture = overlay(gray, prediction.mask[index], opacity=0.45, style="fill", windowed=True)
    if show_truth:
        picture = draw_mask(picture, truth[index], color=TRUTH_COLOR, style="contour")
    with column:
        st.image(square_pixels(picture, pixel), caption=name, width="stretch")
        sizes = prediction.sizes
        if scan.is_2d:
            size = f"{sizes['largest_slice_area_mm2']:.0f} mm²" if scan.spacing_known else f"{sizes['pixels']} px"
        else:
            size = f"{sizes['volume_ml']:.2f} mL"
        st.caption(f"tumor {size} · {prediction.seconds * 1000:.0f} ms on this scan")

st.subheader("Agreement")
left, right = st.columns([3, 2])
with left:
    st.image(square_pixels(agreement_map(gray, [m[index] for m in masks]), pixel), caption="Agreement map", width="stretch")
    st.caption(
        "**Green**: every model marks tumor. **Orange**: only some do (brighter = more of them). "
        "Disagreement is where a reader should look twice."
    )
with right:
    union = np.any(np.stack(masks), axis=0)
    everyone = np.all(np.stack(masks), axis=0)
    share = float(everyone.sum() / union.sum()) if union.any() else 1.0
    st.metric("Tumor voxels all models agree on", f"{share:.0%}", help="Voxels every model marks, out of those any model marks.")
    if len(names) > 1:

        def pairwise() -> np.ndarray:
            flat = torch.from_numpy(np.stack(masks).reshape(len(masks), -1).astype(bool))
            return np.array(
                [[float(batch_dice(flat[i : i + 1], flat[j : j + 1])[0]) for j in range(len(masks))] for i in range(len(masks))]
            )

        matrix = memo(
            ("pairwise", active.key, tuple(names), tuple(str(p.postprocessing) for p in predictions.values())), pairwise
        )
        st.plotly_chart(pairwise_figure(names, matrix), key="compare_pairwise")

if truth is not None:
    st.subheader("Against the ground truth")
    spacing = list(scan.spacing) if scan.spacing_known else None
    rows = []
    for name in names:
        figures = memo(
            ("truth_metrics", active.key, name, str(predictions[name].postprocessing), hash(truth.tobytes())),
            lambda name=name: segmentation_metrics(predictions[name].mask, truth, spacing),
        )
        rows.append(
            {
                "model": name,
                "Dice": round(figures["dice"], 4),
                "IoU": round(figures["iou"], 4),
                f"HD95 ({'mm' if spacing else 'px'})": None if np.isnan(figures["hd95"]) else round(figures["hd95"], 2),
                "sensitivity": round(figures["sensitivity"], 4),
                "precision": None if np.isnan(figures["precision"]) else round(figures["precision"], 4),
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch", key="compare_truth_table")
    st.caption("Computed over the whole scan (all slices together). HD95 is undefined when a mask is empty.")

st.subheader("Cost")
with st.spinner("Profiling models (once per model)..."):
    costs = []
    for name in names:
        try:
            cost = inference_cost(name)
        except Exception as error:  # profiling is informative only; never break the page on it
            st.warning(f"Could not profile {name}: {error}")
            continue
        costs.append(
            {
                "model": name,
                "parameters (M)": round(cost["params"] / 1e6, 3) if cost.get("params") else None,
                "MACs (G)": round(cost["macs"] / 1e9, 3) if cost.get("macs") else None,
                "SOPs (G)": round(cost["sops"] / 1e9, 3) if cost.get("sops") else 0.0,
                "energy_mj": round(cost["energy_mj"], 4) if cost.get("energy_mj") is not None else None,
                "latency_ms": round(cost["latency_ms"], 1) if cost.get("latency_ms") is not None else None,
                "this scan (s)": round(predictions[name].seconds, 3),
                "source": cost.get("source", ""),
            }
        )
if costs:
    st.dataframe(costs, hide_index=True, width="stretch", key="compare_cost_table")
    st.plotly_chart(cost_figure(costs), key="compare_cost_chart")
    st.caption(
        "Energy is estimated from operation counts at the model's input size (dense MACs at 4.6 pJ, spike-driven "
        "accumulates at 0.9 pJ; Horowitz 2014, 45 nm): it compares models, it does not predict a chip's power. Latency "
        "is the median CPU time of one slice; 'this scan' includes every slice and test-time flipping."
    )
