"""The frame every page calls first: page config, title, the intended-use line, the sidebar."""

from __future__ import annotations

import streamlit as st

from seg_core.report import DISCLAIMER
from ui.state import get_active_scan

APP_NAME = "BrainSeg Studio"


def frame(title: str, intro: str | None = None, *, icon: str = "🧠") -> None:
    """Set up a page: browser title, wide layout, heading, the research-only disclaimer, and the sidebar.

    Must be the first Streamlit call of a page (``st.set_page_config`` has to come first).
    """
    st.set_page_config(page_title=f"{title} · {APP_NAME}" if title != APP_NAME else APP_NAME, page_icon=icon, layout="wide")
    st.title(title)
    st.caption(f"⚠️ {DISCLAIMER}")
    if intro:
        st.markdown(intro)
    with st.sidebar:
        active = get_active_scan()
        if active is not None:
            st.caption(f"Current scan: **{active.label}** ({active.origin}); the other pages use it too.")
        st.caption(f"{APP_NAME}: brain-tumor segmentation with conventional and spiking networks. Uploads stay in memory only.")
