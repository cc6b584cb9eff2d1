"""Figshare (Cheng et al. 2015): T1-contrast PNG slices, split by patient from ``patients.csv``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seg_core.data.base import DatasetError, Sample

logger = logging.getLogger(__name__)


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
