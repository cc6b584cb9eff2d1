"""Explain: why a model marks a region (Captum), how far to trust each map (deletion curves), and, for
spiking models, what every block's neurons and attention do at every time step."""

from __future__ import annotations

import streamlit as st

from ui.frame import frame

frame(
    "Explain",
    "Which pixels does the model's tumor call depend on? Four attribution methods, a check of how faithful each is, and "
    "for spiking models a look at their spikes and attention over time.",
)

from seg_core.display_names import layer_names  # noqa: E402
from seg_core.explain import METHOD_INFO, METHODS, SPIKING_CAPTIONS, default_gradcam_layer, describe_spiking  # noqa: E402
from seg_core.verdict import explained_region, faithfulness_frame, faithfulness_verdict  # noqa: E402
from seg_core.visualize import apply_window, display_channel  # noqa: E402
from ui.cache import gradcam_layers, window_limits  # noqa: E402
from ui.explain_view import (  # noqa: E402
    attribution_panels,
    colour_legend,
    compute_explanation,
    explanation_estimate,
    layer_choices,
    missing_methods,
    spiking_maps,
    stored_explanation,
)
from ui.figures import animated_maps, bars_figure, deletion_figure, raster_figure, rate_matrix_figure  # noqa: E402
from ui.frame import scan_and_model  # noqa: E402
from ui.viewer import follow_tumor  # noqa: E402
from ui.widgets import predict_with_progress  # noqa: E402

active, model_id = scan_and_model("explain")
scan = active.scan
prediction = predict_with_progress(active, model_id)
if prediction is None:
    st.stop()

layers = gradcam_layers(active.key, scan, model_id, 0)
gradcam_layer_ids, layer_labels, default_layer_index = layer_choices(layers, default_gradcam_layer(layers))

