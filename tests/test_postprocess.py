"""seg_core.postprocess on constructed masks with results worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seg_core.postprocess import PostProcessing, disk, tumor_size


def block(shape: tuple[int, ...], *ranges: tuple[int, int], value: float = 1.0) -> np.ndarray:
    """An array with ``value`` in the box given by one (start, stop) per axis."""
    array = np.zeros(shape, np.float32)
    array[tuple(slice(a, b) for a, b in ranges)] = value
    return array


# --- threshold ---------------------------------------------------------------------------------


def test_threshold_is_inclusive_and_configurable() -> None:
    probabilities = np.array([[0.0, 0.49, 0.5, 0.51, 0.7, 1.0]], np.float32)
    assert PostProcessing()(probabilities).tolist() == [[0, 0, 1, 1, 1, 1]]
    assert PostProcessing(threshold=0.7)(probabilities).tolist() == [[0, 0, 0, 0, 1, 1]]


def test_output_is_uint8_with_the_input_shape() -> None:
    for shape in [(12, 14), (3, 12, 14)]:
        out = PostProcessing()(np.full(shape, 0.9, np.float32))
        assert out.dtype == np.uint8 and out.shape == shape


def test_disk_structuring_element() -> None:
    assert disk(0).tolist() == [[True]]
    assert disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert int(disk(2).sum()) == 13  # offsets with r^2 + c^2 <= 4


# --- morphology --------------------------------------------------------------------------------


def test_opening_removes_a_speck_and_keeps_the_square() -> None:
    # 10x10 square plus a lone pixel. Opening with disk(1) (a cross) removes the pixel and only the
    # 4 corners of the square (a cross cannot sit on a corner pixel inside the square).
    probabilities = block((32, 32), (10, 20), (10, 20), value=0.9)
    probabilities[2, 2] = 0.9
    out = PostProcessing(opening_radius=1)(probabilities)
    expected = block((32, 32), (10, 20), (10, 20)).astype(np.uint8)
    expected[[10, 10, 19, 19], [10, 19, 10, 19]] = 0
    np.testing.assert_array_equal(out, expected)
    assert int(PostProcessing()(probabilities).sum()) == 101  # off by default


def test_opening_is_per_slice_not_3d() -> None:
    # A square present on one slice only survives: a 3D ball would erase anything one slice thick.
    probabilities = block((3, 32, 32), (1, 2), (10, 20), (10, 20), value=0.9)
    out = PostProcessing(opening_radius=1)(probabilities)
    assert int(out[1].sum()) == 96 and int(out[0].sum()) == 0 and int(out[2].sum()) == 0


def test_closing_bridges_a_one_pixel_gap() -> None:
    # Two 10x5 bars (cols 5-9 and 11-15) with an empty column 10 between them. Closing with disk(1)
    # fills the gap except its two end pixels (5, 10) and (14, 10): the dilation never reaches
    # (4, 10) / (15, 10), so the erosion takes the gap's ends back.
    probabilities = block((20, 20), (5, 15), (5, 10)) + block((20, 20), (5, 15), (11, 16))
    out = PostProcessing(closing_radius=1)(probabilities)
    expected = block((20, 20), (5, 15), (5, 16)).astype(np.uint8)
    expected[[5, 14], [10, 10]] = 0
    np.testing.assert_array_equal(out, expected)


def test_closing_keeps_tumor_touching_the_image_edge() -> None:
    # scipy's closing treats outside the image as background and would erode this square's edge pixels.
    probabilities = block((20, 20), (0, 8), (0, 8))
    out = PostProcessing(closing_radius=2)(probabilities)
    np.testing.assert_array_equal(out, probabilities.astype(np.uint8))


def test_fill_holes_fills_a_ring() -> None:
    ring = block((20, 20), (5, 15), (5, 15)) - block((20, 20), (7, 13), (7, 13))
    assert int(PostProcessing()(ring).sum()) == 100 - 36
    out = PostProcessing(fill_holes=True)(ring)
    np.testing.assert_array_equal(out, block((20, 20), (5, 15), (5, 15)).astype(np.uint8))


def test_fill_holes_leaves_an_open_notch() -> None:
    # A "C": the inner hole opens onto the background, so it is not a hole.
    c_shape = block((20, 20), (5, 15), (5, 15)) - block((20, 20), (7, 13), (7, 15))
    np.testing.assert_array_equal(PostProcessing(fill_holes=True)(c_shape), c_shape.astype(np.uint8))


# --- components --------------------------------------------------------------------------------


def test_largest_component_keeps_the_bigger_blob() -> None:
    # 9 px first in scan order, then 25 px: the bigger one is kept whatever the label order.
    probabilities = block((20, 20), (2, 5), (2, 5)) + block((20, 20), (10, 15), (10, 15))
    out = PostProcessing(largest_component_only=True)(probabilities)
    np.testing.assert_array_equal(out, block((20, 20), (10, 15), (10, 15)).astype(np.uint8))


def test_largest_component_is_3d_in_volumes() -> None:
    # Blob A: 3x3 on slices 0-2 (27 voxels). Blob B: 5x5 on slice 4 only (25 voxels) -- bigger on its
    # slice, smaller as a volume, so A is kept.
    probabilities = block((5, 20, 20), (0, 3), (2, 5), (2, 5)) + block((5, 20, 20), (4, 5), (10, 15), (10, 15))
    out = PostProcessing(largest_component_only=True)(probabilities)
    np.testing.assert_array_equal(out, block((5, 20, 20), (0, 3), (2, 5), (2, 5)).astype(np.uint8))


def test_min_size_mm2_uses_the_pixel_spacing() -> None:
    # Pixels 0.5 x 0.5 mm = 0.25 mm^2: a 4x4 blob is 4 mm^2, a 2x2 blob 1 mm^2.
    probabilities = block((20, 20), (2, 6), (2, 6)) + block((20, 20), (12, 14), (12, 14))
    big_only = block((20, 20), (2, 6), (2, 6)).astype(np.uint8)
    np.testing.assert_array_equal(PostProcessing(min_size_mm2=2.0)(probabilities, spacing=(0.5, 0.5)), big_only)
    # The same pixels at 1 mm: 16 and 4 mm^2, both kept.
    assert int(PostProcessing(min_size_mm2=2.0)(probabilities, spacing=(1.0, 1.0)).sum()) == 20
    # Anisotropic pixels 0.25 x 1 mm = 0.25 mm^2 (not 0.0625 from one axis squared): same as 0.5 x 0.5.
    np.testing.assert_array_equal(PostProcessing(min_size_mm2=2.0)(probabilities, spacing=(0.25, 1.0)), big_only)
    # A component of exactly the minimum is kept; (slice, row, col) spacing works for a 2D image too.
    np.testing.assert_array_equal(PostProcessing(min_size_mm2=4.0)(probabilities, spacing=(3.0, 0.5, 0.5)), big_only)


def test_min_size_mm2_is_per_slice_and_mm3_is_3d() -> None:
    # Spacing (3, 0.5, 0.5): voxel 0.75 mm^3, pixel 0.25 mm^2.
    # A: 2x2 on slices 0-1 (8 voxels = 6 mm^3; 1 mm^2 per slice). B: 2x2 on slice 4 (4 voxels = 3 mm^3).
    a = block((5, 10, 10), (0, 2), (1, 3), (1, 3))
    b = block((5, 10, 10), (4, 5), (6, 8), (6, 8))
    spacing = (3.0, 0.5, 0.5)
    np.testing.assert_array_equal(PostProcessing(min_size_mm3=4.0)(a + b, spacing=spacing), a.astype(np.uint8))
    # Per slice both are 1 mm^2, so a 1.5 mm^2 minimum removes both, and a 1 mm^2 minimum keeps both.
    assert int(PostProcessing(min_size_mm2=1.5)(a + b, spacing=spacing).sum()) == 0
    assert int(PostProcessing(min_size_mm2=1.0)(a + b, spacing=spacing).sum()) == 12


def test_size_filters_need_spacing() -> None:
    probabilities = block((10, 10), (2, 4), (2, 4))
    with pytest.raises(ValueError, match="spacing"):
        PostProcessing(min_size_mm2=1.0)(probabilities)
    with pytest.raises(ValueError, match="slice thickness"):
        PostProcessing(min_size_mm3=1.0)(probabilities, spacing=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"\(slice, row, col\)"):
        PostProcessing(min_size_mm2=1.0)(block((2, 10, 10), (0, 1), (2, 4), (2, 4)), spacing=(0.5, 0.5))


def test_steps_combine_in_order() -> None:
    # A 3-pixel-thick ring with a speck: opening removes the speck and the ring's 4 outer corners (a
    # 2-pixel ring would vanish entirely), fill_holes fills the ring, then the size filter and
    # largest-component steps have a single 96-pixel blob left.
    probabilities = block((24, 24), (5, 15), (5, 15), value=0.8) - block((24, 24), (8, 12), (8, 12), value=0.8)
    probabilities[20, 20] = 0.9
    post = PostProcessing(opening_radius=1, fill_holes=True, largest_component_only=True, min_size_mm2=10.0)
    out = post(probabilities, spacing=(1.0, 1.0))
    expected = block((24, 24), (5, 15), (5, 15)).astype(np.uint8)
    expected[[5, 5, 14, 14], [5, 14, 5, 14]] = 0  # the opening's rounded corners
    np.testing.assert_array_equal(out, expected)


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5, True, "0.5", math.nan])
def test_bad_threshold_names_the_range(threshold: object) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        PostProcessing(threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("opening_radius", -1, ">= 0"),
        ("closing_radius", 1.5, "integer"),
        ("closing_radius", True, "integer"),
        ("fill_holes", "yes", "True or False"),
        ("largest_component_only", 1, "True or False"),
        ("min_size_mm2", -5.0, ">= 0"),
        ("min_size_mm3", math.inf, "finite"),
    ],
)
def test_bad_parameters_name_the_valid_range(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PostProcessing(**{field: value})


def test_rejects_logits_and_nan() -> None:
    with pytest.raises(ValueError, match="sigmoid"):
        PostProcessing()(np.array([[-2.0, 3.0]]))
    with pytest.raises(ValueError, match="nan"):
        PostProcessing()(np.array([[math.nan, 0.5]]))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(D, H, W\)"):
        PostProcessing()(np.zeros(5))


def test_dict_round_trip_through_json() -> None:
    post = PostProcessing(threshold=np.float32(0.25), opening_radius=np.int64(2), fill_holes=True, min_size_mm3=50)
    data = json.loads(json.dumps(post.to_dict()))
    assert data == {
        "threshold": 0.25,
        "opening_radius": 2,
        "closing_radius": 0,
        "fill_holes": True,
        "largest_component_only": False,
        "min_size_mm2": 0.0,
        "min_size_mm3": 50.0,
    }
    assert PostProcessing.from_dict(data) == post
    assert PostProcessing.from_dict({"threshold": 0.3}) == PostProcessing(threshold=0.3)
    with pytest.raises(ValueError, match="valid: .*'threshold'"):
        PostProcessing.from_dict({"treshold": 0.3})


# --- sizes -------------------------------------------------------------------------------------


def test_tumor_size_of_an_anisotropic_volume() -> None:
    # Slice 0: 4x4 (16 px); slice 1: empty; slice 2: 2x3 (6 px). Spacing (2.5, 0.4, 0.5) mm:
    # pixel area 0.2 mm^2, voxel 0.5 mm^3. Areas 3.2, 0, 1.2 mm^2; volume 22 * 0.5 = 11 mm^3 = 0.011 mL.
    mask = (block((3, 10, 10), (0, 1), (1, 5), (1, 5)) + block((3, 10, 10), (2, 3), (6, 8), (6, 9))).astype(np.uint8)
    size = tumor_size(mask, spacing=(2.5, 0.4, 0.5))
    assert size["tumor_present"] == [True, False, True]
    assert size["slice_area_mm2"] == pytest.approx([3.2, 0.0, 1.2])
    assert size["largest_slice_area_mm2"] == pytest.approx(3.2)
    assert size["largest_slice_index"] == 0
    assert size["slices_with_tumor"] == 2
    assert size["volume_ml"] == pytest.approx(0.011)
    assert size["components"] == 2
    assert size["pixels"] == 22
    json.dumps(size)


def test_tumor_size_counts_diagonal_touches_as_one_component() -> None:
    mask = np.zeros((1, 6, 6), np.uint8)
    mask[0, 1:3, 1:3] = 1
    mask[0, 3:5, 3:5] = 1  # touches the first square at a corner only
    assert tumor_size(mask, spacing=(1.0, 1.0, 1.0))["components"] == 1


def test_tumor_size_of_a_single_image() -> None:
    # A 2D image with (row, col) spacing: the area is the figure; the volume needs a thickness (nan).
    mask = block((10, 10), (2, 5), (2, 6)).astype(np.uint8)  # 12 px at 0.5 x 0.8 mm = 4.8 mm^2
    size = tumor_size(mask, spacing=(0.5, 0.8))
    assert size["slice_area_mm2"] == pytest.approx([4.8])
    assert size["largest_slice_area_mm2"] == pytest.approx(4.8)
    assert math.isnan(size["volume_ml"])
    # With a thickness (D == 1 volume) the volume follows: 4.8 mm^2 * 3 mm = 14.4 mm^3.
    assert tumor_size(mask[None], spacing=(3.0, 0.5, 0.8))["volume_ml"] == pytest.approx(0.0144)
    # Without spacing the figures are in pixels.
    assert tumor_size(mask)["largest_slice_area_mm2"] == 12.0


def test_tumor_size_of_an_empty_mask() -> None:
    size = tumor_size(np.zeros((2, 8, 8), np.uint8), spacing=(1.0, 1.0, 1.0))
    assert size["tumor_present"] == [False, False]
    assert size["largest_slice_area_mm2"] == 0.0 and size["largest_slice_index"] == -1
    assert size["volume_ml"] == 0.0 and size["components"] == 0 and size["slices_with_tumor"] == 0


def test_tumor_size_rejects_probabilities_and_bad_spacing() -> None:
    with pytest.raises(ValueError, match="binary"):
        tumor_size(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="positive"):
        tumor_size(np.zeros((1, 4, 4), np.uint8), spacing=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match=r"\(slice, row, col\)"):
        tumor_size(np.zeros((2, 4, 4), np.uint8), spacing=(1.0, 1.0))
