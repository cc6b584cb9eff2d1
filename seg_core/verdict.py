"""What an explanation of one slice says, in words and tables: the verdict of its faithfulness test.

:func:`seg_core.explain.explain_slice` measures a deletion curve per attribution method (and one for
random order). This module turns them into what a reader needs: a table of the areas under the
curves, which method explains best, and whether it beats deleting pixels at random.

Example:
    >>> rows = [
    ...     {"method": "Saliency", "key": "saliency", "auc_dice": 0.31, "auc_probability": 0.2, "seconds": 0.1},
    ...     {"method": "Random order (reference)", "key": "random", "auc_dice": 0.72, "auc_probability": 0.6, "seconds": None},
    ... ]
    >>> verdict = faithfulness_verdict(rows)
    >>> verdict.method, verdict.beats_random
    ('Saliency', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from seg_core.explain import SliceExplanation

__all__ = ["FaithfulnessVerdict", "explained_region", "faithfulness_frame", "faithfulness_verdict"]

#: The key of the random-order reference curve in a faithfulness table.
RANDOM = "random"


@dataclass(frozen=True)
class FaithfulnessVerdict:
    """The most faithful method of a slice's explanation.

    Attributes:
        method: its title (``"Integrated Gradients"``).
        key: its key (``"integrated_gradients"``).
        auc_dice: area under its deletion curve (Dice with the original prediction); lower is better.
        random_auc_dice: the same for deleting pixels in random order.
    """

    method: str
    key: str
    auc_dice: float
    random_auc_dice: float

    @property
    def beats_random(self) -> bool:
        """Whether deleting the method's top pixels destroys the prediction faster than random deletion."""
        return self.auc_dice < self.random_auc_dice

    def sentence(self) -> str:
        """The verdict in one Markdown sentence."""
        compared = "better than" if self.beats_random else "no better than"
        return (
            f"On this slice **{self.method}** explains best: deleting its top pixels destroys the prediction "
            f"{compared} deleting random pixels."
        )


def faithfulness_verdict(table: Sequence[dict[str, Any]]) -> FaithfulnessVerdict | None:
    """The method with the smallest area under its Dice deletion curve, or None without a method or a reference.

    Args:
        table: :meth:`seg_core.explain.SliceExplanation.faithfulness_table` rows (``method``, ``key``,
            ``auc_dice``), the random-order reference among them.
    """
    reference = next((row for row in table if row["key"] == RANDOM), None)
    methods = [row for row in table if row["key"] != RANDOM]
    if reference is None or not methods:
        return None
    best = min(methods, key=lambda row: row["auc_dice"])  # the first of equals, as a stable sort would give
    return FaithfulnessVerdict(best["method"], best["key"], float(best["auc_dice"]), float(reference["auc_dice"]))


def faithfulness_frame(table: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The faithfulness table to show: method and the areas under its Dice and probability curves."""
    frame = pd.DataFrame(list(table), columns=["method", "key", "auc_dice", "auc_probability", "seconds"])
    return frame[["method", "auc_dice", "auc_probability"]].rename(
        columns={"auc_dice": "area under Dice curve", "auc_probability": "area under probability curve"}
    )


def explained_region(result: SliceExplanation, model_id: str) -> str:
    """Which pixels the explanation's score sums over, in words (the model's tumor, or its highest scores)."""
    pixels = int(result.region.sum())
    if result.region_source == "prediction":
        return f"the {pixels} pixels {model_id} marks as tumor (probability ≥ {result.threshold:.2f})"
    return f"the {pixels} pixels with the highest tumor scores ({model_id} marks no tumor on this slice)"
