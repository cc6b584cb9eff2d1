"""The Roboflow COCO export of Figshare slices (box masks), split as Figshare's patients are."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seg_core.data.base import DatasetError, Sample, natural_key, unknown_group
from seg_core.data.figshare import read_figshare_patients

logger = logging.getLogger(__name__)


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
            raise unknown_group(self.name, group, self.groups())
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
