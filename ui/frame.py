"""The frame every page calls first (page config, title, the intended-use line, the sidebar), and the preamble
that picks a scan and a model."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from seg_core.report import DISCLAIMER
from ui.state import ActiveScan, get_active_scan

APP_NAME = "BrainSeg Studio"


@dataclass(frozen=True)
class PageInfo:
    """One page of the app, as ``app.py`` declares it to ``st.navigation`` and Home links to it."""

    path: str
    title: str
    icon: str
    description: str
    url_path: str | None = None
    default: bool = False


PAGES = (
    PageInfo("app_pages/0_Home.py", "Home", "🏠", "What the tool is for, a quick start and the data.", default=True),
    PageInfo(
        "app_pages/1_Segment.py",
        "Segment",
        "🩻",
        "Upload a PNG/JPEG/TIFF slice, a NIfTI volume, a DICOM series or ZIP, a ZIP of slices or a BraTS case, or pick a "
        "sample. The model that fits the scan is chosen for you; the view goes to the tumor; download the mask and a report.",
        "Segment",
    ),
    PageInfo(
        "app_pages/2_Compare.py",
        "Compare",
        "⚖️",
        "Two to four models on the same scan: where they agree, Dice / IoU / HD95 against a ground-truth mask, and their "
        "speed and estimated energy.",
        "Compare",
    ),
    PageInfo(
        "app_pages/3_Explain.py",
        "Explain",
        "🔍",
        "On request: which pixels the tumor call depends on (four attribution methods) and how far to trust each map; for "
        "spiking models, which time steps and blocks matter.",
        "Explain",
    ),
    PageInfo(
        "app_pages/4_Model_zoo.py",
        "Model zoo",
        "📚",
        "The leaderboard of the trained models, Dice against energy, and each model's card.",
        "Model_zoo",
    ),
)


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


def scan_and_model(page: str, *, prewarm_model: bool = False) -> tuple[ActiveScan, str]:
    """The preamble of a one-model page: the scan picker, then the model picker beside it (best fit preselected).

    Stops the page (``st.stop``) until a scan and a model that can run on it are chosen. With
    ``prewarm_model`` the last model used is loaded while the user is still choosing a file.
    """
    # Imported here: they load torch, and frame() must draw the page's title before that wait.
    from ui.cache import prewarm
    from ui.model_choice import last_model_id, model_picker
    from ui.widgets import scan_picker

    active = scan_picker(page)
    if active is None:
        if prewarm_model and (ready := prewarm(last_model_id())):
            st.caption(f"Model {ready} is loaded and ready.")
        st.stop()
    model_id = model_picker(page, active)
    if model_id is None:
        st.stop()
    return active, model_id
