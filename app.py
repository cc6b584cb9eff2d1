"""BrainSeg Studio, home page: what the tool does, what it is for (and not for), its data, and the pages.

Run with ``streamlit run app.py``. The pages in ``pages/`` do the work; everything they show comes
from ``seg_core``. Uploads stay in memory and are gone when the session ends.
"""

from __future__ import annotations

import streamlit as st

from ui.frame import frame

frame(
    "BrainSeg Studio",
    "Look inside brain MRI with tumor-segmentation models, **conventional and spiking**, side by side: upload a scan, "
    "see the tumor a model finds, compare models, and ask them why.",
)

from ui.cache import available_weights  # noqa: E402
from ui.zoo import shipped_models_table  # noqa: E402

PAGES = (
    (
        "pages/1_Segment.py",
        "Segment",
        "🩻",
        "Upload a PNG/JPEG/TIFF slice, a NIfTI volume, a DICOM series or ZIP, a ZIP of slices or a BraTS case, or pick a "
        "sample. See the mask in three planes, its area or volume, and download it with a report.",
    ),
    (
        "pages/2_Compare.py",
        "Compare",
        "⚖️",
        "Two to four models on the same scan: where they agree, Dice / IoU / HD95 against a ground-truth mask, and their "
        "latency and estimated energy.",
    ),
    (
        "pages/3_Explain.py",
        "Explain",
        "🔍",
        "Saliency, Integrated Gradients, Grad-CAM and Occlusion maps with a faithfulness check; for spiking models, the "
        "attention maps, spike rates and spikes of every block at every time step.",
    ),
    (
        "pages/4_Model_zoo.py",
        "Model zoo",
        "📚",
        "The leaderboard of the trained models, Dice against energy, and each model's card.",
    ),
)

st.subheader("Pages")
columns = st.columns(2)
for position, (path, label, icon, description) in enumerate(PAGES):
    with columns[position // 2]:  # two pages a column
        st.page_link(path, label=label, icon=icon)
        st.caption(description)

st.subheader("Intended use and limits")
st.markdown(
    """
- **Research and teaching only.** BrainSeg Studio is not a medical device. Its masks have not been validated for clinical
  use and must not be used for diagnosis, treatment or any decision about a patient.
- The models are small networks trained on public research data sets (below), mostly on 2D slices of one sequence. They
  miss tumors and mark healthy tissue, especially on scans unlike their training data (other scanners, sequences,
  orientations, children, post-operative brains). The figures on the Model zoo page are measured on held-out test
  patients of the same data sets and say nothing about other scans.
- Explanations show what a model's output depends on, not whether it is right; the faithfulness curves on the Explain
  page say how far each map can be trusted for that scan.
- Energy figures are estimates from operation counts (45 nm CMOS constants), not measurements of any chip.
- Uploads are processed in memory, never written to disk, and dropped when the session ends or after an hour.
"""
)

st.subheader("Models available here")
weights = available_weights()
if not weights:
    st.warning("No trained weights were found in weights/. Train one with `python -m seg_core train` (see the README).")
else:
    st.dataframe(shipped_models_table(weights), hide_index=True, width="stretch")

st.subheader("Data sets and licenses")
st.markdown(
    """
| data set | what it is | license |
|---|---|---|
| Figshare brain tumor dataset (Cheng et al. 2015) | 3,064 T1 contrast-enhanced slices: meningioma, glioma, pituitary tumor | CC BY 4.0 |
| LGG MRI Segmentation (Buda et al. 2019; TCGA-LGG via TCIA) | FLAIR abnormality masks of lower-grade gliomas | TCIA data use terms |
| BraTS 2015 (Menze et al. 2015) | multi-sequence glioma volumes with expert tumor labels | CC BY-NC-SA 3.0 |
| Roboflow "Tumor Segmentation" | COCO-format tumor outlines | CC BY 4.0 |
| Synthetic phantoms (built in) | a bright blob in an ellipse: not anatomy, for trying the tool | CC0 |

Model weights inherit the terms of the data they were trained on (see each model card). Code: Apache-2.0.
"""
)

st.subheader("Quick start")
st.markdown(
    """
1. Open **Segment**, choose *Sample* and the 2D phantom (or upload your own slice).
2. Move the threshold, switch to contour, change the window: nothing reruns the model.
3. Open **Compare** or **Explain**: they use the same scan.

Command line and library: see the README (`python -m seg_core --help`).
"""
)
