"""Dataset adapters and committed splits.

Tests marked ``data`` read the public data under BRAINSEG_DATA_ROOT or ../shared/data and are
skipped without it; the others use small synthetic folders written to ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seg_core.data import (
    DATASETS,
    SPLIT_NAMES,
    BratsDataset,
    CocoDataset,
    DatasetError,
    FigshareDataset,
    LggDataset,
    load_split,
    make_split,
    open_dataset,
    split_path,
    write_split,
)

SPLIT_DATASETS = ("figshare", "lgg", "brats", "brats2015", "coco")
DATA_FOLDERS = {"figshare": "figshare", "lgg": "lgg", "brats": "brats2018", "brats2015": "brats2015", "coco": "roboflow_coco"}


def _needs(data_root: Path, dataset: str) -> Path:
    """The data root, or a skip when this dataset's folder is not in it."""
    if not (data_root / DATA_FOLDERS[dataset]).is_dir():
        pytest.skip(f"{DATA_FOLDERS[dataset]}/ not in {data_root}")
    return data_root


# --- registry and errors (no data needed) -------------------------------------------------------


def test_registry_names_and_interface():
    assert {"figshare", "lgg", "brats2015", "brats", "coco"} <= set(DATASETS)
    for name, adapter in DATASETS.items():
        assert adapter.name == name, "the registry key is the adapter's name (and its split file's name)"
        assert isinstance(adapter.modalities, tuple) and adapter.modalities
        assert isinstance(adapter.volumetric, bool)
        assert callable(adapter.groups) and callable(adapter.samples)
        assert callable(getattr(adapter, "load_volume", None)) == adapter.volumetric
    assert LggDataset.modalities == ("t1", "flair", "t1c")
    assert BratsDataset.modalities == DATASETS["brats2015"].modalities == ("flair", "t1c")
    assert issubclass(DATASETS["brats2015"], BratsDataset)


def test_unknown_dataset_lists_names(tmp_path):
    with pytest.raises(KeyError, match="lgg"):
        open_dataset("kaggle", tmp_path)


@pytest.mark.parametrize("name", ["lgg", "brats2015", "brats", "coco"])
def test_empty_folder_raises_dataset_error(tmp_path, name):
    with pytest.raises(DatasetError, match="expected"):
        open_dataset(name, tmp_path)


def test_write_split_is_reproducible_and_complete(tmp_path):
    groups = [f"p{i:02d}" for i in range(20)]
    path = write_split("toy", groups, (0.7, 0.15, 0.15), seed=3, note="why", directory=tmp_path)
    content = json.loads(path.read_text())
    assert list(content) == ["dataset", "unit", "note", "seed", "fractions", "train", "val", "test"]
    assert {name: content[name] for name in SPLIT_NAMES} == make_split(groups, (0.7, 0.15, 0.15), seed=3)
    assert sorted(sum((content[name] for name in SPLIT_NAMES), [])) == groups
    with pytest.raises(ValueError, match="exactly one"):
        write_split("toy", groups, split={"train": groups[:10], "val": groups[9:15], "test": groups[15:]}, directory=tmp_path)


def test_four_groups_split_two_one_one():
    split = make_split(["a", "b", "c", "d"], (0.5, 0.25, 0.25), seed=0)
    assert [len(split[name]) for name in SPLIT_NAMES] == [2, 1, 1]


# --- BraTS orientation and the 2020+ / 2023 layouts, on synthetic cases ----------------------------


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, affine), str(path))


def _synthetic_case(folder: Path, case: str, stems: dict[str, str]) -> dict[str, np.ndarray]:
    """A small RAS case, 1 x 0.8 x 3 mm voxels, with labels 0/1/2/4 in a block and two empty end slices."""
    rng = np.random.default_rng(0)
    shape = (12, 10, 6)  # (x, y, z)
    case_dir = folder / case
    case_dir.mkdir(parents=True)
    # RAS+ voxel axes (the usual orientation of BraTS 2020 files), so the reader must flip x and y.
    affine = np.diag([1.0, 0.8, 3.0, 1.0])
    flair = rng.uniform(1, 100, shape).astype(np.float32)
    flair[:, :, [0, 5]] = 0  # no brain in the lowest and highest slices
    t1c = rng.uniform(1, 100, shape).astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:5, 3:6, 2] = 1
    labels[6:9, 1:3, 2] = 2
    labels[4:7, 4:8, 3] = 4
    for key, array in {"flair": flair, "t1c": t1c, "seg": labels, "t1": t1c, "t2": t1c}.items():
        if key in stems:
            _write_nifti(case_dir / f"{case}{stems[key]}", array, affine)
    return {"flair": flair, "t1c": t1c, "labels": labels}


