"""Intensity normalisation shared by training and inference."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.preprocess import IntensityNormalizer, head_mask


def _head(shape=(6, 40, 40)) -> tuple[np.ndarray, np.ndarray]:
    """Tissue intensities inside an ellipse of a small volume, and the ellipse."""
    depth, height, width = shape
    rows, cols = np.mgrid[:height, :width]
    inside = ((rows - height / 2) / (height / 3)) ** 2 + ((cols - width / 2) / (width / 3)) ** 2 <= 1
    tissue = np.random.default_rng(0).normal(100, 20, shape).astype(np.float32)
    return tissue, np.broadcast_to(inside, shape).copy()


def test_head_mask_finds_the_constant_background_whatever_its_value():
    tissue, inside = _head()
    raw = np.where(inside, tissue, 0)  # raw BraTS: background 0
    zscored = np.where(inside, (tissue - 100) / 20, -3.6)  # BraTS 2015: background is the z-score of 0
    assert np.array_equal(head_mask(raw), inside)
    assert np.array_equal(head_mask(zscored), inside)
    noisy = tissue  # no constant background (unstripped scan): everything counts
    assert head_mask(noisy).all()


def test_zscore_head_makes_raw_and_z_scored_files_alike():
    tissue, inside = _head()
    raw = np.where(inside, tissue, 0)[None]
    rescaled = np.where(inside, 3.5 * tissue + 40, -7.0)[None]  # other scanner units and background
    normalize = IntensityNormalizer(kind="zscore_head", scope="volume")
    out_raw, out_rescaled = normalize(raw), normalize(rescaled)
    np.testing.assert_allclose(out_raw, out_rescaled, atol=1e-4)
    assert out_raw[0][inside].mean() == pytest.approx(0.0, abs=1e-4)
    assert out_raw[0][inside].std() == pytest.approx(1.0, abs=1e-4)
    assert np.all(out_raw[0][~inside] == 0)


def test_volume_scope_uses_the_statistics_of_the_whole_volume():
    tissue, inside = _head()
    volume = np.where(inside, tissue, 0)[None]
    volume[:, 0] *= 3  # one slice much brighter than the rest
    per_volume = IntensityNormalizer(kind="zscore_head", scope="volume")
    per_slice = IntensityNormalizer(kind="zscore_head", scope="slice")
    whole = per_volume.volume(volume)
    assert per_slice.volume(volume) is None
    np.testing.assert_array_equal(per_volume.slice(volume, 0, whole), whole[:, 0])
    np.testing.assert_array_equal(per_volume.slice(volume, 0), whole[:, 0])
    # Per slice, the bright slice is normalised on its own and loses its difference.
    assert per_slice.slice(volume, 0)[0][inside[0]].mean() == pytest.approx(0.0, abs=1e-4)
    assert whole[0, 0][inside[0]].mean() > 1.0
    with pytest.raises(ValueError, match="scope"):
        IntensityNormalizer(scope="patient")
