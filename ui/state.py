"""Session-state keys shared by the pages, in one place so the pages never disagree on a name.

Everything here lives in ``st.session_state``: in memory, per browser session, gone when the session
ends. Nothing uploaded is ever written to disk.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import streamlit as st

from seg_core.scans import Scan

#: The scan the user is working on (an :class:`ActiveScan`), shared by Segment, Compare and Explain.
ACTIVE_SCAN = "active_scan"
#: Explanations computed on the Explain page for the current scan, per (scan, model, slice, method, settings).
EXPLANATIONS = "explain_results"
#: The model chosen last on any page, offered first on the others.
LAST_MODEL = "last_model"
#: A sample chosen on Home, for the next page's scan picker to open.
PENDING_SAMPLE = "pending_sample"


@dataclass
class ActiveScan:
    """A decoded scan and where it came from.

    Attributes:
        key: hash of the uploaded files' names and bytes (or ``sample:<name>``); keys every cache.
        scan: the decoded scan.
        truth: a ground-truth mask ``(D, H, W)`` uint8 when one came with it (a sample, a BraTS
            ``_seg``, an LGG ``_mask``) or was uploaded, else None.
        label: a short name to show.
        origin: ``"upload"`` or ``"sample"``.
        stem: what downloads are named after: the uploaded file's name without its extension (the
            files' shared prefix for a multi-file upload), or the sample's name.
    """

    key: str
    scan: Scan
    truth: np.ndarray | None
    label: str
    origin: str
    stem: str = "scan"


def upload_stem(filenames: list[str]) -> str:
    """The name downloads of an upload take: ``"Brats18_X_flair.nii.gz", "Brats18_X_t1ce.nii.gz"`` -> ``"Brats18_X"``.

    One file: its name without the extension; several: the longest prefix their names share, trimmed of
    separators (the files of one BraTS case share the case's name), else the first file's stem.
    """
    from seg_core.scans.files import strip_ext

    stems = [strip_ext(PurePosixPath(name).name) for name in filenames if name]
    if not stems:
        return "scan"
    shared = os.path.commonprefix(stems).rstrip("_-. ") if len(stems) > 1 else stems[0]
    return _safe(shared or stems[0])


def _safe(name: str) -> str:
    # A download name: letters, digits and . _ - only (no path, no quotes in the header).
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned[:80] or "scan"


def get_active_scan() -> ActiveScan | None:
    return st.session_state.get(ACTIVE_SCAN)


def set_active_scan(active: ActiveScan) -> None:
    previous = st.session_state.get(ACTIVE_SCAN)
    if previous is None or previous.key != active.key or previous.truth is not active.truth:
        st.session_state[ACTIVE_SCAN] = active
        # An explanation belongs to one scan.
        st.session_state.pop(EXPLANATIONS, None)
