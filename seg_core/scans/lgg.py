"""Stacks of 2D slices in one folder, with optional ``*_mask.*`` files as ground truth.

This is the LGG ``kaggle_3m`` layout (``<case>_<n>.tif`` + ``<case>_<n>_mask.tif``), and any folder,
file list or ZIP of PNG / JPEG / TIFF slices. Slices are ordered by natural sort of their names.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from . import limits
from .base import FileGroup
from .detect import image_kind
from .files import ScanFile, natural_key, strip_ext
from .images import LGG_SLICE_NAME, MASK_STEM, ImageReader, Page, decode_image, image_meta, stack_pages
from .limits import ScanError
from .scan import Scan, add_note

logger = logging.getLogger(__name__)


class SliceStackReader:
    """Several 2D images of one case (or one image with its mask) as a volume of slices."""

    kinds: ClassVar[frozenset[str]] = ImageReader.kinds
    guessed_kinds: ClassVar[frozenset[str]] = frozenset()
    what: ClassVar[str] = ImageReader.what

    def can_read(self, group: FileGroup) -> bool:
        return True

    def read(self, group: FileGroup) -> Scan:
        images, masks = _split_masks(group.files)
        pages = _decode_slices(images)
        lgg_case = all(LGG_SLICE_NAME.match(strip_ext(f.basename)) for f in images)
        array, modalities = stack_pages([p for _, p in pages], keep_colour=lgg_case)
        notes: list[str] = []
        if lgg_case and len(modalities) == 3 and np.array_equal(array[0], array[1]) and np.array_equal(array[1], array[2]):
            notes.append("its three channels are one image repeated: the LGG release fills a missing sequence so")
        label = _stack_label(images, masks, pages, notes) if masks else None
        kinds = {p.kind for _, p in pages}
        single = len(pages) == 1
        # A stack unpacked from a ZIP is reported as "zip"; from a folder or file list, as its image format.
        fmt = "zip" if (group.depth > 0 and not single) or len(kinds) > 1 else kinds.pop()
        scan = Scan(
            array=np.ascontiguousarray(array, dtype=np.float32),
            modalities=modalities,
            spacing=(1.0, 1.0, 1.0),
            affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
            source_format=fmt,
            name=strip_ext(images[0].basename) if single else group.case_name,
            is_2d=single,
            label=label,
            meta=image_meta(array.shape[1:]),
        )
        scan.meta["slice_files"] = [f.basename for f in images]
        if not single:
            notes.append("slice spacing not stored in 2D images; assumed 1 mm")
        for n in notes:
            add_note(scan, n)
        return scan


def _split_masks(files: list[ScanFile]) -> tuple[list[ScanFile], dict[tuple[str, str], ScanFile]]:
    """The slice images in natural order, and the masks by (folder, image stem); one folder only."""
    images: list[ScanFile] = []
    masks: dict[tuple[str, str], ScanFile] = {}
    for f in files:
        stem = strip_ext(f.basename)
        if MASK_STEM.search(stem):
            masks[(f.folder, MASK_STEM.sub("", stem).lower())] = f
        else:
            images.append(f)
    if not images:
        raise ScanError("The upload holds only mask files (*_mask.*); add the images they belong to.")
    folders = sorted({f.folder for f in images})
    if len(folders) > 1:
        shown = ", ".join(f"'{d}'" for d in folders[:4])
        raise ScanError(f"The upload holds images in several folders ({shown}); upload one case (one folder) at a time.")
    images.sort(key=lambda g: natural_key(g.name))
    return images, masks


def _decode_slices(images: list[ScanFile]) -> list[tuple[str, Page]]:
    """Every page of every image, the voxel limit shared by all; all must be the same size."""
    budget = limits.MAX_VOXELS
    pages: list[tuple[str, Page]] = []
    for f in images:
        decoded = decode_image(f, image_kind(f), budget)
        for p in decoded:
            budget -= p.pixels.size  # (H, W, K): the values this page adds, K = 1 (gray) or 3 (colour)
            pages.append((f.basename, p))
    ref_name, ref = pages[0]
    for fname, p in pages[1:]:
        if p.pixels.shape[:2] != ref.pixels.shape[:2]:
            h0, w0 = ref.pixels.shape[:2]
            h, w = p.pixels.shape[:2]
            raise ScanError(
                f"Slice '{fname}' is {w}x{h} pixels but '{ref_name}' is {w0}x{h0}; all slices of a stack must be the same size."
            )
    return pages


def _stack_label(
    images: list[ScanFile], masks: dict[tuple[str, str], ScanFile], pages: list[tuple[str, Page]], notes: list[str]
) -> np.ndarray | None:
    """The masks as ``(D, H, W)`` uint8 0/1 when every slice has one; otherwise None and a note."""
    mask_files = [masks.get((f.folder, strip_ext(f.basename).lower())) for f in images]
    found = [m for m in mask_files if m is not None]
    if len(found) != len(images) or len(pages) != len(images):
        notes.append(f"masks given for only some slices ({len(images) - len(found)} missing); no ground truth loaded")
        logger.warning("Slice stack with incomplete masks; ignoring the masks")
        return None
    size = pages[0][1].pixels.shape[:2]
    planes = []
    for img, m in zip(images, found, strict=True):
        mp = decode_image(m, image_kind(m))[0].pixels
        if mp.shape[:2] != size:
            raise ScanError(f"Mask '{m.basename}' is not the same size as its image '{img.basename}'.")
        planes.append((mp > 0).any(axis=2))
    return np.stack(planes).astype(np.uint8)