@pytest.mark.parametrize(
    ("layout", "stems"),
    [
        ("2020", {"flair": "_flair.nii.gz", "t1c": "_t1ce.nii.gz", "seg": "_seg.nii.gz", "t1": "_t1.nii.gz", "t2": "_t2.nii.gz"}),
        ("2020", {"flair": "_flair.nii", "t1c": "_t1ce.nii", "seg": "_seg.nii"}),
        ("2023", {"flair": "-t2f.nii.gz", "t1c": "-t1c.nii.gz", "seg": "-seg.nii.gz"}),
    ],
)
def test_brats_new_layout_reoriented_to_display(tmp_path, layout, stems):
    raw = _synthetic_case(tmp_path / "brats", "BraTS20_Training_001", stems)
    dataset = open_dataset("brats", tmp_path)  # finds <root>/brats/
    assert dataset.groups() == ["BraTS20_Training_001"]
    assert dataset.layout("BraTS20_Training_001") == layout
    image, mask, spacing = dataset.load_volume("BraTS20_Training_001")
    assert image.shape == (2, 6, 10, 12) and image.dtype == np.float32
    assert mask.shape == (6, 10, 12) and mask.dtype == np.uint8
    assert spacing == pytest.approx((3.0, 0.8, 1.0))
    # RAS -> LPS flips x and y: display voxel [d, h, w] is raw voxel [X-1-w, Y-1-h, d].
    expected_flair = raw["flair"][::-1, ::-1, :].transpose(2, 1, 0)
    np.testing.assert_array_equal(image[0], expected_flair)
    np.testing.assert_array_equal(image[1], raw["t1c"][::-1, ::-1, :].transpose(2, 1, 0))
    np.testing.assert_array_equal(mask, (raw["labels"][::-1, ::-1, :] > 0).transpose(2, 1, 0))
    assert set(np.unique(raw["labels"])) == {0, 1, 2, 4}
    assert mask.sum() == (raw["labels"] > 0).sum()

    samples = list(dataset.samples("BraTS20_Training_001"))
    # Brain slices only (nonzero FLAIR), tumor-free ones included.
    assert [sample.slice_index for sample in samples] == [1, 2, 3, 4]
    assert [bool(sample.mask.any()) for sample in samples] == [False, True, True, False]
    assert all(sample.spacing == pytest.approx((0.8, 1.0)) for sample in samples)
    np.testing.assert_array_equal(samples[1].image, image[:, 2])


def test_brats_incomplete_case_names_missing_file(tmp_path):
    _synthetic_case(tmp_path, "case1", {"flair": "_flair.nii.gz", "seg": "_seg.nii.gz"})
    with pytest.raises(DatasetError, match="case1_t1ce"):
        BratsDataset(tmp_path)


def test_brats_cache_is_bounded_and_returns_copies(tmp_path):
    stems = {"flair": "_flair.nii.gz", "t1c": "_t1ce.nii.gz", "seg": "_seg.nii.gz"}
    for case in ("a", "b", "c"):
        _synthetic_case(tmp_path, case, stems)
    dataset = BratsDataset(tmp_path, cache_size=2)
    image, mask, _ = dataset.load_volume("a")
    image[:] = -1
    mask[:] = 1
    again, mask_again, _ = dataset.load_volume("a")  # served from the cache, untouched by the caller's edits
    assert (again != -1).any() and not mask_again.all()
    for case in ("b", "c", "a"):
        dataset.load_volume(case)
    assert list(dataset._cache) == ["c", "a"]
    with pytest.raises(DatasetError, match="choose one of: a, b, c"):
        dataset.load_volume("d")


# --- real data ----------------------------------------------------------------------------------


