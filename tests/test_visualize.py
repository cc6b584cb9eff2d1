"""seg_core.visualize: windows, overlays, heat maps, agreement maps and plane views."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.visualize import (
    agreement_map,
    apply_window,
    colorize,
    draw_mask,
    heatmap_overlay,
    intensity_limits,
    plane_count,
    plane_slice,
    plane_spacing,
    square_pixels,
)


def test_window_limits_ignore_background_and_map_to_8_bit() -> None:
    volume = np.zeros((4, 10, 10), np.float32)
    volume[:, 2:8, 2:8] = np.linspace(100, 200, 36).reshape(6, 6)
    low, high = intensity_limits(volume, 0, 100)
    assert (low, high) == (0.0, 200.0)  # tissue is all positive, so 0 stays in range
    gray = apply_window(volume[0], low, high)
    assert gray.dtype == np.uint8 and gray.max() == 255 and gray[0, 0] == 0


def test_planes_of_a_display_volume() -> None:
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert [plane_count(volume.shape, p) for p in ("axial", "coronal", "sagittal")] == [2, 3, 4]
    assert np.array_equal(plane_slice(volume, "axial", 1), volume[1])
    assert np.array_equal(plane_slice(volume, "coronal", 0), volume[::-1, 0, :])  # superior on top
    assert plane_slice(volume, "sagittal", 3).shape == (2, 3)
    assert plane_spacing((5.0, 0.5, 0.6), "coronal") == (5.0, 0.6)
    with pytest.raises(ValueError, match="axial"):
        plane_slice(volume, "oblique", 0)
    with pytest.raises(ValueError, match="outside"):
        plane_slice(volume, "axial", 2)


def test_square_pixels_stretches_thick_slices() -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    assert square_pixels(image, (5.0, 1.0)).shape == (50, 20, 3)
    assert square_pixels(image, (1.0, 1.0)) is image
    assert square_pixels(image, (100.0, 1.0)).shape == (80, 20, 3)  # capped at 8x


def test_masks_heat_maps_and_agreement_are_rgb() -> None:
    gray = np.full((8, 8), 100, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    filled = draw_mask(np.repeat(gray[..., None], 3, -1), mask, (255, 0, 0), "fill", 1.0)
    assert tuple(filled[3, 3]) == (255, 0, 0) and tuple(filled[0, 0]) == (100, 100, 100)
    outline = draw_mask(np.repeat(gray[..., None], 3, -1), mask, (255, 0, 0), "contour")
    assert tuple(outline[2, 2]) == (255, 0, 0) and tuple(outline[3, 3]) == (100, 100, 100)
    heat = np.zeros((8, 8), np.float32)
    heat[4, 4] = 1.0
    picture = heatmap_overlay(gray, heat, opacity=1.0)
    assert tuple(picture[4, 4]) == tuple(colorize(np.array([[1.0]]))[0, 0]) and tuple(picture[0, 0]) == (100, 100, 100)
    other = np.zeros_like(mask)
    other[2:6, 2:4] = True
    agreement = agreement_map(gray, [mask, other])
    assert agreement[2, 2, 1] > agreement[2, 2, 0]  # both models: green
    assert agreement[2, 5, 0] > agreement[2, 5, 2]  # one of two: orange
    assert tuple(agreement[0, 0]) == (100, 100, 100)
