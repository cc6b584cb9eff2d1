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
        completeness_error: how far its attributions miss the score they explain (Integrated
            Gradients), or None; above :data:`~seg_core.explain.faithfulness.COMPLETENESS_LIMIT` the
            sentence says so rather than calling the method best without a word.
        alternative: the title of the most faithful method whose numbers do add up, when the best
            ranked one's do not (None otherwise, or when there is no such method).
    """

    method: str
    key: str
    auc_dice: float
    random_auc_dice: float
    completeness_error: float | None = None
    alternative: str | None = None

    @property
    def beats_random(self) -> bool:
        """Whether deleting the method's top pixels destroys the prediction faster than random deletion."""
        return self.auc_dice < self.random_auc_dice

    @property
    def incomplete(self) -> bool:
        """Whether the best-ranked method's attributions miss the score by more than the limit."""
        # Imported here, as in the functions below: seg_core.explain loads torch, which this table module does not need.
        from seg_core.explain.faithfulness import COMPLETENESS_LIMIT

        return self.completeness_error is not None and self.completeness_error > COMPLETENESS_LIMIT

    def sentence(self) -> str:
        """The verdict in Markdown: which method, whether it beats random deletion, any caveat, and what faithful means."""
        from seg_core.explain.faithfulness import COMPLETENESS_LIMIT, DELETION_MEANING

        compared = "better than" if self.beats_random else "no better than"
        if not self.incomplete:
            verdict = (
                f"On this slice **{self.method}** explains best: deleting its top pixels destroys the prediction "
                f"{compared} deleting random pixels."
            )
        else:
            # Never "explains best" alone: its attributions do not add up to the score it explains.
            verdict = (
                f"On this slice **{self.method}** ranks best on the deletion test (deleting its top pixels destroys "
                f"the prediction {compared} deleting random pixels), but its completeness error is "
                f"{self.completeness_error:.1%}, above {COMPLETENESS_LIMIT:.0%}: its attributions do not add up to "
                "the tumor score, so read its map with care."
            )
            if self.alternative:
                verdict += f" Of the methods without that problem, **{self.alternative}** ranks best."
        return f"{verdict} {DELETION_MEANING}"


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
    from seg_core.explain.faithfulness import COMPLETENESS_LIMIT

    best = min(methods, key=lambda row: row["auc_dice"])  # the first of equals, as a stable sort would give
    error = best.get("completeness_error")
    alternative = None
    if error is not None and error > COMPLETENESS_LIMIT:
        complete = [row for row in methods if (row.get("completeness_error") or 0.0) <= COMPLETENESS_LIMIT]
        alternative = min(complete, key=lambda row: row["auc_dice"])["method"] if complete else None
    return FaithfulnessVerdict(
        best["method"],
        best["key"],
        float(best["auc_dice"]),
        float(reference["auc_dice"]),
        None if error is None else float(error),
        alternative,
    )


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
