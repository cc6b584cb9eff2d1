"""Model zoo: the leaderboard of the shipped weights, Dice against energy, each model card, every architecture."""

from __future__ import annotations

import streamlit as st

from ui.frame import frame

frame(
    "Model zoo",
    "Every trained model shipped with the app: how well it segments held-out test patients, what it costs, and its card.",
)

from seg_core.models import get_spec, list_models  # noqa: E402
from ui.cache import available_weights, weights_dir  # noqa: E402
from ui.figures import pareto_figure  # noqa: E402
from ui.zoo import (  # noqa: E402
    architectures_table,
    leaderboard_tables,
    load_board,
    model_card,
    published_table,
    ranked_models,
    unranked_models,
)

weights = available_weights()
if not weights:
    st.warning("No trained weights were found in weights/. Train one with `python -m seg_core train` (see the README).")
    st.stop()
board = load_board(weights_dir())
if board is None:
    st.warning(
        "No leaderboard yet: `python -m seg_core evaluate --all --data-root ../shared/data` writes weights/leaderboard.json."
    )
    board = {"datasets": {}, "rows": []}
tables = leaderboard_tables(board)
if unranked := unranked_models(weights, tables):
    st.info(f"Shipped but not in the leaderboard yet (run `evaluate --all`): {', '.join(unranked)}.")

for dataset, entry in tables.items():
    st.subheader(f"Leaderboard: {dataset}")
    st.dataframe(entry["table"], hide_index=True, width="stretch", key=f"zoo_table_{dataset}")
    st.caption(
        f"Ranked by {entry['label']} on the held-out test patients of `splits/{dataset}.json`. HD95: a missed tumor counts "
        "as the image diagonal (BraTS convention). Energy is estimated from operation counts for one slice at the model's "
        "input size; latency is the median CPU time of one slice. Models of different data sets are not comparable."
    )
    if plotted := entry["plotted"]:
        left, right = st.columns(2)
        left.plotly_chart(pareto_figure(plotted, "energy_mj", entry["label"]), key=f"zoo_pareto_energy_{dataset}")
        right.plotly_chart(pareto_figure(plotted, "latency_ms", entry["label"]), key=f"zoo_pareto_latency_{dataset}")
        st.caption("Up and to the left is better; the dotted line joins the models no other beats on both axes.")

if board.get("published"):
    with st.expander("Figures the seed projects published (not comparable)"):
        st.dataframe(published_table(board), hide_index=True, width="stretch", key="zoo_published")
        if board.get("published_note"):
            st.caption(board["published_note"])

st.subheader("Model cards")
model_id = st.selectbox("Model", ranked_models(tables) or weights, key="zoo_card")
card = model_card(model_id, weights_dir())
if card:
    with st.container(border=True):
        st.markdown(card)
else:
    st.info(f"{model_id} has no model card (README.md).")

st.subheader("Architectures")
st.caption("Every architecture the zoo can build; only those with trained weights appear above.")
st.dataframe(architectures_table(weights), hide_index=True, width="stretch", key="zoo_architectures")
with st.expander("What each architecture does"):
    for name in list_models():
        spec = get_spec(name)
        st.markdown(f"**{spec.title}** (`{name}`). {spec.description}  \n*{spec.reference}*")
