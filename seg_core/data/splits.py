"""Patient-level splits: made once with a seed (stratified where a dataset has strata), committed under ``splits/``."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from seg_core.data.base import DatasetError

SPLITS_DIR = Path(__file__).resolve().parents[2] / "splits"
SPLIT_NAMES = ("train", "val", "test")


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
