"""A case of several co-registered NIfTI files named by contrast: the BraTS layouts, and any like them.

The file names say each file's role, from their last token (2020+: ``<case>_t1ce.nii.gz``,
``<case>_seg.nii.gz``; 2023: ``<case>-t2f.nii.gz``) or their first (2015, z-scored:
``Flair_subtrMeanDivStd.nii.gz``, ``OTMultiClass.nii.gz``). The images become the channels in
:data:`~seg_core.scans.scan.CANONICAL_MODALITIES` order; a label file becomes ``Scan.label`` and a
brain mask ``meta["brainmask"]``.
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

import numpy as np

from . import limits
from .base import FileGroup
from .files import ScanFile, natural_key, strip_ext
from .limits import ScanError
from .nifti import NIFTI_KINDS, NiftiVolume, nifti_data, open_nifti
from .orientation import to_display_labels, volume_scan
from .scan import CANONICAL_MODALITIES, MODALITY_ALIASES, UNSPECIFIED, Scan, add_note

logger = logging.getLogger(__name__)

_LABEL_TOKENS = {"seg", "otmulticlass", "label", "labels", "mask", "gt", "truth"}
_ROLE_WORDS = {
    "t1": "T1",
    "t1c": "T1 post-contrast",
    "t2": "T2",
    "flair": "FLAIR",
    "label": "label file",
    "brainmask": "brain mask",
}


class BratsReader:
    """Several NIfTI files of one case: the contrasts as channels, plus an optional label and brain mask."""

    kinds: ClassVar[frozenset[str]] = NIFTI_KINDS
    guessed_kinds: ClassVar[frozenset[str]] = frozenset()
    what: ClassVar[str] = "NIfTI volumes"

    def can_read(self, group: FileGroup) -> bool:
        return len(group.files) > 1

    def read(self, group: FileGroup) -> Scan:
        roles, unknown = _roles(group.files)
        image_roles = [m for m in CANONICAL_MODALITIES if m in roles]
        images, unknown = _images(roles, unknown, image_roles)
        opened = _open_images(images)
        ref = opened[0][1]
        ref_affine = np.asarray(ref.image.affine, dtype=float)
        aux = {role: open_nifti(roles[role]) for role in ("label", "brainmask") if role in roles}
        _check_same_grid(ref, [n for _, n in opened[1:]] + list(aux.values()), ref_affine)
        data = np.concatenate([nifti_data(n) for _, n in opened], axis=3)
        is_brats = bool(image_roles) and (len(opened) > 1 or bool(aux))
        scan = volume_scan(
            data,
            ref_affine,
            name=group.case_name,
            source_format="brats" if is_brats else "nifti",
            modalities=tuple(m for m, _ in opened),
            header=ref.image.header,
        )
        scan.meta["files"] = {m: f.basename for m, f in images}
        if unknown:
            scan.meta["ignored_files"] = sorted(u.basename for u in unknown)
            add_note(scan, f"ignored {len(unknown)} NIfTI file(s) of unknown contrast")
        if is_brats:
            scan.meta["brats_layout"] = brats_layout([f.basename for f in group.files])
        if "label" in aux:
            _attach_label(scan, aux["label"], roles["label"])
        if "brainmask" in aux:
            brain = nifti_data(aux["brainmask"])[..., 0]
            scan.meta["brainmask"] = to_display_labels((np.nan_to_num(brain) > 0.5).astype(np.uint8), scan)
            scan.meta["files"]["brainmask"] = roles["brainmask"].basename
        return scan


def nifti_role(basename: str) -> str | None:
    """Modality or role of a case file from its name: 't1'|'t1c'|'t2'|'flair'|'label'|'brainmask'|None."""
    tokens = [t for t in re.split(r"[_\-.\s]+", strip_ext(basename).lower()) if t]
    if not tokens:
        return None
    if tokens[-1] == "brainmask" or tokens[-2:] == ["brain", "mask"]:
        return "brainmask"
    for token in (tokens[-1], tokens[0]):  # 2020+: <case>_t1ce ; 2015: Flair_subtrMeanDivStd
        if token in MODALITY_ALIASES:
            return MODALITY_ALIASES[token]
        if token in _LABEL_TOKENS:
            return "label"
    return None


def brats_layout(names: list[str]) -> str:
    """'2015' (z-scored, ``Flair_subtrMeanDivStd``), '2023' (``-t2f``) or '2020' (``_t1ce``) naming."""
    lower = " ".join(n.lower() for n in names)
    if "subtrmeandivstd" in lower or "otmulticlass" in lower:
        return "2015"
    if re.search(r"[-_](t1n|t2f|t2w)\.nii", lower):
        return "2023"
    return "2020"


def _roles(files: list[ScanFile]) -> tuple[dict[str, ScanFile], list[ScanFile]]:
    """Files by role, and the files whose names give none; two files of one role are refused."""
    roles: dict[str, ScanFile] = {}
    unknown: list[ScanFile] = []
    for f in sorted(files, key=lambda g: natural_key(g.name)):
        role = nifti_role(f.basename)
        if role is None:
            unknown.append(f)
            continue
        if role in roles:
            raise ScanError(
                f"Two files look like the same {_ROLE_WORDS.get(role, role)}: '{roles[role].basename}' and '{f.basename}'. "
                "Upload one case at a time."
            )
        roles[role] = f
    return roles, unknown


def _images(
    roles: dict[str, ScanFile], unknown: list[ScanFile], image_roles: list[str]
) -> tuple[list[tuple[str, ScanFile]], list[ScanFile]]:
    """(modality, file) of the channels, and the files left unused; one unnamed file is a single channel."""
    if image_roles:
        if unknown:
            logger.info("Ignored %d NIfTI file(s) whose names do not say which contrast they hold", len(unknown))
        return [(m, roles[m]) for m in image_roles], unknown
    if len(unknown) == 1:
        return [(UNSPECIFIED, unknown[0])], []
    names = ", ".join(f"'{u.basename}'" for u in unknown[:6])
    raise ScanError(
        f"Several NIfTI files whose contrast cannot be told from their names ({names}). Name them like a BraTS case "
        "(<case>_t1.nii.gz, _t1ce, _t2, _flair, _seg) or upload one file."
    )


def _open_images(images: list[tuple[str, ScanFile]]) -> list[tuple[str, NiftiVolume]]:
    """Open each channel's file, the voxel limit shared by all of them."""
    budget = limits.MAX_VOXELS
    opened: list[tuple[str, NiftiVolume]] = []
    for modality, f in images:
        nii = open_nifti(f, budget)
        if nii.shape[3] != 1:
            raise ScanError(f"'{f.basename}' is 4D ({nii.shape[3]} volumes); each file of a case must be one 3D volume.")
        budget -= nii.voxels
        opened.append((modality, nii))
    return opened