# No st.form: the choices rerun the page, which is cheap (nothing is explained until the button), and the
# time estimate follows them.
with st.container(border=True):
    st.markdown("**What to explain** (nothing runs until you press *Explain*)")
    index = 0
    if scan.num_slices > 1:
        follow_tumor("explain_slice", active.key, model_id, prediction.sizes["slice_area_mm2"])
        index = st.slider("Axial slice", 0, scan.num_slices - 1, key="explain_slice")
    methods = st.multiselect(
        "Methods", METHODS, default=list(METHODS), format_func=lambda m: METHOD_INFO[m]["title"], key="explain_methods"
    )
    layer = None
    if gradcam_layer_ids:
        layer = st.selectbox(
            "Grad-CAM layer",
            gradcam_layer_ids,
            index=default_layer_index,
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
    pending = missing_methods(active, model_id, index, methods, layer, n_steps)
    button, expected = st.columns([1, 4], vertical_alignment="center")
    submitted = button.button("Explain", type="primary", key="explain_run", disabled=not pending)
    if pending:
        estimate = explanation_estimate(active, model_id, index, pending, n_steps)
        expected.caption(
            f"{len(pending)} method{'s' if len(pending) > 1 else ''} to compute: {estimate.words()} on this machine now "
            "(estimated from a few timed passes of the model; a busy CPU can take twice as long)."
        )
    elif methods:
        expected.caption("Everything chosen is computed already (kept for this scan until you load another).")

if submitted and pending:
    compute_explanation(active, model_id, index, methods, layer, n_steps, estimate)
    st.rerun()  # redraw the choices above with what is now computed (the results are in the session)
result = stored_explanation(active, model_id, index, methods, layer, n_steps)
if result is None:
    st.info(
        "Nothing has been computed yet: choose what to explain and press *Explain*. "
        + ("" if methods else "Choose at least one method first.")
    )
    st.stop()
if pending:
    names = ", ".join(METHOD_INFO[m]["title"] for m in pending)
    st.caption(f"Not computed yet with these settings: {names}. Press *Explain* to add them.")

# ---------------------------------------------------------------------------------------------
# Attribution maps over the slice
channel = display_channel(scan.modalities)
low, high = window_limits(active.key, scan, channel, 0.5, 99.5)
gray = apply_window(scan.array[channel, result.index], low, high)
where = f" (axial slice {result.index})" if scan.num_slices > 1 else ""
st.subheader(f"Why {model_id} calls this region tumor{where}")
st.caption(
    f"Every map explains one number: the sum of the model's tumor scores (logits) over {explained_region(result, model_id)}, "
    "outlined in blue. Warm colours: pixels the score depends on most. Computed on the image the model sees (resized to "
    f"{result.image.shape[2]}x{result.image.shape[1]}), shown at the slice's size."
)
opacity = st.slider("Map opacity", 0.0, 1.0, 0.65, 0.05, key="explain_opacity")
outline = st.checkbox("Outline the explained region", value=True, key="explain_outline")

panels = attribution_panels(gray, result, opacity, outline)
columns = st.columns(min(len(panels), 3))
for position, panel in enumerate(panels):
    with columns[position % len(columns)]:
        st.image(panel.picture, caption=panel.title, width="stretch")
        for note in panel.notes:
            st.caption(note)
legend, legend_words = st.columns([1, 3], vertical_alignment="center")
legend.image(colour_legend("inferno"), width="stretch")
legend_words.caption(
    "Colour scale of every map: dark = the score hardly depends on the pixel, bright = it depends on it most "
    "(each map scaled to its own 99.5th percentile). Values below 5% are left uncoloured, so the scan shows through."
)

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
        st.dataframe(faithfulness_frame(table), hide_index=True, width="stretch", key="explain_faithfulness_table")
        if (verdict := faithfulness_verdict(table)) is not None:
            st.markdown(verdict.sentence())
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
    st.markdown("**Which blocks and time steps matter here:** " + describe_spiking(activity, result.region).text)
    labels = layer_names([block.name for block in activity.blocks])
    pick, step_column = st.columns([2, 3])
    block_name = pick.selectbox("Block", list(labels), format_func=labels.get, key="explain_block")
    block = next(b for b in activity.blocks if b.name == block_name)
    step = 0
    if steps > 1:
        step = step_column.slider("Time step", 0, steps - 1, 0, key="explain_step", help="Step through the simulation.")
    else:
        step_column.caption("This model runs a single time step, so there is nothing to step through; TCSA-SNN uses four.")

    maps = spiking_maps(gray, block, step)
    low_att, high_att = maps.attention_range
    first, second = st.columns(2)
    with first:
        st.image(maps.rates, caption=f"Spike rate, {labels[block_name]}, step {step}", width="stretch")
        st.image(colour_legend("inferno"), width="stretch")
        st.caption(f"Dark: no channel fires · bright: {maps.top_rate:.0%} of the channels fire (this block's busiest).")
        st.caption(
            f"{SPIKING_CAPTIONS['spike_rate']} Brightest here: {maps.top_rate:.0%} of the {block.channels} channels firing."
        )
    with second:
        st.image(maps.attention, caption=f"Attention applied at step {step}", width="stretch")
        st.image(colour_legend("viridis"), width="stretch")
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
            animated_maps(block.rate_maps, f"Spike rate of {labels[block_name]} over time (press play)", zmax=maps.top_rate),
            key="explain_animation",
        )
    lower, upper = st.columns(2)
    with lower:
        st.plotly_chart(
            rate_matrix_figure(activity.rate_matrix(), [labels[b.name] for b in activity.blocks], step), key="explain_rates"
        )
        st.caption("Each row is a block from input (top) to the deepest (bottom); each column a time step. Bright = busy.")
    with upper:
        st.plotly_chart(raster_figure(activity.raster, step if steps > 1 else None), key="explain_raster")
        st.caption(SPIKING_CAPTIONS["raster"])
elif result.attributions:
    st.caption(
        "Spiking views (spike rates, attention over time steps, raster) appear for spiking models: attention_snn, csa_snn, tcsa_snn."
    )
