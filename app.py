"""BrainSeg Studio: the entry point. Run with ``streamlit run app.py``.

It only declares the pages (``st.navigation``), so the navigation reads "Home" rather than the
file's name ("app"). The pages live in ``app_pages/``, not ``pages/``: with a ``pages/`` folder beside
this file, Streamlit 1.67 keeps its older file-based mode until some session has run this script, so a
first visit straight to ``/Segment`` ran that page without ``st.navigation`` and listed "app" again.
Everything the pages show comes from ``seg_core``. Uploads stay in memory and are gone when the
session ends.
"""

from __future__ import annotations

import streamlit as st

from ui.frame import PAGES

st.navigation(
    [st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path, default=page.default) for page in PAGES]
).run()