def _check_same_grid(ref: NiftiVolume, others: list[NiftiVolume], ref_affine: np.ndarray) -> None:
    for nii in others:
        if nii.shape[:3] != ref.shape[:3]:
            raise ScanError(
                f"'{nii.name}' is {_xyz(nii.shape)} voxels but '{ref.name}' is {_xyz(ref.shape)}; "
                "all files of one case must share the same grid."
            )
        if not np.allclose(np.asarray(nii.image.affine, dtype=float), ref_affine, atol=1e-3):
            logger.warning("The files of one case have slightly different affines; using the first image's")


def _attach_label(scan: Scan, label: NiftiVolume, label_file: ScanFile) -> None:
    """The label file's classes in ``meta["label_classes"]``, and tumour vs background as ``scan.label``."""
    classes = nifti_data(label)[..., 0]
    finite = np.isfinite(classes)
    if not finite.all() or classes.min() < 0 or classes.max() > 255:
        raise ScanError(f"The label file '{label.name}' holds values outside 0..255; it is not a segmentation.")
    classes_u8 = np.rint(classes).astype(np.uint8)
    display = to_display_labels(classes_u8, scan)
    scan.meta["label_classes"] = display
    scan.meta["files"]["label"] = label_file.basename
    scan.label = (display > 0).astype(np.uint8)


def _xyz(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape[:3])
