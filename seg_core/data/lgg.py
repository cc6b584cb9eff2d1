"""TCGA-LGG (Buda et al. 2019): ``kaggle_3m`` TIFF stacks and their 128 px PNG copies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seg_core.data.base import DatasetError, Sample, unknown_group


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
            raise unknown_group(self.name, group, self.groups()) from None

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
