"""Dataset adapters for the public layouts in ``../shared/data``, and patient-level splits.

Every adapter takes a data root (the folder holding ``figshare/``, ``lgg/``, ...) or the dataset
folder itself, and exposes the same small interface:

* ``name``, ``modalities`` (channel order of every image) and ``volumetric`` class attributes;
* ``groups()``: the units of splitting, one per patient (or, for Figshare, which has no patient
  ids, one per block of consecutive ids), so that no patient lands in two splits;
* ``samples(group)``: the 2D slices of that group as :class:`Sample` (image, mask, modalities).

Volumetric datasets (LGG, BraTS) also stack a group's slices into a volume for per-volume metrics
with ``load_volume(group) -> (image (C, D, H, W), mask (D, H, W), spacing (D, H, W) or None)``.
Split files live in ``splits/<dataset>.json`` and are committed, so results reproduce.

Registered datasets (:data:`DATASETS`):

* ``figshare``: Cheng et al. T1c slices (:class:`FigshareDataset`);
* ``lgg``: Buda et al. TCGA-LGG ``kaggle_3m`` stacks (:class:`LggDataset`);
* ``brats2015`` and ``brats``: BraTS NIfTI cases, 2015 or 2020+ naming (:class:`BratsDataset`);
* ``coco``: the Roboflow COCO export of Figshare slices (:class:`CocoDataset`).

Example:
    >>> ds = open_dataset("figshare", "../shared/data")          # doctest: +SKIP
    >>> split = load_split("figshare")                             # doctest: +SKIP
    >>> first = next(ds.samples(split["test"][0]))                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Sample",
    "DATASETS",
    "DatasetError",
    "open_dataset",
    "load_split",
    "make_split",
    "coco_split_from_figshare",
    "write_split",
    "SPLITS_DIR",
    "split_sha256",
    "FigshareDataset",
    "LggDataset",
    "BratsDataset",
    "Brats2015Dataset",
    "CocoDataset",
]

logger = logging.getLogger(__name__)

SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"
SPLIT_NAMES = ("train", "val", "test")


class DatasetError(ValueError):
    """A data folder is missing or does not have the expected layout."""


@dataclass
class Sample:
    """One 2D slice with its ground truth.

    Attributes:
        case_id: unique id within the dataset, e.g. ``"1234"`` or ``"TCGA_CS_4943_20000902/12"``.
        group: the patient (or id block) the slice belongs to: the unit of splitting.
        image: raw intensities ``(C, H, W)`` float32, channels in the order of ``modalities``.
        mask: ground truth ``(H, W)`` uint8 in {0, 1}.
        modalities: one name per channel (``"t1"``, ``"t1c"``, ``"t2"``, ``"flair"``).
        spacing: in-plane pixel spacing ``(row, column)`` in mm when known.
        slice_index: position of the slice in its volume (volumetric datasets only).
    """

    case_id: str
    group: str
    image: np.ndarray
    mask: np.ndarray
    modalities: tuple[str, ...]
    spacing: tuple[float, float] | None = None
    slice_index: int | None = None
    extra: dict = field(default_factory=dict)


def _read_gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def read_figshare_patients(folder: Path) -> dict[int, tuple[str, str]]:
    """``{slice id: (patient, tumor type)}`` from ``patients.csv`` (columns ``id,patient,tumor_type``).

    A folder without the file (a copy made from the release's images alone) gives ``{}``: its slices
    cannot be placed in the committed split, but can still be evaluated as a whole (``--split all``).

    Raises:
        DatasetError: the file lacks those columns.
    """
    import csv

    path = folder / "patients.csv"
    if not path.exists():
        logger.warning("no %s: each Figshare slice is its own group and no committed split applies", path)
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"id", "patient", "tumor_type"} <= set(rows[0]):
        raise DatasetError(f"{path} must have the columns id,patient,tumor_type")
    return {int(row["id"]): (row["patient"], row["tumor_type"]) for row in rows}


class FigshareDataset:
    """Cheng et al. 2015 T1-contrast slices: ``figshare/images/<id>.png`` + ``masks/<id>.png``.

    The unit of splitting is the patient, read from ``figshare/patients.csv``. Each patient's slices
    come in up to five runs of consecutive ids (one per imaging plane, far apart), so blocks of ids
    would put one patient in several splits; ``tumor_type`` (meningioma, glioma, pituitary) is the
    stratum of the committed split. Slices whose id is not in ``patients.csv`` are left out; without
    the file each slice is its own group ``id-<n>`` (fine for ``--split all``, matching no split).
    """

    name = "figshare"
    modalities = ("t1c",)
    volumetric = False

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        folder = root / "figshare" if (root / "figshare").is_dir() else root
        self.images_dir, self.masks_dir = folder / "images", folder / "masks"
        if not self.images_dir.is_dir() or not self.masks_dir.is_dir():
            raise DatasetError(f"no Figshare layout (images/ and masks/) under {root}")
        self._patients = read_figshare_patients(folder)
        self._ids = sorted(
            int(path.stem)
            for path in self.images_dir.glob("*.png")
            if path.stem.isdigit()
            and (self.masks_dir / path.name).exists()
            and (not self._patients or int(path.stem) in self._patients)
        )
        if not self._ids:
            raise DatasetError(f"no image/mask pairs (listed in patients.csv, where there is one) in {self.images_dir}")

    def group_of(self, case_id: int) -> str:
        """The patient of slice ``case_id`` (``id-<n>`` when ``patients.csv`` does not know it)."""
        return self._patients[case_id][0] if case_id in self._patients else f"id-{case_id}"

    def strata(self) -> dict[str, str]:
        """``{patient: tumor type}``, the strata of the committed split."""
        return {self.group_of(i): self._patients.get(i, ("", "unknown"))[1] for i in self._ids}

    def groups(self) -> list[str]:
        return sorted({self.group_of(i) for i in self._ids})

    def case_ids(self, group: str | None = None) -> list[int]:
        return [i for i in self._ids if group is None or self.group_of(i) == group]

    def load(self, case_id: int) -> Sample:
        image = _read_gray(self.images_dir / f"{case_id}.png").astype(np.float32)
        mask = (_read_gray(self.masks_dir / f"{case_id}.png") > 127).astype(np.uint8)
        return Sample(str(case_id), self.group_of(case_id), image[None], mask, self.modalities)

    def samples(self, group: str) -> Iterator[Sample]:
        for case_id in self.case_ids(group):
            yield self.load(case_id)


def _unknown_group(dataset: str, group: str, known: Sequence[str]) -> DatasetError:
    shown = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
    return DatasetError(f"unknown group {group!r} in {dataset}; choose one of: {shown}")


class LggDataset:
    """Buda et al. 2019 TCGA-LGG stacks, in two layouts read together.

    * ``lgg/kaggle_3m/<case>/<case>_<n>.tif`` + ``<case>_<n>_mask.tif``: the download, 256x256;
    * ``lgg/kaggle_3m_128/<case>/<case>_<n>.png`` + ``<case>_<n>_mask.png``: further patients at 128x128.

    Images are RGB whose channels are (pre-contrast T1, FLAIR, post-contrast T1), read with Pillow
    in that RGB order (OpenCV would give BGR and swap T1 and T1c). Where a sequence was missing the
    release repeats FLAIR in its channel. Masks outline the FLAIR abnormality; many slices hold no
    tumor. Slices are sorted numerically by ``<n>`` to build a volume; the slice spacing is not
    published, so ``spacing`` is ``None``. Each case keeps its own resolution; training resizes.

    A group is a case folder ``TCGA_<inst>_<patient>_<date>``. Every patient has exactly one folder
    (one date) in the release, so folders are patients; ``patient_of`` gives ``TCGA_<inst>_<patient>``
    for checks that no patient lands in two splits.

    Example:
        >>> ds = LggDataset("../shared/data")                          # doctest: +SKIP
        >>> image, mask, spacing = ds.load_volume(ds.groups()[0])      # doctest: +SKIP
        >>> image.shape, mask.shape, spacing                           # doctest: +SKIP
        ((3, 20, 128, 128), (20, 128, 128), None)
    """

    name = "lgg"
    modalities = ("t1", "flair", "t1c")
    volumetric = True
    LAYOUTS = ("kaggle_3m", "kaggle_3m_128")
    # Patients per tumor-volume stratum: 70/14/14 % of 7 is 5/1/1, so each stratum of patients with
    # similar tumor volume gives every part its share.
    STRATUM_SIZE = 7

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        for base in (root / "lgg", root):
            folders = [base / name for name in self.LAYOUTS if (base / name).is_dir()]
            if folders:
                break
        else:
            folders = [root]  # a folder of case folders passed directly
        self._slices: dict[str, list[tuple[int, Path, Path]]] = {}
        self.folders: dict[str, Path] = {}
        for folder in folders:
            for case, slices in self._index(folder).items():
                if case in self._slices:
                    raise DatasetError(f"LGG case {case} is in both {self.folders[case]} and {folder}")
                self._slices[case], self.folders[case] = slices, folder
        if not self._slices:
            raise DatasetError(
                f"no LGG layout under {root}: expected <root>/lgg/kaggle_3m/<case>/<case>_<n>.tif with <case>_<n>_mask.tif "
                "(or kaggle_3m_128/ with .png), or such a folder itself"
            )

    @staticmethod
    def _index(folder: Path) -> dict[str, list[tuple[int, Path, Path]]]:
        """``{case: [(n, image path, mask path), ...]}`` sorted by slice number, for case folders of ``folder``."""
        cases: dict[str, list[tuple[int, Path, Path]]] = {}
        for case_dir in folder.iterdir():
            if not case_dir.is_dir():
                continue
            pattern = re.compile(rf"{re.escape(case_dir.name)}_(\d+)\.(tif|png)")
            slices = []
            for path in case_dir.iterdir():
                found = pattern.fullmatch(path.name)
                if found is None:
                    continue
                mask_path = path.with_name(f"{case_dir.name}_{found.group(1)}_mask.{found.group(2)}")
                if not mask_path.exists():
                    raise DatasetError(f"LGG slice {path} has no mask {mask_path.name}")
                slices.append((int(found.group(1)), path, mask_path))
            if slices:
                # Numeric order: lexical order would put slice 10 before slice 2.
                cases[case_dir.name] = sorted(slices)
        return cases

    def folder_of(self, group: str) -> Path:
        """The case folder of ``group``."""
        self._case(group)
        return self.folders[group] / group

    def tumor_volume(self, group: str) -> float:
        """Tumor area summed over the slices, in pixels at 256x256 (128 px cases count 4 per pixel)."""
        from PIL import Image

        total = 0.0
        for _, _, mask_path in self._case(group):
            with Image.open(mask_path) as mask:
                truth = np.asarray(mask.convert("L")) > 127
            total += truth.sum() * (256 / truth.shape[1]) ** 2
        return total

    def strata(self) -> dict[str, str]:
        """``{case: tumor-volume stratum}``: patients ranked by tumor volume, cut into runs of :attr:`STRATUM_SIZE`."""
        ranked = sorted(self.groups(), key=lambda group: (self.tumor_volume(group), group))
        return {group: f"volume-rank-{rank // self.STRATUM_SIZE:02d}" for rank, group in enumerate(ranked)}

    @staticmethod
    def patient_of(group: str) -> str:
        """``"TCGA_CS_4943_20000902"`` -> ``"TCGA_CS_4943"`` (institution and patient, without the date)."""
        return "_".join(group.split("_")[:3])

    def groups(self) -> list[str]:
        return sorted(self._slices)

    def _case(self, group: str) -> list[tuple[int, Path, Path]]:
        try:
            return self._slices[group]
        except KeyError:
            raise _unknown_group(self.name, group, self.groups()) from None

    @staticmethod
    def _read(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Image ``(3, H, W)`` float32 in (t1, flair, t1c) order and mask ``(H, W)`` uint8 {0, 1}."""
        from PIL import Image

        with Image.open(image_path) as image:
            rgb = np.asarray(image.convert("RGB"))
        with Image.open(mask_path) as mask:
            truth = (np.asarray(mask.convert("L")) > 127).astype(np.uint8)
        if truth.shape != rgb.shape[:2]:
            raise DatasetError(f"mask {mask_path.name} is {truth.shape}, image {image_path.name} is {rgb.shape[:2]}")
        return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32), truth

    def samples(self, group: str) -> Iterator[Sample]:
        """Every slice of patient ``group`` in volume order, tumor-free slices included."""
        for index, (number, image_path, mask_path) in enumerate(self._case(group)):
            image, mask = self._read(image_path, mask_path)
            yield Sample(f"{group}/{number}", group, image, mask, self.modalities, slice_index=index)

    def load_volume(self, group: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float] | None]:
        """The stacked slices of ``group``: image ``(3, D, H, W)`` float32, mask ``(D, H, W)`` uint8, spacing ``None``."""
        pairs = [self._read(image_path, mask_path) for _, image_path, mask_path in self._case(group)]
        return np.stack([image for image, _ in pairs], axis=1), np.stack([mask for _, mask in pairs]), None


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    return None


