"""A volume in NiiVue (the ``niivue-streamlit`` component): three linked planes, window/level, the mask as overlay.

NiiVue draws in the browser with WebGL2; right-drag sets window and level, a click moves the linked
crosshair. The slice view on the page (``st.image`` + the clickable strip) stays as the fallback
when the component is not installed, and it is the one that goes to the tumor: niivue-streamlit
0.3.0 has no setting for the crosshair's position, so NiiVue opens at the volume's centre.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import numpy as np

from seg_core.inference import Prediction
from seg_core.scans import save_mask
from seg_core.scans.masks import mask_to_source
from seg_core.visualize import apply_window
from ui.cache import memo, window_limits
from ui.state import ActiveScan


def niivue_viewer() -> Callable[..., Any] | None:
    """The component's function, or None when ``niivue-streamlit`` is not installed."""
    try:
        from niivue_component import niivue_viewer as viewer
    except ImportError:
        return None
    return viewer


def _scan_nifti(active: ActiveScan, channel: int) -> bytes:
    """One channel of the scan as a gzip NIfTI in the source's voxel order and affine (as the mask is).

    Windowed to 8 bits first (0.5-99.5 percentiles of the channel): a 240x240x155 BraTS channel is 9 MB
    instead of 36 MB of float32 to send to the browser, and NiiVue's window/level still works on it.
    """
    import nibabel as nib

    scan = active.scan
    low, high = window_limits(active.key, scan, channel, 0.5, 99.5)
    gray = apply_window(scan.array[channel], low, high)
    source = np.ascontiguousarray(mask_to_source(scan, gray), dtype=np.uint8)
    image = nib.Nifti1Image(source, np.asarray(scan.affine, dtype=float))
    image.set_qform(scan.affine, 2)
    image.set_sform(scan.affine, 2)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


def volume_files(active: ActiveScan, prediction: Prediction, channel: int) -> tuple[bytes, bytes]:
    """``(scan channel, mask)`` as gzip NIfTI bytes on the same grid, once per scan, channel and mask."""
    scan_bytes = memo(("niivue_scan", active.key, channel), lambda: _scan_nifti(active, channel))
    settings = str(sorted(prediction.postprocessing.items()))
    mask_bytes = memo(
        ("niivue_mask", active.key, prediction.model_id, settings),
        lambda: save_mask(active.scan, prediction.mask, None, fmt="nifti"),
    )
    return scan_bytes, mask_bytes


def show_volume(active: ActiveScan, prediction: Prediction, channel: int, key: str, height: int = 560) -> bool:
    """Draw the scan and the model's mask in NiiVue (three planes); False when the component is unavailable."""
    viewer = niivue_viewer()
    if viewer is None or active.scan.is_2d:
        return False
    scan_bytes, mask_bytes = volume_files(active, prediction, channel)
    viewer(
        nifti_data=scan_bytes,
        filename=f"{active.stem}.nii.gz",
        overlays=[{"data": mask_bytes, "name": f"{prediction.model_id}_mask.nii.gz", "colormap": "red", "opacity": 0.5}],
        view_mode="multiplanar",
        styled=True,
        settings={"crosshair": True, "colorbar": True, "interpolation": False, "radiological": False},
        update_interval_ms=None,  # the page does not use the clicks; no reruns while the user browses
        height=height,
        key=key,
    )
    return True