@pytest.mark.data
def test_lgg_reads_rgb_channels_in_order(data_root):
    import tifffile

    dataset = LggDataset(_needs(data_root, "lgg"))
    groups = dataset.groups()
    assert len(groups) >= 1 and groups == sorted(groups)
    # One folder per patient: groups are patients.
    assert len({LggDataset.patient_of(group) for group in groups}) == len(groups)
    group = next(group for group in groups if dataset.folder_of(group).parent.name == "kaggle_3m")
    folder = dataset.folder_of(group)
    numbers = sorted(int(path.stem.split("_")[-1]) for path in folder.glob("*.tif") if not path.stem.endswith("_mask"))
    samples = list(dataset.samples(group))
    assert [sample.case_id for sample in samples] == [f"{group}/{n}" for n in numbers]  # numeric, not lexical, order
    assert [sample.slice_index for sample in samples] == list(range(len(numbers)))
    assert len(numbers) >= 10, "need slice 10+ to tell numeric from lexical order"

    differing = 0
    for sample, number in zip(samples[::4], numbers[::4], strict=True):
        assert sample.image.shape == (3, 256, 256) and sample.image.dtype == np.float32
        assert sample.mask.shape == (256, 256) and sample.mask.dtype == np.uint8
        assert set(np.unique(sample.mask)) <= {0, 1}
        assert sample.modalities == ("t1", "flair", "t1c") and sample.spacing is None
        reference = tifffile.imread(folder / f"{group}_{number}.tif")  # (H, W, 3) in stored RGB order
        np.testing.assert_array_equal(sample.image, reference.transpose(2, 0, 1))
        np.testing.assert_array_equal(sample.mask, tifffile.imread(folder / f"{group}_{number}_mask.tif") > 127)
        differing += int((reference[..., 0] != reference[..., 2]).any())
    assert differing, "channels 0 and 2 never differ: the RGB/BGR check would prove nothing"

    image, mask, spacing = dataset.load_volume(group)
    assert image.shape == (3, len(numbers), 256, 256) and mask.shape == (len(numbers), 256, 256)
    assert spacing is None
    np.testing.assert_array_equal(image[:, 4], samples[4].image)
    assert mask.any() and not mask.all(axis=(1, 2)).any()