def _read_nifti_display(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A NIfTI volume ``(D, H, W)`` in the display convention, and its spacing ``(D, H, W)`` in mm.

    The voxel axes are reoriented to LPS (x towards the patient's left, y posterior, z superior), then
    transposed to ``(z, y, x)``: slices run inferior -> superior, row 0 is anterior and column 0 is the
    patient's right (radiological view). ``seg_core.scans`` uses the same convention for NIfTI input.
    """
    import nibabel as nib
    from nibabel import orientations

    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DatasetError(f"{path} holds a {data.ndim}D array of shape {data.shape}; expected one 3D volume")
    transform = orientations.ornt_transform(orientations.io_orientation(image.affine), orientations.axcodes2ornt(("L", "P", "S")))
    data = orientations.apply_orientation(data, transform)
    zooms = [float(zoom) for zoom in image.header.get_zooms()[:3]]
    lps_zooms = [1.0, 1.0, 1.0]
    for source_axis, (target_axis, _) in enumerate(transform):
        lps_zooms[int(target_axis)] = zooms[source_axis]
    return np.ascontiguousarray(data.transpose(2, 1, 0)), (lps_zooms[2], lps_zooms[1], lps_zooms[0])


# File stems per BraTS naming scheme: (FLAIR, T1c, labels, brain mask or None); "{case}" is the folder name.
BRATS_LAYOUTS: dict[str, tuple[str, str, str, str | None]] = {
    "2015": ("Flair_subtrMeanDivStd", "T1c_subtrMeanDivStd", "OTMultiClass", "brainmask"),
    "2020": ("{case}_flair", "{case}_t1ce", "{case}_seg", None),
    "2023": ("{case}-t2f", "{case}-t1c", "{case}-seg", None),
}


class BratsDataset:
    """BraTS multimodal NIfTI cases, one folder per patient; the naming scheme is detected per case folder.

    * 2015 (as shipped with DeepMedic): ``<case>/Flair_subtrMeanDivStd.nii.gz``, ``T1c_subtrMeanDivStd.nii.gz``
      (z-scored inside the brain), ``brainmask.nii.gz``, ``OTMultiClass.nii.gz`` (labels 0..4 stored as float).
    * 2020-2021: ``<case>/<case>_flair.nii.gz``, ``_t1.nii.gz``, ``_t1ce.nii.gz``, ``_t2.nii.gz``, ``_seg.nii.gz``
      (labels 0/1/2/4; T1 and T2 are not used).
    * 2023+: ``<case>/<case>-t2f.nii.gz``, ``-t1c``, ``-seg`` (labels 0..3).

    ``.nii`` works as well as ``.nii.gz``. Channels are (FLAIR, T1c), the inputs the BraTS models use;
    the mask is the whole tumor (any label > 0). Volumes are shown axially in the radiological
    convention (see :func:`_read_nifti_display`), ``(D, H, W)`` = (inferior -> superior, anterior ->
    posterior, right -> left), spacing from the header. ``samples`` yields only the slices that hold
    brain (brain mask, or nonzero FLAIR where no mask is shipped) or tumor, tumor-free ones included,
    so a model learns to answer "no tumor"; ``load_volume`` returns every slice.

    Decoding a case takes about half a second, so the last ``cache_size`` decoded cases are kept.

    Registered twice: ``brats`` (every case of the data root's ``brats2015/``, ``brats2018/`` and
    ``brats/`` together, or any folder of case folders) and ``brats2015`` (:class:`Brats2015Dataset`,
    ``brats2015/`` alone: the split of the first, 4-case models).

    Example:
        >>> ds = open_dataset("brats2015", "../shared/data")           # doctest: +SKIP
        >>> image, mask, spacing = ds.load_volume(ds.groups()[0])      # doctest: +SKIP
        >>> image.shape, mask.shape, spacing                           # doctest: +SKIP
        ((2, 155, 240, 240), (155, 240, 240), (1.0, 1.0, 1.0))
    """

    name = "brats"
    modalities = ("flair", "t1c")
    volumetric = True
    # Case folders under the data root, read together: the z-scored 2015 cases and the raw-intensity
    # 2018 cases (and a user's own ``brats/``), so one split and one model cover both sources.
    folder_names: tuple[str, ...] = ("brats2015", "brats2018", "brats")

    def __init__(self, root: str | Path, cache_size: int = 2) -> None:
        root = Path(root)
        self._cases: dict[str, tuple[Path, str]] = {}
        if (layout := self.layout_of(root)) is not None:
            # A single case folder passed directly.
            self._cases = {root.name: (root, layout)}
        else:
            folders = [root / name for name in self.folder_names if (root / name).is_dir()] or [root]
            for folder in folders:
                for case in sorted(folder.iterdir()) if folder.is_dir() else []:
                    if case.is_dir() and (layout := self.layout_of(case)) is not None:
                        if case.name in self._cases:
                            raise DatasetError(
                                f"BraTS case {case.name} is in both {self._cases[case.name][0].parent} and {folder}"
                            )
                        self._cases[case.name] = (case, layout)
        if not self._cases:
            expected = "; ".join(f"{name}: <case>/{stems[0]}.nii.gz" for name, stems in BRATS_LAYOUTS.items())
            raise DatasetError(
                f"no BraTS case folders under {root} (or {', '.join(self.folder_names)}/ in it); expected one of {expected}"
            )
        self._cache_size = max(1, cache_size)
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]] = OrderedDict()

    @staticmethod
    def layout_of(case_dir: Path) -> str | None:
        """The naming scheme (a key of :data:`BRATS_LAYOUTS`) of a case folder, or ``None`` if it holds no BraTS case.

        Raises:
            DatasetError: the FLAIR file is there but the T1c or label file is missing.
        """
        if not case_dir.is_dir():
            return None
        for layout, stems in BRATS_LAYOUTS.items():
            flair, t1c, labels, _ = (stem.format(case=case_dir.name) if stem else None for stem in stems)
            if _find_nifti(case_dir, flair) is None:
                continue
            missing = [f"{stem}.nii.gz" for stem in (t1c, labels) if _find_nifti(case_dir, stem) is None]
            if missing:
                raise DatasetError(f"BraTS {layout} case {case_dir} lacks {', '.join(missing)}")
            return layout
        return None

    def groups(self) -> list[str]:
        return sorted(self._cases)

    def folder_of(self, group: str) -> Path:
        """The case folder of ``group``."""
        return self._case(group)[0]

    def strata(self) -> dict[str, str]:
        """``{case: source folder}`` (``brats2015``, ``brats2018``, ...): each source gets its share of every part."""
        return {group: self.folder_of(group).parent.name for group in self.groups()}

    def layout(self, group: str) -> str:
        """The naming scheme of case ``group``: ``"2015"``, ``"2020"`` or ``"2023"``."""
        return self._case(group)[1]

    def _case(self, group: str) -> tuple[Path, str]:
        try:
            return self._cases[group]
        except KeyError:
            raise _unknown_group(self.name, group, self.groups()) from None

    def _decode(self, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]:
        """Image ``(2, D, H, W)`` float32, whole-tumor mask and brain mask ``(D, H, W)`` uint8/bool, spacing; cached."""
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        case_dir, layout = self._case(group)
        flair_stem, t1c_stem, labels_stem, brain_stem = (
            stem.format(case=group) if stem else None for stem in BRATS_LAYOUTS[layout]
        )
        flair, spacing = _read_nifti_display(_find_nifti(case_dir, flair_stem))
        t1c, _ = _read_nifti_display(_find_nifti(case_dir, t1c_stem))
        labels, _ = _read_nifti_display(_find_nifti(case_dir, labels_stem))
        if not flair.shape == t1c.shape == labels.shape:
            raise DatasetError(f"BraTS case {case_dir}: FLAIR {flair.shape}, T1c {t1c.shape} and labels {labels.shape} differ")
        # > 0.5 rather than > 0: labels stored as scaled floats can carry rounding noise around 0.
        mask = (labels > 0.5).astype(np.uint8)
        brain_path = _find_nifti(case_dir, brain_stem) if brain_stem else None
        if brain_path is not None:
            brain = _read_nifti_display(brain_path)[0] > 0.5
        else:
            # Later releases are skull-stripped with a zero background.
            brain = flair != 0
        image = np.stack([flair, t1c]).astype(np.float32, copy=False)
        entry = (image, mask, brain, spacing)
        self._cache[group] = entry
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    def samples(self, group: str) -> Iterator[Sample]:
        """Axial slices of ``group`` that hold brain or tumor, inferior first; ``slice_index`` is the index in the volume."""
        image, mask, brain, spacing = self._decode(group)
        keep = brain.any(axis=(1, 2)) | mask.any(axis=(1, 2))
        for index in np.flatnonzero(keep):
            yield Sample(
                f"{group}/{index}",
                group,
                image[:, index].copy(),
                mask[index].copy(),
                self.modalities,
                spacing=(spacing[1], spacing[2]),
                slice_index=int(index),
            )

    def load_volume(self, group: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float] | None]:
        """All slices of ``group``: image ``(2, D, H, W)`` float32, mask ``(D, H, W)`` uint8, spacing ``(D, H, W)`` mm.

        The arrays are copies, so callers may change them without touching the cache.
        """
        image, mask, _, spacing = self._decode(group)
        return image.copy(), mask.copy(), spacing


class Brats2015Dataset(BratsDataset):
    """:class:`BratsDataset` over the data root's ``brats2015/`` folder, with its own committed split."""

    name = "brats2015"
    folder_names = ("brats2015",)


class CocoDataset:
    """Roboflow "Tumor Segmentation" COCO export: ``roboflow_coco/<subset>/`` images + ``_annotations.coco.json``.

    The images are Figshare T1c slices stretched to 640x640 and named after their Figshare id
    (``1030_jpg.rf.<hash>.jpg`` is Figshare slice 1030), so the group of an image is its Figshare
    patient (from the data root's ``figshare/patients.csv``) and the split follows the Figshare one.
    An id that ``patients.csv`` does not list (its patient is not in the Figshare copy) becomes the
    group ``id-<n>``. Images are read as one
    gray channel. Caution: the "polygons" are axis-aligned rectangles drawn around the tumor, not
    outlines, so the masks are boxes: fine for reading COCO, poor ground truth for outline quality
    (Dice against a box rewards box-shaped predictions).

    ``root`` is the data root, ``roboflow_coco/``, or one subset folder (``test/``); with several subsets
    (``train/``, ``valid/``, ``test/``) all are read. A file whose name does not start with a Figshare id
    becomes its own group (logged).
    """

    name = "coco"
    modalities = ("t1c",)
    volumetric = False
    ANNOTATIONS = "_annotations.coco.json"

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        annotation_files: list[Path] = []
        for folder in (root / "roboflow_coco", root):
            if (folder / self.ANNOTATIONS).exists():
                annotation_files = [folder / self.ANNOTATIONS]
            elif folder.is_dir():
                annotation_files = sorted(folder.glob(f"*/{self.ANNOTATIONS}"))
            if annotation_files:
                break
        if not annotation_files:
            raise DatasetError(
                f"no COCO export under {root}: expected <root>/roboflow_coco/<subset>/{self.ANNOTATIONS} or a folder holding it"
            )
        figshare = next(
            (f for f in (root / "figshare", root.parent / "figshare", root.parent.parent / "figshare") if f.is_dir()), None
        )
        self._figshare_patients = read_figshare_patients(figshare) if figshare is not None else {}
        # {group: [(case_id, image path, (width, height), [polygon, ...]), ...]}
        self._images: dict[str, list[tuple[str, Path, tuple[int, int], list[list[float]]]]] = {}
        for annotation_file in annotation_files:
            self._index(annotation_file)
        for entries in self._images.values():
            entries.sort(key=lambda entry: natural_key(entry[0]))

    def _index(self, annotation_file: Path) -> None:
        # Roboflow writes a UTF-8 byte order mark, which plain json.load rejects.
        content = json.loads(annotation_file.read_text(encoding="utf-8-sig"))
        polygons: dict[int, list[list[float]]] = {}
        for annotation in content.get("annotations", []):
            segmentation = annotation.get("segmentation")
            if not isinstance(segmentation, list):
                raise DatasetError(
                    f"{annotation_file}: annotation {annotation.get('id')} has an RLE segmentation; only polygon lists are supported"
                )
            polygons.setdefault(annotation["image_id"], []).extend(segmentation)
        subset = annotation_file.parent.name
        for entry in content.get("images", []):
            path = annotation_file.parent / entry["file_name"]
            if not path.exists():
                raise DatasetError(f"{annotation_file} lists {entry['file_name']}, which is not in {path.parent}")
            figshare_id = re.match(r"\d+", path.name)
            if figshare_id is not None:
                number = int(figshare_id.group())
                group = self._figshare_patients[number][0] if number in self._figshare_patients else f"id-{number}"
            else:
                logger.warning("COCO image %s does not start with a Figshare id; it forms its own group", path.name)
                group = path.stem
            case = (f"{subset}/{path.name}", path, (int(entry["width"]), int(entry["height"])), polygons.get(entry["id"], []))
            self._images.setdefault(group, []).append(case)

    def groups(self) -> list[str]:
        return sorted(self._images)

    def samples(self, group: str) -> Iterator[Sample]:
        """The images of Figshare block ``group``: image ``(1, H, W)`` float32, box mask ``(H, W)`` uint8."""
        from PIL import Image, ImageDraw

        if group not in self._images:
            raise _unknown_group(self.name, group, self.groups())
        for case_id, path, size, polygons in self._images[group]:
            with Image.open(path) as image:
                if image.size != size:
                    raise DatasetError(f"{path.name} is {image.size[0]}x{image.size[1]}, its annotation says {size[0]}x{size[1]}")
                gray = np.asarray(image.convert("L"), dtype=np.float32)
            canvas = Image.new("L", size, 0)
            draw = ImageDraw.Draw(canvas)
            for polygon in polygons:
                if len(polygon) >= 6:
                    draw.polygon([(polygon[i], polygon[i + 1]) for i in range(0, len(polygon) - 1, 2)], fill=1, outline=1)
            figshare_id = re.match(r"\d+", path.name)
            extra = {"figshare_id": int(figshare_id.group())} if figshare_id else {}
            yield Sample(case_id, group, gray[None], np.asarray(canvas, dtype=np.uint8), self.modalities, extra=extra)


DATASETS: dict[str, type] = {
    "figshare": FigshareDataset,
    "lgg": LggDataset,
    "brats2015": Brats2015Dataset,
    "brats": BratsDataset,
    "coco": CocoDataset,
}


def open_dataset(name: str, root: str | Path):
    """The adapter for dataset ``name`` over ``root``; ``KeyError`` listing the known names."""
    try:
        adapter = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}") from None
    return adapter(root)


def make_split(
    groups: list[str],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    strata: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Shuffle ``groups`` with ``seed`` and cut them into train/val/test by ``fractions``.

    With ``strata`` (``{group: stratum}``, e.g. tumor type), each stratum is shuffled and cut on its
    own, so every part gets its share of each stratum (rounded per stratum). Without, val and test
    each get at least one group when there are three or more groups.
    """
    if len(groups) < 3:
        raise ValueError(f"need at least 3 groups (patients) to split, got {len(groups)}")
    if strata is None:
        strata = dict.fromkeys(groups, "")
    missing = sorted(set(groups) - set(strata))
    if missing:
        raise ValueError(f"no stratum for {len(missing)} groups, e.g. {missing[:3]}")
    rng = random.Random(seed)
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    names = sorted({strata[group] for group in groups})
    # Unstratified, val and test get at least one group; per stratum, rounding decides.
    minimum = 1 if len(names) == 1 else 0
    for stratum in names:
        order = sorted(group for group in groups if strata[group] == stratum)
        rng.shuffle(order)
        n_val = max(minimum, round(fractions[1] * len(order)))
        n_test = max(minimum, round(fractions[2] * len(order)))
        n_train = len(order) - n_val - n_test
        split["train"] += order[:n_train]
        split["val"] += order[n_train : n_train + n_val]
        split["test"] += order[n_train + n_val :]
    return {name: sorted(members) for name, members in split.items()}


def coco_split_from_figshare(groups: Sequence[str]) -> dict[str, list[str]]:
    """The COCO export's split: each Figshare patient keeps its Figshare part; ``id-<n>`` groups (patients
    absent from the Figshare copy, so in none of its parts) go to test."""
    figshare = load_split("figshare")
    part_of = {group: name for name in SPLIT_NAMES for group in figshare[name]}
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for group in groups:
        split[part_of.get(group, "test")].append(group)
    return split


def split_path(dataset: str) -> Path:
    return SPLITS_DIR / f"{dataset}.json"


def split_sha256(dataset: str) -> str | None:
    """The sha256 of the committed split file of ``dataset``: which split a run used; ``None`` without one."""
    import hashlib

    path = split_path(dataset)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def write_split(
    dataset_name: str,
    groups: Sequence[str],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    note: str = "",
    *,
    unit: str = "patient",
    split: dict[str, list[str]] | None = None,
    directory: str | Path | None = None,
    strata: dict[str, str] | None = None,
) -> Path:
    """Write ``<directory>/<dataset_name>.json`` (default ``splits/``) and return its path.

    The file holds ``dataset``, ``unit``, ``note`` (when given), ``seed``, ``fractions`` and the
    ``train`` / ``val`` / ``test`` lists of groups, as :func:`load_split` reads them.

    Args:
        dataset_name: registry name, also the file name.
        groups: every group to place, e.g. ``open_dataset(name, root).groups()``.
        fractions: train/val/test fractions for :func:`make_split`.
        seed: shuffling seed for :func:`make_split`.
        note: free text kept in the file (why the split looks the way it does).
        unit: what one group is, for the reader of the file.
        split: an explicit assignment to write instead of :func:`make_split` (e.g. one inherited
            from another dataset); it must place every group of ``groups`` exactly once.
        directory: where to write; defaults to :data:`SPLITS_DIR`.
        strata: ``{group: stratum}`` for a stratified :func:`make_split`; recorded per part as counts.

    Raises:
        ValueError: fewer than 3 groups, or an explicit ``split`` that misses or repeats a group.
    """
    if split is None:
        split = make_split(list(groups), fractions, seed, strata)
    placed = [group for name in SPLIT_NAMES for group in split.get(name, [])]
    if len(placed) != len(set(placed)) or set(placed) != set(groups):
        raise ValueError(f"split must place each of the {len(set(groups))} groups in exactly one of {SPLIT_NAMES}")
    content: dict = {"dataset": dataset_name, "unit": unit}
    if note:
        content["note"] = note
    content.update({"seed": seed, "fractions": list(fractions)})
    if strata:
        content["strata"] = {name: dict(sorted(Counter(strata[group] for group in split[name]).items())) for name in SPLIT_NAMES}
    content.update({name: sorted(split[name]) for name in SPLIT_NAMES})
    path = Path(directory or SPLITS_DIR) / f"{dataset_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def load_split(dataset: str) -> dict[str, list[str]]:
    """The committed split of ``dataset``: ``{"train": [...], "val": [...], "test": [...]}`` of groups."""
    path = split_path(dataset)
    if not path.exists():
        raise DatasetError(f"no split file for {dataset!r} at {path}; create it with `python -m seg_core split {dataset}`")
    content = json.loads(path.read_text())
    return {name: list(content[name]) for name in SPLIT_NAMES}


def natural_key(text: str) -> list:
    """Sort key that orders ``case_2`` before ``case_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
