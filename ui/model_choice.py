"""Choosing models for a scan: the engine ranks the shipped weights for it (:mod:`seg_core.matching`), the page
preselects the best fit, lists the models made for this scan first, and warns when the user picks one that
was trained on other data.

Streamlit's selectbox has no option groups, so each option carries its group in words ("made for this
scan" / "trained on other data"); the models that cannot run on the scan are listed in the help text.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from seg_core.scans import Scan
from ui.cache import available_weights, memo, weights_dir
from ui.state import LAST_MODEL, ActiveScan

MADE_FOR_SCAN, OTHER_DATA, CANNOT_RUN = "made_for_scan", "other_data", "cannot_run"
GROUP_WORDS = {MADE_FOR_SCAN: "made for this scan", OTHER_DATA: "can run, trained on other data"}


def model_fits(active: ActiveScan) -> list[Any]:
    """:func:`seg_core.matching.rank_models` for the scan over the weights here, best first (once per scan and weights)."""
    from seg_core.matching import rank_models

    ids = tuple(available_weights())
    return memo(
        ("model_fits", active.key, str(weights_dir()), ids),
        lambda: list(rank_models(active.scan, weights_dir=weights_dir(), model_ids=list(ids))),
    )


def _runnable(fits: list[Any]) -> list[Any]:
    # The engine ranks within each group; made-for-this-scan models come first whatever their figures.
    return [f for f in fits if f.group == MADE_FOR_SCAN] + [f for f in fits if f.group == OTHER_DATA]


def _option_label(fit: Any) -> str:
    figure = f", test Dice {fit.test_dice:.2f}" if fit.test_dice is not None else ""
    return f"{fit.model_id}: {fit.title} ({GROUP_WORDS[fit.group]}{figure})"


def _cannot_run_help(fits: list[Any]) -> str | None:
    blocked = [f"{fit.title}: {fit.reason}" for fit in fits if fit.group == CANNOT_RUN]
    return ("Not offered for this scan: " + "; ".join(blocked)) if blocked else None


def _no_model_error(scan: Scan, fits: list[Any]) -> None:
    if not fits:
        st.error("No trained weights were found in weights/. Train one with `python -m seg_core train` (see the README).")
        return
    reasons = "; ".join(f"{fit.title}: {fit.reason}" for fit in fits)
    st.error(f"No trained model can run on this scan. {reasons}")


def mismatch_warning(fit: Any) -> None:
    """A visible warning when the chosen model was not made for this scan, saying why."""
    if fit.group == OTHER_DATA:
        st.warning(f"**{fit.title} was not made for this scan.** {fit.reason} Its figures may not hold here.", icon="⚠️")


def model_picker(page: str, active: ActiveScan) -> str | None:
    """One model for the scan: the best fit preselected for each new scan; None (with an error) when none can run."""
    fits = model_fits(active)
    runnable = _runnable(fits)
    if not runnable:
        _no_model_error(active.scan, fits)
        return None
    by_id = {fit.model_id: fit for fit in runnable}
    key, scan_key = f"{page}_model", f"{page}_model_scan"
    last = st.session_state.get(LAST_MODEL)  # (scan, model) the user chose last on any page
    if st.session_state.get(scan_key) != active.key or st.session_state.get(key) not in by_id:
        # A new scan: the model made for it, or the one the user already chose for this scan on another page.
        chosen = last[1] if isinstance(last, tuple) and last[0] == active.key and last[1] in by_id else runnable[0].model_id
        st.session_state[key] = chosen
        st.session_state[scan_key] = active.key
    model_id = st.selectbox(
        "Model",
        list(by_id),
        format_func=lambda model: _option_label(by_id[model]),
        key=key,
        help=_cannot_run_help(fits),
    )
    st.session_state[LAST_MODEL] = (active.key, model_id)
    mismatch_warning(by_id[model_id])
    return model_id


def models_picker(page: str, active: ActiveScan, most: int = 4) -> list[str]:
    """Two to ``most`` models that can run on the scan, the two best fits preselected for each new scan."""
    fits = model_fits(active)
    runnable = _runnable(fits)
    if not runnable:
        _no_model_error(active.scan, fits)
        return []
    by_id = {fit.model_id: fit for fit in runnable}
    key, scan_key = f"{page}_models", f"{page}_models_scan"
    if st.session_state.get(scan_key) != active.key:
        st.session_state[key] = [fit.model_id for fit in runnable[: min(2, most)]]
        st.session_state[scan_key] = active.key
    else:
        st.session_state[key] = [m for m in st.session_state.get(key, []) if m in by_id][:most]
    chosen = st.multiselect(
        f"Models (2 to {most})",
        list(by_id),
        max_selections=most,
        format_func=lambda model: _option_label(by_id[model]),
        key=key,
        help=_cannot_run_help(fits),
    )
    for model_id in chosen:
        mismatch_warning(by_id[model_id])
    return list(chosen)


def last_model_id() -> str | None:
    """The model the user chose last (for the prewarm before an upload), or None."""
    last = st.session_state.get(LAST_MODEL)
    return last[1] if isinstance(last, tuple) else None
