"""Which trained models fit a scan: right inputs, trained on that kind of data, best validation figure first.

A model of the zoo can *run* on a scan when the scan holds every sequence its weights were trained
on (:func:`seg_core.inference.select_channels` decides, so the ranking never offers a model that
would then refuse the scan). It was *made for* the scan when, in addition, it was trained on the
same kind of data:

* the same kind of image: a single 2D slice, a stack of 2D image slices (PNG/TIFF, no spacing), or
  a 3D medical volume (NIfTI, DICOM, BraTS) - see :func:`scan_kind`;
* the same sequences: for images the same channels exactly (an LGG RGB slice is not a Figshare
  T1c slice although it holds a T1c channel), for volumes the model's sequences among the scan's
  (a BraTS case often brings T1 and T2 besides FLAIR and T1c).

Within each group models are ordered by their validation figure on their own data set (the Dice
``select`` chose their settings by: per patient for volume data sets, per image for slices), read
from each weights folder's ``metrics.json``: which model to preselect is a choice, and choices are
made on validation, never on test. The test figure (the leaderboard's primary figure) is reported
beside it. A model trained on other data keeps its figures, but they say nothing about this scan,
which :attr:`ModelFit.reason` says.

Example:
    >>> scan = load_scan("BraTS2021_00000/")                 # doctest: +SKIP
    >>> best_model(scan)                                      # doctest: +SKIP
    'unet.brats'
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_core.display_names import dataset_name, sequence_list
from seg_core.scans import UNSPECIFIED, Scan
from seg_core.weights import METRICS_NAME, WEIGHTS_DIR, WeightsError, list_weights, read_config

__all__ = [
    "CANNOT_RUN",
    "GROUPS",
    "MADE_FOR_SCAN",
    "OTHER_DATA",
    "ModelFit",
    "best_model",
    "choose_model",
    "fit_summary",
    "rank_models",
    "scan_kind",
]

log = logging.getLogger(__name__)

MADE_FOR_SCAN, OTHER_DATA, CANNOT_RUN = "made_for_scan", "other_data", "cannot_run"
#: The groups, in the order :func:`rank_models` lists them.
GROUPS = (MADE_FOR_SCAN, OTHER_DATA, CANNOT_RUN)

SLICE, STACK, VOLUME = "slice", "stack", "volume"
_KIND_WORDS = {SLICE: "a single 2D slice", STACK: "a stack of 2D image slices", VOLUME: "a 3D volume"}


@dataclass(frozen=True)
class TrainingData:
    """What a data set's models saw in training: kinds of scan and the words for them."""

    kinds: frozenset[str]
    words: str


# The data sets of seg_core.data, by the kind of scan each one's images come as. Figshare is single
# grayscale T1c slices; LGG kaggle_3m is per-patient stacks of RGB slices, also met one slice at a
# time; BraTS is 3D NIfTI volumes.
TRAINING_DATA = {
    "figshare": TrainingData(frozenset({SLICE}), "single T1 contrast-enhanced 2D slices (Figshare)"),
    "lgg": TrainingData(frozenset({SLICE, STACK}), "3-channel slices of pre-contrast, FLAIR and post-contrast (TCGA-LGG)"),
    "brats": TrainingData(frozenset({VOLUME}), "3D volumes with FLAIR and T1 contrast-enhanced (BraTS)"),
    "brats2015": TrainingData(frozenset({VOLUME}), "3D volumes with FLAIR and T1 contrast-enhanced (BraTS 2015)"),
    "coco": TrainingData(frozenset({SLICE}), "single 2D slices (Roboflow)"),
}


@dataclass(frozen=True)
class ModelFit:
    """How one trained model fits one scan.

    Attributes:
        model_id: the weights folder, e.g. ``"unet.brats"``.
        title: plain-words title, e.g. ``"U-Net, trained on BraTS volumes"``.
        group: ``"made_for_scan"``, ``"other_data"`` or ``"cannot_run"``.
        reason: one plain sentence: why it fits, or why not (the app shows it as the warning).
        test_dice: the model's primary test figure on its own data set, or None when not measured.
        val_dice: its validation figure (what the ranking uses), or None when not recorded.
    """

    model_id: str
    title: str
    group: str
    reason: str
    test_dice: float | None
    val_dice: float | None = None


def scan_kind(scan: Scan) -> str:
    """``"slice"`` (one 2D image), ``"stack"`` (2D image slices, no spacing recorded) or ``"volume"``."""
    if scan.is_2d:
        return SLICE
    # Image readers record that they know no pixel size; NIfTI/DICOM volumes carry their spacing.
    return VOLUME if scan.spacing_known else STACK


def _runs_on(scan: Scan, modalities: list[str]) -> bool:
    # The same rule as seg_core.inference.select_channels, which would refuse the scan otherwise.
    if len(modalities) == 1 and list(scan.modalities) == [UNSPECIFIED]:
        return True
    return all(m in scan.modalities for m in modalities)


def _same_sequences(scan: Scan, kind: str, modalities: list[str]) -> bool:
    have = set(scan.modalities)
    if have == {UNSPECIFIED}:
        # A grayscale image whose file names no sequence: any single-sequence model may be its match.
        return len(modalities) == 1
    if kind == VOLUME:
        return set(modalities) <= have
    return set(modalities) == have


