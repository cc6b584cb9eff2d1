"""Tests for seg_core.samples: deterministic phantoms, data-root test cases, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seg_core.samples import PHANTOM_2D, PHANTOM_3D, list_samples, load_sample, sample_file
from seg_core.scans import load_scan, save_mask


def test_phantoms_are_always_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAINSEG_DATA_ROOT", raising=False)
    infos = list_samples()
    assert [s.name for s in infos] == [PHANTOM_2D, PHANTOM_3D]
    assert all(s.has_mask and s.source == "synthetic" for s in infos)
    assert list_samples("/nonexistent/folder") == infos


def test_phantom_2d_is_a_slice_with_a_bright_blob() -> None:
    scan, mask = load_sample(PHANTOM_2D)
    assert scan.is_2d and scan.array.shape == (1, 1, 128, 128) and scan.modalities == ("t1c",)
    assert mask.shape == scan.shape and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    image = scan.array[0]
    assert image[mask > 0].mean() > 1.5 * image[(mask == 0) & (image > 0)].mean()


def test_phantom_3d_is_a_volume_with_spacing_and_mask() -> None:
    scan, mask = load_sample(PHANTOM_3D)
    assert not scan.is_2d and scan.array.shape == (1, 24, 96, 96) and scan.spacing == (3.0, 1.0, 1.0)
    assert mask.shape == scan.shape and 500 < int(mask.sum()) < 10_000
    assert mask.any(axis=(1, 2)).sum() > 5  # the blob spans several slices
    # A mask written for the phantom overlays the phantom's own file.
    written = load_scan(save_mask(scan, mask), name="mask.nii.gz")
    assert np.array_equal(written.array[0] > 0.5, mask > 0)


@pytest.mark.parametrize("name", [PHANTOM_2D, PHANTOM_3D])
def test_phantoms_are_deterministic_and_their_file_reads_back(name: str) -> None:
    first, second = load_sample(name), load_sample(name)
    assert np.array_equal(first[0].array, second[0].array) and np.array_equal(first[1], second[1])
    filename, data = sample_file(name)
    assert sample_file(name)[1] == data
    assert np.array_equal(load_scan(data, name=filename).array, first[0].array)


def test_unknown_sample_lists_the_valid_names() -> None:
    with pytest.raises(KeyError, match="phantom-2d"):
        load_sample("nope")
    with pytest.raises(KeyError, match="phantom-3d"):
        sample_file("../etc/passwd")


@pytest.mark.data
def test_data_root_cases_come_from_the_test_splits(data_root: Path) -> None:
    infos = list_samples(data_root)
    names = [s.name for s in infos]
    assert names[:2] == [PHANTOM_2D, PHANTOM_3D] and len(names) > 2
    figshare = next(s for s in infos if s.source == "figshare")
    scan, mask = load_sample(figshare.name, data_root)
    assert scan.is_2d and mask is not None and mask.shape == scan.shape and mask.any()
    filename, data = sample_file(figshare.name, data_root)
    assert filename.endswith(".png") and load_scan(data, name=filename).shape == scan.shape
