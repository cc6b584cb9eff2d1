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


def test_outlines_are_opencv_contours_inside_the_mask_and_thicker_on_large_slices() -> None:
    from scipy import ndimage

    from seg_core.visualize import mask_outline, outline_width

    y, x = np.mgrid[:64, :64]
    mask = ((y - 32) ** 2 + (x - 32) ** 2) < 20**2
    mask[28:36, 28:36] = False  # a hole has an outline too
    one = mask_outline(mask, 1)
    assert np.array_equal(one, mask & ~ndimage.binary_erosion(mask, border_value=0))  # 1 px: the mask's boundary
    two = mask_outline(mask, 2)
    assert (one <= two).all() and (two <= mask).all() and two.sum() > one.sum()
    assert outline_width((8, 8)) == 1 and outline_width((240, 240, 3)) == 2 and outline_width((512, 512)) == 3


def test_colour_maps_are_matplotlibs() -> None:
    ends = colorize(np.array([[0.0, 1.0]]), "inferno")
    assert ends.shape == (1, 2, 3) and ends.dtype == np.uint8
    assert tuple(ends[0, 0]) == (0, 0, 4) and tuple(ends[0, 1]) == (252, 255, 164)
    assert tuple(colorize(np.array([[0.0]]), "viridis")[0, 0]) == (68, 1, 84)
    with pytest.raises(ValueError, match="inferno"):
        colorize(np.zeros((2, 2)), "jet")


def test_display_resizing_matches_torch_interpolation() -> None:
    import torch
    import torch.nn.functional as F

    from seg_core.visualize import resize_to

    values = np.random.default_rng(0).random((16, 12)).astype(np.float32)
    tensor = torch.from_numpy(values)[None, None]
    bilinear = F.interpolate(tensor, size=(64, 40), mode="bilinear", align_corners=False)[0, 0].numpy()
    nearest = F.interpolate(tensor, size=(64, 40), mode="nearest")[0, 0].numpy()
    assert np.allclose(resize_to(values, (64, 40)), bilinear, atol=1e-5)
    assert np.array_equal(resize_to(values, (64, 40), mode="nearest"), nearest)
    assert resize_to(values, (16, 12)) is not None and resize_to(values, (16, 12)).shape == (16, 12)
    with pytest.raises(ValueError, match="bilinear"):
        resize_to(values, (4, 4), mode="cubic")


def test_mask_picture_slice_choice_and_profiles() -> None:
    from seg_core.visualize import (
        TRUTH_COLOR,
        TUMOR_COLOR,
        default_slice,
        display_channel,
        mask_picture,
        rescale,
        tumor_profile,
    )

    gray = np.full((8, 8), 100, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    truth = np.zeros_like(mask)
    truth[0:3, 0:3] = 1
    picture = mask_picture(gray, mask, truth, (2.0, 1.0), opacity=1.0)
    assert picture.shape == (16, 8, 3)  # rows twice as thick as columns are wide
    assert tuple(picture[0, 0]) == TRUTH_COLOR and tuple(picture[8, 4]) == TUMOR_COLOR
    assert tuple(mask_picture(gray, mask)[0, 0]) == (100, 100, 100)

    volume = np.zeros((3, 4, 5), np.uint8)
    volume[1, 1:3, 2] = 1
    assert tumor_profile(volume, "axial").tolist() == [0, 2, 0]
    assert tumor_profile(volume, "axial", [0.0, 9.5, 0.0]).tolist() == [0, 9.5, 0]
    assert tumor_profile(volume, "sagittal").tolist() == [0, 0, 2, 0, 0]
    assert default_slice([0, 3, 5, 1]) == 2 and default_slice([0, 0, 0, 0, 0]) == 2
    assert display_channel(("flair", "t1", "t1c", "t2")) == 2 and display_channel(["flair"]) == 0
    assert rescale(np.array([1.0, 2.0, 3.0]), 1.0, 3.0).tolist() == [0.0, 0.5, 1.0]
    assert rescale(np.array([2.0]), 2.0, 2.0).tolist() == [0.0]
