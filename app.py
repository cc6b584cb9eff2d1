"""BrainSeg Studio: upload a brain MRI and see a trained model's tumor mask over it.

Run with ``streamlit run app.py``. Everything shown comes from ``seg_core``; this page only lays it
out. Uploads stay in memory and are gone when the session ends.
"""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from seg_core.scans import ScanError, save_mask
from seg_core.visualize import overlay
from seg_core.weights import list_weights
from ui.cache import file_key, predict, scan_from_upload

UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "nii", "gz", "dcm", "zip"]

st.set_page_config(page_title="BrainSeg Studio", page_icon=":brain:", layout="wide")
st.title("BrainSeg Studio")
st.caption(
    "Brain tumor segmentation on MRI with conventional and spiking neural networks. "
    "For research and teaching only: not a medical device, not for diagnosis."
)

models = list_weights()
if not models:
    st.error("No trained weights were found in weights/. Train one with `python -m seg_core train` (see the README).")
    st.stop()

with st.sidebar:
    model_id = st.selectbox("Model", models, index=models.index("unet.figshare") if "unet.figshare" in models else 0, key="model")
    threshold = st.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="threshold")
    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="opacity")
    style = st.radio("Overlay", ["fill", "contour"], horizontal=True, key="style")

uploads = st.file_uploader(
    "Upload a scan: a PNG/JPEG/TIFF slice, a NIfTI volume, DICOM files or a ZIP (several files for one case)",
    type=UPLOAD_TYPES,
    accept_multiple_files=True,
    key="upload",
)
if not uploads:
    st.info("Upload a brain MRI slice or volume to begin. Nothing you upload is stored.")
    st.stop()

files = [(upload.name, upload.getvalue()) for upload in uploads]
key = file_key(files)
try:
    scan = scan_from_upload(key, files)
    with st.spinner(f"Segmenting with {model_id}..."):
        prediction = predict(key, scan, model_id, {"threshold": threshold})
except ScanError as error:
    st.error(f"Could not use this upload: {error}")
    st.stop()

left, right = st.columns([3, 2])
with left:
    index = 0
    if scan.num_slices > 1:
        present = prediction.slice_presence
        default = int(np.argmax([m.sum() for m in prediction.mask])) if any(present) else scan.num_slices // 2
        index = st.slider("Slice", 0, scan.num_slices - 1, default, key="slice")
    channel = scan.modalities.index("t1c") if "t1c" in scan.modalities else 0
    picture = overlay(scan.array[channel, index], prediction.mask[index], opacity=opacity, style=style)
    st.image(picture, caption=f"{scan.name or files[0][0]}: slice {index} with {model_id}'s mask", width="stretch")
with right:
    sizes = prediction.sizes
    st.metric("Tumor found", "yes" if sizes["tumor_present"] else "no")
    if scan.is_2d:
        st.metric(
            "Tumor area",
            f"{sizes['largest_slice_area_mm2']:.1f} mm²" if scan.spacing_known else f"{int(prediction.mask.sum())} px",
        )
    else:
        st.metric("Tumor volume", f"{sizes['volume_ml']:.2f} mL")
        st.metric("Slices with tumor", f"{sizes['slices_with_tumor']} of {scan.num_slices}")
    st.metric("Time", f"{prediction.seconds * 1000:.0f} ms")
    mask_bytes = save_mask(scan, prediction.mask, None, fmt="png" if scan.is_2d else "nifti")
    st.download_button(
        "Download mask",
        mask_bytes,
        file_name="mask.png" if scan.is_2d else "mask.nii.gz",
        mime="image/png" if scan.is_2d else "application/gzip",
        key="download_mask",
    )
    report = {"model": model_id, "seconds": prediction.seconds, **{k: v for k, v in sizes.items() if not isinstance(v, list)}}
    st.download_button(
        "Download report (JSON)", json.dumps(report, indent=2, default=float), file_name="report.json", key="download_report"
    )
