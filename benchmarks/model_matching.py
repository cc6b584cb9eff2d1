"""The model chosen for each scan (``--model auto``) against the one-size default, on real test cases.

Run: ``python benchmarks/model_matching.py [--data-root ../shared/data] [--default unet.figshare]``.

For every data-root sample of :mod:`seg_core.samples` (cases of the committed *test* splits: Figshare
slices, LGG stacks, BraTS 2015 and 2018 volumes) and one LGG slice on its own (the test case's slice
with the largest mask), the scan is segmented twice with the default backend: by the model
:func:`seg_core.matching.best_model` chooses, and by ``--default`` (the app's preselection before
models were matched to the scan). Printed per case: the chosen model and its group, then for each of
the two the Dice against the expert mask (whole volume), the predicted tumor volume (mL, or pixels
for images without spacing) and the part of it on slices where the expert marked no tumor.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seg_core.inference import ModalityError, Segmenter  # noqa: E402
from seg_core.matching import best_model, rank_models  # noqa: E402
from seg_core.metrics import segmentation_metrics  # noqa: E402
from seg_core.samples import list_samples, load_sample  # noqa: E402
from seg_core.scans import Scan  # noqa: E402


def _lgg_slice(scan: Scan, mask: np.ndarray) -> tuple[Scan, np.ndarray]:
    """The slice with the largest expert mask, as a single 2D image (what a user uploading one slice has)."""
    index = int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))
    single = Scan(
        array=scan.array[:, index : index + 1].copy(),
        modalities=scan.modalities,
        source_format=scan.source_format,
        name=f"{scan.name} slice {index}",
        is_2d=True,
        meta={"spacing_known": False},
    )
    return single, mask[index : index + 1]


def _figures(segmenters: dict[str, Segmenter], model_id: str, scan: Scan, truth: np.ndarray) -> str:
    segmenter = segmenters.setdefault(model_id, Segmenter.from_pretrained(model_id))
    try:
        prediction = segmenter(scan)
    except ModalityError:
        return "cannot run | | "
    mask = prediction.mask.astype(bool)
    dice = segmentation_metrics(mask, truth.astype(bool))["dice"]
    voxel_ml = float(np.prod(scan.spacing)) / 1000.0
    unit, scale = ("mL", voxel_ml) if scan.spacing_known else ("px", 1.0)
    empty_slices = ~truth.reshape(truth.shape[0], -1).any(axis=1)
    outside = float(mask[empty_slices].sum()) * scale
    return f"{dice:.3f} | {mask.sum() * scale:.2f} {unit} | {outside:.2f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("BRAINSEG_DATA_ROOT", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--default", default="unet.figshare", help="the one-size model to compare with")
    args = parser.parse_args()
    os.environ["BRAINSEG_DATA_ROOT"] = args.data_root
    cases = []
    for info in list_samples():
        if info.source == "synthetic":
            continue
        scan, mask = load_sample(info.name)
        cases.append((info.name, scan, mask))
        if info.source == "lgg" and not any(name.endswith("(one slice)") for name, _, _ in cases):
            single, single_mask = _lgg_slice(scan, mask)
            cases.append((f"{info.name} (one slice)", single, single_mask))
    print(f"default compared: {args.default}; backend: each model's default")
    print("| case | chosen (auto) | group | Dice auto | tumor auto | on tumor-free slices, auto |"
          f" Dice {args.default} | tumor {args.default} | on tumor-free slices, {args.default} |")  # fmt: skip
    print("|" + "---|" * 9)
    segmenters: dict[str, Segmenter] = {}
    for name, scan, mask in cases:
        chosen = best_model(scan)
        group = next(fit.group for fit in rank_models(scan) if fit.model_id == chosen)
        auto = _figures(segmenters, chosen, scan, mask)
        default = _figures(segmenters, args.default, scan, mask)
        print(f"| {name} | {chosen} | {group} | {auto} | {default} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
