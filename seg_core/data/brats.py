"""BraTS multimodal NIfTI cases (2015, 2020-2021 and 2023+ naming), one folder per patient."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seg_core.data.base import DatasetError, Sample, unknown_group


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
            raise unknown_group(self.name, group, self.groups()) from None

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
