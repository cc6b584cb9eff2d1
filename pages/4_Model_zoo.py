"""Model zoo: the leaderboard of the shipped weights, Dice against energy, each model card, every architecture."""

from __future__ import annotations

import streamlit as st

from ui.frame import frame

frame(
    "Model zoo",
    "Every trained model shipped with the app: how well it segments held-out test patients, what it costs, and its card.",
)

from seg_core.models import get_spec, list_models  # noqa: E402
from ui.cache import available_weights, inference_cost, weights_dir  # noqa: E402
from ui.figures import pareto_figure  # noqa: E402
from ui.zoo import leaderboard_rows, model_card  # noqa: E402


def number(value: float | None, scale: float = 1.0, digits: int = 3) -> float | None:
    return None if value is None else round(value / scale, digits)


weights = available_weights()
if not weights:
    st.warning("No trained weights were found in weights/. Train one with `python -m seg_core train` (see the README).")
    st.stop()
rows, board = leaderboard_rows(weights, weights_dir())

missing = [row["id"] for row in rows if row.get("energy_mj") is None]
if missing and st.button(f"Measure the cost of {len(missing)} model(s) without recorded figures", key="zoo_measure"):
    with st.spinner("Profiling on the head phantom..."):
        for row in rows:
            if row["id"] in missing:
                try:
                    row.update(
                        {
                            k: v
                            for k, v in inference_cost(row["id"]).items()
                            if k in ("params", "macs", "sops", "energy_mj", "latency_ms")
                        }
                    )
                except Exception as error:
                    st.warning(f"Could not profile {row['id']}: {error}")

st.subheader("Leaderboard")
table = [
    {
        "model": row["id"],
        "data set": row.get("dataset"),
        "spiking": "yes" if row.get("spiking") else "no",
        "test images": row.get("test_images"),
        "Dice": number(row.get("dice_mean")),
        "± Dice": number(row.get("dice_std")),
        "IoU": number(row.get("iou_mean")),
        "HD95 (px)": number(row.get("hd95_mean"), digits=1),
        "sensitivity": number(row.get("sensitivity_mean")),
        "precision": number(row.get("precision_mean")),
        "parameters (M)": number(row.get("params"), 1e6),
        "MACs (G)": number(row.get("macs"), 1e9),
        "SOPs (G)": number(row.get("sops"), 1e9),
        "energy (mJ)": number(row.get("energy_mj"), digits=4),
        "latency (ms)": number(row.get("latency_ms"), digits=1),
    }
    for row in rows
]
st.dataframe(table, hide_index=True, width="stretch", key="zoo_table")
st.caption(
    "Dice, IoU and HD95 are means per image over each model's held-out test patients (patient-level splits; "
    "`python -m seg_core evaluate --all`). Models trained on different data sets are not directly comparable. Energy is "
    "estimated from operation counts for one slice at the model's input size; latency is the median CPU time of one slice."
    + (" Blank cells: not measured yet." if any(value is None for line in table for value in line.values()) else "")
)

st.subheader("Dice against energy")
plotted = [row for row in rows if row.get("dice_mean") is not None and row.get("energy_mj")]
if plotted:
    st.plotly_chart(pareto_figure(rows), key="zoo_pareto")
    st.caption(
        "Up and to the left is better. Models on the dotted line are Pareto-optimal: no other model is both more accurate and cheaper."
    )
else:
    st.info("The plot needs test Dice and an energy figure for at least one model (`python -m seg_core evaluate --all`).")

if board and board.get("published"):
    with st.expander("Figures the seed projects published (not comparable)"):
        st.dataframe(board["published"], hide_index=True, width="stretch", key="zoo_published")
        if board.get("published_note"):
            st.caption(board["published_note"])

st.subheader("Model cards")
model_id = st.selectbox("Model", [row["id"] for row in rows] or weights, key="zoo_card")
card = model_card(model_id, weights_dir())
if card:
    with st.container(border=True):
        st.markdown(card)
else:
    st.info(f"{model_id} has no model card (README.md).")

st.subheader("Architectures")
st.caption("Every architecture the zoo can build; only those with trained weights appear above.")
architectures = []
for name in list_models():
    spec = get_spec(name)
    architectures.append(
        {
            "architecture": name,
            "title": spec.title,
            "family": spec.family,
            "spiking": "yes" if spec.spiking else "no",
            "trained weights": ", ".join(w for w in weights if w.split(".")[0] == name) or "none yet",
        }
    )
st.dataframe(architectures, hide_index=True, width="stretch", key="zoo_architectures")
with st.expander("What each architecture does"):
    for name in list_models():
        spec = get_spec(name)
        st.markdown(f"**{spec.title}** (`{name}`). {spec.description}  \n*{spec.reference}*")