@pytest.mark.data
def test_brats2015_volume_matches_nibabel(data_root):
    import nibabel as nib

    dataset = open_dataset("brats2015", _needs(data_root, "brats2015"))
    group = dataset.groups()[0]
    assert dataset.layout(group) == "2015"
    image, mask, spacing = dataset.load_volume(group)
    assert image.shape == (2, 155, 240, 240) and image.dtype == np.float32
    assert mask.shape == (155, 240, 240) and mask.dtype == np.uint8
    assert spacing == pytest.approx((1.0, 1.0, 1.0))

    case_dir = dataset.folder_of(group)
    labels = nib.load(str(case_dir / "OTMultiClass.nii.gz"))
    raw_labels = np.asanyarray(labels.dataobj)
    assert raw_labels.shape == (240, 240, 155)
    assert int(mask.sum()) == int((raw_labels > 0).sum()) > 0
    # These files are stored LPS already, so the display volume is the plain (z, y, x) transpose.
    assert nib.aff2axcodes(labels.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(mask, (raw_labels > 0).transpose(2, 1, 0))
    raw_t1c = np.asanyarray(nib.load(str(case_dir / "T1c_subtrMeanDivStd.nii.gz")).dataobj)
    np.testing.assert_array_equal(image[1], raw_t1c.transpose(2, 1, 0))  # channel 1 is T1c, not FLAIR
    assert not np.array_equal(image[0], image[1])

    brain = np.asanyarray(nib.load(str(case_dir / "brainmask.nii.gz")).dataobj) > 0.5
    samples = list(dataset.samples(group))
    brain_slices = set(np.flatnonzero(brain.any(axis=(0, 1)))) | set(np.flatnonzero(mask.any(axis=(1, 2))))
    assert {sample.slice_index for sample in samples} == brain_slices
    assert len(samples) < 155, "slices without brain are left out"
    assert any(not sample.mask.any() for sample in samples), "tumor-free brain slices are kept"
    assert sum(int(sample.mask.sum()) for sample in samples) == int(mask.sum())
    assert samples[0].image.shape == (2, 240, 240) and samples[0].modalities == ("flair", "t1c")


@pytest.mark.data
def test_coco_boxes_and_figshare_groups(data_root):
    from PIL import Image

    dataset = CocoDataset(_needs(data_root, "coco"))
    folder = data_root / "roboflow_coco" / "test"
    content = json.loads((folder / "_annotations.coco.json").read_text(encoding="utf-8-sig"))
    boxes = {image["file_name"]: None for image in content["images"]}
    names = {image["id"]: image["file_name"] for image in content["images"]}
    for annotation in content["annotations"]:
        boxes[names[annotation["image_id"]]] = annotation["bbox"]

    figshare = FigshareDataset(_needs(data_root, "figshare"))
    figshare_ids = set(figshare.case_ids())
    samples = [sample for group in dataset.groups() for sample in dataset.samples(group)]
    assert len(samples) == len(content["images"])
    for sample in samples:
        file_name = sample.case_id.split("/")[-1]
        number = int(file_name.split("_")[0])
        assert sample.group == (figshare.group_of(number) if number in figshare_ids else f"id-{number}")
        assert sample.extra["figshare_id"] == int(file_name.split("_")[0])
        assert sample.image.shape == (1, 640, 640) and sample.image.dtype == np.float32
        assert sample.mask.shape == (640, 640) and sample.mask.dtype == np.uint8
        assert set(np.unique(sample.mask)) <= {0, 1}
        x, y, width, height = boxes[file_name]
        # The polygon is the box: the mask covers about its area and lies inside it (1 px of edge).
        assert int(sample.mask.sum()) == pytest.approx(width * height, rel=0.1)
        rows, cols = np.nonzero(sample.mask)
        assert rows.min() >= y - 1 and rows.max() <= y + height + 1 and cols.min() >= x - 1 and cols.max() <= x + width + 1
    with Image.open(folder / samples[0].case_id.split("/")[-1]) as image:
        np.testing.assert_array_equal(samples[0].image[0], np.asarray(image.convert("L")))


# --- committed splits ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPLIT_DATASETS)
def test_split_file_is_disjoint(name):
    content = json.loads(split_path(name).read_text())
    assert content["dataset"] == name
    assert {"unit", "seed", "fractions", *SPLIT_NAMES} <= set(content)
    split = load_split(name)
    assert all(split[part] for part in SPLIT_NAMES), "every part holds at least one group"
    placed = [group for part in SPLIT_NAMES for group in split[part]]
    assert len(placed) == len(set(placed)), "a group is in two parts"


@pytest.mark.data
@pytest.mark.parametrize("name", SPLIT_DATASETS)
def test_split_covers_groups_present(data_root, name):
    dataset = open_dataset(name, _needs(data_root, name))
    split = load_split(name)
    placed = {group for part in SPLIT_NAMES for group in split[part]}
    missing = set(dataset.groups()) - placed
    assert not missing, f"groups in the data but in no split: {sorted(missing)[:5]}"
    assert placed == set(dataset.groups()), "the split was made over exactly the patients present"


def test_lgg_split_keeps_patients_together_and_is_70_14_14():
    split = load_split("lgg")
    part_of: dict[str, str] = {}
    for part in SPLIT_NAMES:
        for group in split[part]:
            patient = LggDataset.patient_of(group)
            assert part_of.setdefault(patient, part) == part, f"patient {patient} is in {part_of[patient]} and {part}"
    assert [len(split[part]) for part in SPLIT_NAMES] == [70, 14, 14]
    content = json.loads(split_path("lgg").read_text())
    # 14 tumor-volume strata of 7 patients, each giving 5 / 1 / 1.
    assert all(set(content["strata"][part].values()) == {count} for part, count in zip(SPLIT_NAMES, (5, 1, 1), strict=True))


@pytest.mark.data
def test_lgg_reads_both_layouts_and_strata_rank_tumor_volume(data_root):
    dataset = LggDataset(_needs(data_root, "lgg"))
    layouts = {group: dataset.folder_of(group).parent.name for group in dataset.groups()}
    assert set(layouts.values()) == {"kaggle_3m", "kaggle_3m_128"}
    small = next(group for group, layout in layouts.items() if layout == "kaggle_3m_128")
    image, mask, _ = dataset.load_volume(small)
    assert image.shape[0] == 3 and image.shape[2:] == (128, 128) and mask.shape == image.shape[1:]
    assert set(np.unique(mask)) <= {0, 1}
    strata = dataset.strata()
    ranked = sorted(strata, key=lambda group: strata[group])
    volumes = [dataset.tumor_volume(group) for group in (ranked[0], ranked[-1])]
    assert volumes[0] < volumes[1], "the first stratum holds the smallest tumors"


def test_brats_split_holds_both_sources_in_every_part():
    content = json.loads(split_path("brats").read_text())
    assert [len(content[part]) for part in SPLIT_NAMES] == [13, 3, 3]
    for part in SPLIT_NAMES:
        sources = {"2015" if group.startswith("brats_2013") else "2018" for group in content[part]}
        assert sources == {"2015", "2018"}, f"{part} holds only {sources}"


def test_brats2015_split_is_two_one_one_with_note():
    content = json.loads(split_path("brats2015").read_text())
    assert [len(content[part]) for part in SPLIT_NAMES] == [2, 1, 1]
    assert "note" in content and "4 patients" in content["note"]


@pytest.mark.data
def test_figshare_split_is_by_patient_and_stratified_by_tumor_type(data_root):
    import csv

    rows = list(csv.DictReader((_needs(data_root, "figshare") / "figshare" / "patients.csv").open()))
    patient_of = {row["id"]: row["patient"] for row in rows}
    figshare = load_split("figshare")
    part_of = {group: part for part in SPLIT_NAMES for group in figshare[part]}
    assert set(part_of) == set(patient_of.values())
    dataset = FigshareDataset(data_root)
    # Every slice of a patient is in its patient's part, whatever its id run (imaging plane).
    for case_id in dataset.case_ids()[::7]:
        assert dataset.group_of(case_id) == patient_of[str(case_id)]
    content = json.loads(split_path("figshare").read_text())
    for tumor_type in ("meningioma", "glioma", "pituitary"):
        counts = [content["strata"][part][tumor_type] for part in SPLIT_NAMES]
        assert counts[1] >= 1 and counts[2] >= 1 and counts[0] > 3 * counts[2], (tumor_type, counts)
    # The COCO images are Figshare slices: each keeps its patient's part, so no slice is train in one and test in the other.
    coco = load_split("coco")
    for part in SPLIT_NAMES:
        for group in coco[part]:
            assert part_of.get(group, "test") == part, f"patient {group} is {part_of.get(group)} in figshare but {part} in coco"


def test_stratified_split_gives_each_stratum_its_share():
    groups = [f"p{i:02d}" for i in range(40)]
    strata = {group: "a" if i < 20 else "b" for i, group in enumerate(groups)}
    split = make_split(groups, (0.7, 0.15, 0.15), seed=1, strata=strata)
    for part, count in zip(SPLIT_NAMES, (14, 3, 3), strict=True):
        assert sum(strata[group] == "a" for group in split[part]) == count
        assert sum(strata[group] == "b" for group in split[part]) == count
    assert make_split(groups, (0.7, 0.15, 0.15), seed=1, strata=strata) == split
    with pytest.raises(ValueError, match="no stratum"):
        make_split(groups, strata={"p00": "a"})


def test_figshare_without_patients_csv_makes_each_slice_its_own_group(tmp_path):
    from PIL import Image

    for kind in ("images", "masks"):
        (tmp_path / "figshare" / kind).mkdir(parents=True)
        for case_id in (3, 12):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "figshare" / kind / f"{case_id}.png")
    dataset = FigshareDataset(tmp_path)
    assert dataset.groups() == ["id-12", "id-3"]
    (tmp_path / "figshare" / "patients.csv").write_text("id,patient,tumor_type\n3,p1,glioma\n")
    dataset = FigshareDataset(tmp_path)  # with the file, unlisted slices are left out
    assert dataset.groups() == ["p1"] and dataset.strata() == {"p1": "glioma"}
    (tmp_path / "figshare" / "patients.csv").write_text("slice,who\n3,p1\n")
    with pytest.raises(DatasetError, match="id,patient,tumor_type"):
        FigshareDataset(tmp_path)
