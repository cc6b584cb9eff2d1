"""BrainSeg Studio, home page: a three-step quick start, then what the tool is for (and not for), its data, and the pages.

``app.py`` declares this page as "Home" (``st.navigation``). Everything the pages show comes from
``seg_core``. Uploads stay in memory and are gone when the session ends.
"""

from __future__ import annotations

import streamlit as st

from ui.frame import PAGES, frame

frame(
    "BrainSeg Studio",
    "Look inside brain MRI with tumor-segmentation models, **conventional and spiking**, side by side: upload a scan, "
    "see the tumor a model finds, compare models, and ask them why.",
)

from ui.cache import available_weights  # noqa: E402
from ui.home import featured_samples, open_sample  # noqa: E402
from ui.zoo import shipped_models_table  # noqa: E402

st.subheader("Quick start")
first, second, third = st.columns(3)
with first:
    st.markdown("**1. Upload a scan, or pick a sample**")
    st.page_link("app_pages/1_Segment.py", label="Upload on Segment", icon="🩻")
    for info in featured_samples():
        if st.button(info.title, key=f"home_sample_{info.name}", width="stretch"):
            open_sample(info.name)
with second:
    st.markdown("**2. See the tumor**")
    st.markdown(
        "The model made for your scan's sequences is chosen for you, and the view goes to the slice with the most tumor. "
        "Click the strip under the image to jump to another slice; move the threshold without rerunning the model."
    )
with third:
    st.markdown("**3. Compare or explain**")
    st.page_link("app_pages/2_Compare.py", label="Compare models on the same scan", icon="⚖️")
    st.page_link("app_pages/3_Explain.py", label="Explain a model's call (on request)", icon="🔍")

st.subheader("Pages")
columns = st.columns(2)
for position, page in enumerate(PAGES[1:]):
    with columns[position // 2]:  # two pages a column
        st.page_link(page.path, label=page.title, icon=page.icon)
        st.caption(page.description)

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

st.caption("Command line and library: see the README (`python -m seg_core --help`).")
