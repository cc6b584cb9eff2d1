"""Cached access to the library, so moving a slider never reloads a model or re-reads a file."""

from __future__ import annotations

import hashlib

import streamlit as st

from seg_core.inference import Prediction, Segmenter
from seg_core.postprocess import PostProcessing
from seg_core.scans import Scan, load_scan
from seg_core.weights import load_model


@st.cache_resource(show_spinner="Loading model...")
def segmenter(model_id: str) -> Segmenter:
    """One shared model per id for the whole server (Segmenter serialises its forward passes)."""
    return Segmenter(load_model(model_id))


def file_key(files: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode())
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


# cache_resource, not cache_data: cache_data would pickle every scan, and nothing here unpickles.
# Entries expire after an hour so uploads are not kept beyond a working session.
@st.cache_resource(max_entries=8, ttl=3600, show_spinner="Reading scan...")
def scan_from_upload(key: str, files: list[tuple[str, bytes]]) -> Scan:
    """Decode an upload (kept in memory only); ``key`` is the hash of the files' names and bytes."""
    del key  # part of the cache key only
    if len(files) == 1:
        name, data = files[0]
        return load_scan(data, name=name)
    return load_scan(files)


@st.cache_resource(max_entries=16, ttl=3600, show_spinner=False)
def predict(key: str, _scan: Scan, model_id: str, postprocessing: dict) -> Prediction:
    """Segment the scan identified by ``key``; cached per model and post-processing settings."""
    return segmenter(model_id)(_scan, PostProcessing.from_dict(postprocessing))