def _test_figure(folder: Path, dataset: str) -> float | None:
    """The leaderboard's primary test figure of a weights folder (None when not measured)."""
    from seg_core.data import DATASETS

    path = folder / METRICS_NAME
    if not path.exists():
        return None
    try:
        test = json.loads(path.read_text()).get(f"test:{dataset}", {})
    except (json.JSONDecodeError, AttributeError):
        log.warning("%s is not valid JSON; its model is ranked without a test figure", path)
        return None
    adapter = DATASETS.get(dataset)
    if adapter is not None and adapter.volumetric:
        # Per patient, as seg_core.leaderboard ranks volume data sets (per slice, every empty slice
        # predicted empty would count as a perfect 1).
        value = (test.get("per_volume") or {}).get("dice_mean")
    else:
        value = test.get("dice_mean")
    return float(value) if isinstance(value, int | float) else None


def _validation_figure(folder: Path) -> float | None:
    """The validation Dice ``select`` chose the model's settings by (None when not recorded)."""
    try:
        value = json.loads((folder / METRICS_NAME).read_text())["selection"]["chosen"]["dice_mean"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _title(architecture: str, dataset: str) -> str:
    from seg_core.models import get_spec

    try:
        name = get_spec(architecture).title
    except KeyError:
        name = architecture
    return f"{name}, trained on {dataset_name(dataset)}"


def _scan_words(scan: Scan, kind: str) -> str:
    if list(scan.modalities) == [UNSPECIFIED]:
        return f"{_KIND_WORDS[kind]} whose sequence is not stated"
    return f"{_KIND_WORDS[kind]} with {sequence_list(scan.modalities)}"


def _fit(scan: Scan, kind: str, model_id: str, folder: Path) -> ModelFit:
    config = read_config(folder)
    dataset = str(config.get("dataset", ""))
    modalities = [str(m) for m in config["modalities"]]
    title = _title(str(config["architecture"]), dataset)
    figure = _test_figure(folder, dataset)
    validation = _validation_figure(folder)
    training = TRAINING_DATA.get(dataset)
    trained_on = training.words if training else f"the {dataset or 'unrecorded'} data set"
    scan_words = _scan_words(scan, kind)
    if not _runs_on(scan, modalities):
        return ModelFit(
            model_id, title, CANNOT_RUN, f"It needs {sequence_list(modalities)}; this scan is {scan_words}.", figure, validation
        )
    if training and kind in training.kinds and _same_sequences(scan, kind, modalities):
        if list(scan.modalities) == [UNSPECIFIED]:
            reason = (
                f"Trained on {trained_on}; this image does not state its sequence, so it is read as {sequence_list(modalities)}."
            )
        else:
            reason = f"Trained on {trained_on}, like this scan."
        return ModelFit(model_id, title, MADE_FOR_SCAN, reason, figure, validation)
    if list(scan.modalities) == [UNSPECIFIED]:
        reads = f"it reads the scan as {sequence_list(modalities)}"
    else:
        reads = f"it reads only {sequence_list(modalities)}" if len(modalities) < len(scan.modalities) else ""
    reason = f"It was trained on {trained_on}, but this scan is {scan_words}" + (f"; {reads}." if reads else ".")
    return ModelFit(model_id, title, OTHER_DATA, reason, figure, validation)


def rank_models(scan: Scan, weights_dir: str | Path | None = None, model_ids: list[str] | None = None) -> list[ModelFit]:
    """Every trained model's fit to ``scan``: made for it first, then other data, then those that cannot run.

    Args:
        scan: the scan to match.
        weights_dir: the folder of weights folders (default ``weights/``).
        model_ids: the weights to consider (default: all shipped in ``weights_dir``).

    Returns:
        One :class:`ModelFit` per model, grouped in the order of :data:`GROUPS` and, within a group,
        best validation figure first (unrecorded last, ties by id).

    Raises:
        WeightsError: a model id that has no weights folder.
    """
    folder = Path(weights_dir) if weights_dir is not None else Path(WEIGHTS_DIR)
    ids = list(model_ids) if model_ids is not None else list_weights(folder)
    kind = scan_kind(scan)
    fits = []
    for model_id in ids:
        if not (folder / model_id).is_dir():
            raise WeightsError(f"No weights folder {model_id!r} in {folder}; shipped: {', '.join(list_weights(folder))}")
        fits.append(_fit(scan, kind, model_id, folder / model_id))
    order = {group: i for i, group in enumerate(GROUPS)}
    return sorted(fits, key=lambda f: (order[f.group], f.val_dice is None, -(f.val_dice or 0.0), f.model_id))


def choose_model(scan: Scan, weights_dir: str | Path | None = None) -> ModelFit:
    """The fit to preselect for ``scan``: the first of :func:`rank_models` that can run.

    Raises:
        WeightsError: when no shipped model can run on the scan, naming why for each.
    """
    fits = rank_models(scan, weights_dir)
    runnable = [fit for fit in fits if fit.group != CANNOT_RUN]
    if not runnable:
        if not fits:
            raise WeightsError(f"No trained weights in {weights_dir or WEIGHTS_DIR}; train one with python -m seg_core train")
        reasons = " ".join(f"{fit.model_id}: {fit.reason}" for fit in fits)
        raise WeightsError(f"No trained model can run on this scan. {reasons}")
    return runnable[0]


def best_model(scan: Scan, weights_dir: str | Path | None = None) -> str:
    """The id of the model to preselect for ``scan`` (what ``--model auto`` and ``model=auto`` run).

    Raises:
        WeightsError: when no shipped model can run on the scan, naming why for each.
    """
    return choose_model(scan, weights_dir).model_id


def fit_summary(fit: ModelFit) -> dict[str, Any]:
    """A :class:`ModelFit` as JSON (for the CLI and the REST API)."""
    return {
        "model_id": fit.model_id,
        "title": fit.title,
        "group": fit.group,
        "reason": fit.reason,
        "test_dice": fit.test_dice,
        "val_dice": fit.val_dice,
    }
