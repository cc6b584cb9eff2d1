"""Explain: why a model marks a region (Captum), how far to trust each map (deletion curves), and, for
spiking models, what every block's neurons and attention do at every time step."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui.frame import frame

frame(
    "Explain",
    "Which pixels does the model's tumor call depend on? Four attribution methods, a check of how faithful each is, and "
    "for spiking models a look at their spikes and attention over time.",
)

from seg_core.explain import METHOD_INFO, METHODS, SPIKING_CAPTIONS, default_gradcam_layer, resize_map  # noqa: E402
from seg_core.visualize import apply_window, draw_mask, heatmap_overlay  # noqa: E402
from ui.cache import explanation, gradcam_layers, segmenter, window_limits  # noqa: E402
from ui.figures import animated_maps, bars_figure, deletion_figure, raster_figure, rate_matrix_figure  # noqa: E402
from ui.state import EXPLANATION  # noqa: E402
from ui.widgets import model_picker, predict_with_progress, scan_picker  # noqa: E402

active = scan_picker("explain")
if active is None:
    st.stop()
scan = active.scan
with st.sidebar:
    model_id = model_picker("explain", scan)
if model_id is None:
    st.stop()
runner = segmenter(model_id)

prediction = predict_with_progress(active, model_id)
if prediction is None:
    st.stop()

layers = gradcam_layers(active.key, scan, model_id, 0)
layer_names = [info.name for info in layers]
layer_labels = {info.name: info.label for info in layers}
default_layer = default_gradcam_layer(layers)

with st.form("explain_form"):
    st.markdown("**What to explain** (nothing runs until you press *Explain*)")
    index = 0
    if scan.num_slices > 1:
        largest = prediction.sizes["largest_slice_index"]
        index = st.slider(
            "Axial slice", 0, scan.num_slices - 1, largest if largest >= 0 else scan.num_slices // 2, key="explain_slice"
        )
    methods = st.multiselect(
        "Methods", METHODS, default=list(METHODS), format_func=lambda m: METHOD_INFO[m]["title"], key="explain_methods"
    )
    layer = None
    if layer_names:
        layer = st.selectbox(
            "Grad-CAM layer",
            layer_names,
            index=layer_names.index(default_layer.name) if default_layer else 0,
            format_func=lambda name: layer_labels[name],
            key="explain_layer",
            help="The default is the bottleneck (coarsest features). Layers nearer the output give finer but less abstract maps.",
        )
    n_steps = st.select_slider(
        "Integrated Gradients steps",
        [8, 16, 32, 64],
        value=16,
        key="explain_steps",
        help="More steps: attributions that add up to the score more exactly, at proportionally more time.",
    )
    submitted = st.form_submit_button("Explain", type="primary")

settings = (active.key, model_id, index, tuple(methods), layer, n_steps)
stored = st.session_state.get(EXPLANATION)
first_visit = stored is None or stored[0][:2] != settings[:2]
if (submitted or first_visit) and methods:
    bar = st.progress(0.0, text="Explaining...")

    def tick(done: int, total: int, label: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"Explaining: {label}")

    result = explanation(active.key, scan, model_id, index, tuple(methods), layer, tick, n_steps)
    bar.empty()
    st.session_state[EXPLANATION] = (settings, result)
    stored = st.session_state[EXPLANATION]
if stored is None or stored[0][:2] != settings[:2]:
    st.info("Choose at least one method and press Explain.")
    st.stop()
result = stored[1]
if stored[0] != settings:
    st.caption("Showing the last explanation; press *Explain* to apply the new settings.")

# ---------------------------------------------------------------------------------------------
# Attribution maps over the slice
shown = result.index
channel = scan.modalities.index("t1c") if "t1c" in scan.modalities else 0
low, high = window_limits(active.key, scan, channel, 0.5, 99.5)
gray = apply_window(scan.array[channel, shown], low, high)
shape = gray.shape
region = resize_map(result.region.astype(np.float32), shape, mode="nearest") > 0.5
region_text = (
    f"the {int(result.region.sum())} pixels {model_id} marks as tumor (probability ≥ {result.threshold:.2f})"
    if result.region_source == "prediction"
    else f"the {int(result.region.sum())} pixels with the highest tumor scores ({model_id} marks no tumor on this slice)"
)
st.subheader(f"Why {model_id} calls this region tumor (slice {shown})")
st.caption(
    f"Every map explains one number: the sum of the model's tumor scores (logits) over {region_text}, outlined in blue. "
    "Warm colours: pixels the score depends on most. Computed on the image the model sees (resized to "
    f"{result.image.shape[2]}x{result.image.shape[1]}), shown at the slice's size."
)
opacity = st.slider("Map opacity", 0.0, 1.0, 0.65, 0.05, key="explain_opacity")
outline = st.checkbox("Outline the explained region", value=True, key="explain_outline")

panels = [("Scan", draw_mask(np.repeat(gray[..., None], 3, -1), region, (64, 200, 255), "contour") if outline else gray, "")]
for method, attribution in result.attributions.items():
    heat = np.clip(resize_map(attribution.heatmap, shape), 0, 1)
    picture = heatmap_overlay(gray, heat, opacity=opacity)
    if outline:
        picture = draw_mask(picture, region, (64, 200, 255), "contour")
    panels.append((attribution.title, picture, method))
columns = st.columns(min(len(panels), 3))
for position, (title, picture, method) in enumerate(panels):
    with columns[position % len(columns)]:
        st.image(picture, caption=title, width="stretch")
        if method:
            attribution = result.attributions[method]
            details = f"{attribution.seconds:.1f} s"
            if attribution.layer:
                details += f" · layer {attribution.layer}"
            if attribution.convergence_delta is not None:
                details += f" · completeness error {attribution.convergence_delta:.1%}"
            st.caption(f"{attribution.caption} ({details})")
            if attribution.note:
                st.caption(f"ℹ️ {attribution.note}")

# ---------------------------------------------------------------------------------------------
# Faithfulness
if result.curves:
    st.subheader("How faithful is each map?")
    left, right = st.columns([3, 2])
    with left:
        measure = st.radio(
            "Follow",
            ["dice", "probability"],
            format_func=lambda m: "Dice of the prediction" if m == "dice" else "tumor probability in the region",
            horizontal=True,
            key="explain_measure",
        )
        st.plotly_chart(deletion_figure(result.curves, measure), key="explain_deletion")
    with right:
        table = result.faithfulness_table()
        st.dataframe(
            [
                {
                    "method": row["method"],
                    "area under Dice curve": row["auc_dice"],
                    "area under probability curve": row["auc_probability"],
                }
                for row in table
            ],
            hide_index=True,
            width="stretch",
            key="explain_faithfulness_table",
        )
        ranked = sorted((row for row in table if row["key"] != "random"), key=lambda row: row["auc_dice"])
        reference = next(row for row in table if row["key"] == "random")
        if ranked:
            best = ranked[0]
            verdict = "better than" if best["auc_dice"] < reference["auc_dice"] else "no better than"
            st.markdown(
                f"On this slice **{best['method']}** explains best: deleting its top pixels destroys the prediction {verdict} deleting random pixels."
            )
        st.caption(
            "Deletion test: the pixels a map ranks highest are blacked out first, and the model is asked again. If the map "
            "found what the model relies on, the prediction (its Dice with the original mask) collapses quickly, so the "
            "area under the curve is small. A map whose curve follows the random one tells you little about this model."
        )

# ---------------------------------------------------------------------------------------------
# Spiking activity
activity = result.spiking
if activity is not None:
    st.subheader("Inside the spiking network")
    steps = activity.time_steps
    st.markdown(
        f"{model_id} shows the slice to its spiking neurons for **{steps} time step{'s' if steps > 1 else ''}**. "
        f"On average **{activity.mean_rate:.1%}** of its neurons fire at a given step: most stay silent."
    )
    labels = {block.name: block.label for block in activity.blocks}
    pick, step_column = st.columns([2, 3])
    block_name = pick.selectbox("Block", list(labels), format_func=lambda name: f"{labels[name]} ({name})", key="explain_block")
    block = next(b for b in activity.blocks if b.name == block_name)
    step = 0
    if steps > 1:
        step = step_column.slider("Time step", 0, steps - 1, 0, key="explain_step", help="Step through the simulation.")
    else:
        step_column.caption("This model runs a single time step, so there is nothing to step through; TCSA-SNN uses four.")

    def on_slice(values: np.ndarray) -> np.ndarray:
        # Nearest neighbour: each square is one neuron position of the block's grid.
        return resize_map(values, shape, mode="nearest")

    top_rate = float(max(block.rate_maps.max(), 1e-6))
    spatial = block.step_attention[step]
    low_att, high_att = float(block.step_attention.min()), float(block.step_attention.max())
    scaled = (spatial - low_att) / (high_att - low_att) if high_att > low_att else np.zeros_like(spatial)
    first, second = st.columns(2)
    with first:
        st.image(
            heatmap_overlay(gray, on_slice(block.rate_maps[step] / top_rate), opacity=0.75),
            caption=f"Spike rate, {labels[block_name]}, step {step}",
            width="stretch",
        )
        st.caption(f"{SPIKING_CAPTIONS['spike_rate']} Brightest here: {top_rate:.0%} of the {block.channels} channels firing.")
    with second:
        st.image(
            heatmap_overlay(gray, on_slice(scaled), opacity=0.75, colormap="viridis"),
            caption=f"Attention applied at step {step}",
            width="stretch",
        )
        st.caption(
            f"{SPIKING_CAPTIONS['step_attention']} Scale: {low_att:.2f} (dark) to {high_att:.2f} (bright). {SPIKING_CAPTIONS['spatial']}"
        )
    charts = st.columns(2 if block.temporal is not None else 1)
    if block.temporal is not None:
        with charts[0]:
            st.plotly_chart(
                bars_figure(block.temporal, "Temporal attention", "time step", highlight=step), key="explain_temporal"
            )
            st.caption(SPIKING_CAPTIONS["temporal"])
    with charts[-1]:
        st.plotly_chart(bars_figure(block.channel, "Channel attention", "channel"), key="explain_channel")
        st.caption(SPIKING_CAPTIONS["channel"])
    if steps > 1:
        st.plotly_chart(
            animated_maps(block.rate_maps, f"Spike rate of {labels[block_name]} over time (press play)", zmax=top_rate),
            key="explain_animation",
        )
    lower, upper = st.columns(2)
    with lower:
        st.plotly_chart(rate_matrix_figure(activity.rate_matrix(), [b.label for b in activity.blocks], step), key="explain_rates")
        st.caption("Each row is a block from input (top) to the deepest (bottom); each column a time step. Bright = busy.")
    with upper:
        st.plotly_chart(raster_figure(activity.raster, step if steps > 1 else None), key="explain_raster")
        st.caption(SPIKING_CAPTIONS["raster"])
elif result.attributions:
    st.caption(
        "Spiking views (spike rates, attention over time steps, raster) appear for spiking models: attention_snn, csa_snn, tcsa_snn."
    )
