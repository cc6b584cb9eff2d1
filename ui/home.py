"""The Home page's quick start: a few real samples, one click from a segmented view."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.cache import sample_list
from ui.state import PENDING_SAMPLE

# One sample per kind of scan a newcomer may bring, real data first: a BraTS volume (FLAIR + T1c),
# an LGG stack (three sequences), a figshare slice (T1c); the phantoms when no data root is set.
FEATURED_ORDER = ("brats2018", "brats2015", "lgg", "figshare", "synthetic")
MOST_FEATURED = 4


def featured_samples(data_root: str | None = None) -> list[Any]:
    """At most one sample per source, in :data:`FEATURED_ORDER`, at most :data:`MOST_FEATURED` of them."""
    by_source: dict[str, Any] = {}
    for info in sample_list(data_root):
        by_source.setdefault(info.source, info)
    chosen = [by_source[source] for source in FEATURED_ORDER if source in by_source]
    real = [info for info in chosen if info.source != "synthetic"]
    if len(real) >= MOST_FEATURED - 1:  # with real data, keep one phantom only as a last resort
        chosen = real
    if len(chosen) < MOST_FEATURED and "synthetic" in by_source:
        phantoms = [info for info in sample_list(data_root) if info.source == "synthetic" and info not in chosen]
        chosen += phantoms[: MOST_FEATURED - len(chosen)]
    return chosen[:MOST_FEATURED]


def open_sample(name: str) -> None:
    """Open ``name`` on the Segment page: the scan picker there takes it up (:data:`PENDING_SAMPLE`)."""
    st.session_state[PENDING_SAMPLE] = name
    st.switch_page("app_pages/1_Segment.py")
