"""Faithfulness of an attribution map: the deletion curve.

The most salient pixels are deleted first (set to black, the background of a normalised scan) and
the prediction re-measured (its Dice against the original region, and its mean tumor probability
there). A faithful map makes the curve fall fast; random deletion order is the reference. The area
under the curve (lower is better) ranks methods on this scan (Petsiuk et al. 2018, RISE; Samek et
al. 2017).

References:
    V. Petsiuk, A. Das, K. Saenko. RISE: Randomized Input Sampling for Explanation of Black-box
    Models. BMVC 2018.
    W. Samek et al. Evaluating the Visualization of What a Deep Neural Network Has Learned. IEEE
    TNNLS 28(11), 2017.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from seg_core.explain.inputs import check_input

__all__ = [
    "COMPLETENESS_LIMIT",
    "DELETION_FRACTIONS",
    "DELETION_MEANING",
    "DeletionCurve",
    "deletion_curve",
    "random_deletion_curve",
]

#: What the deletion test measures, in one plain sentence for the reader of a verdict.
DELETION_MEANING = (
    "Faithful means the map points at what the model really uses: deleting the pixels it ranks highest "
    "makes the tumor prediction vanish fastest, so a lower area under the deletion curve is better."
)

#: Largest completeness error (Integrated Gradients' ``convergence_delta``: how far its attributions
#: miss the score they explain, relative to it) at which a map is still said to account for the score.
#: Above it, a method may rank well on the deletion curve but its numbers do not add up, and every
#: verdict that names it says so.
COMPLETENESS_LIMIT = 0.10

#: Fractions of the image's pixels deleted at each point of a deletion curve. Tumors cover a few
#: percent of a slice, so the curve is sampled densely at small fractions.
DELETION_FRACTIONS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)


@dataclass
class DeletionCurve:
    """The prediction as the most salient pixels are deleted first.

    Attributes:
        method: the method whose ranking was used (``"random"`` for the reference).
        fractions: fraction of the image's pixels deleted at each point, ``(K,)``.
        dice: Dice of the prediction on the damaged image against the original region, ``(K,)``.
        probability: mean tumor probability inside the original region, ``(K,)``.
        spread: for the random reference, the standard deviation of ``dice`` over the repeats.
    """

    method: str
    fractions: np.ndarray
    dice: np.ndarray
    probability: np.ndarray
    spread: np.ndarray | None = None

    @staticmethod
    def _area(fractions: np.ndarray, values: np.ndarray) -> float:
        span = float(fractions[-1] - fractions[0])
        if span <= 0:
            return float(values[0])
        return float(np.trapezoid(values, fractions) / span)

    @property
    def auc_dice(self) -> float:
        """Area under the Dice curve, normalised to [0, 1]; lower means the ranking found what matters."""
        return self._area(self.fractions, self.dice)

    @property
    def auc_probability(self) -> float:
        """Area under the probability curve, normalised to [0, 1]; lower is better."""
        return self._area(self.fractions, self.probability)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fractions": self.fractions.tolist(),
            "dice": self.dice.tolist(),
            "probability": self.probability.tolist(),
            "auc_dice": self.auc_dice,
            "auc_probability": self.auc_probability,
        }


def _damaged_scores(
    model: nn.Module,
    x: torch.Tensor,
    orders: list[torch.Tensor],
    region: torch.Tensor,
    fractions: np.ndarray,
    threshold: float,
    fill: float,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Dice and region probability for every (order, fraction): arrays ``(len(orders), K)``."""
    height, width = x.shape[-2:]
    total = height * width
    counts = [int(round(f * total)) for f in fractions]
    images = []
    for order in orders:
        for count in counts:
            keep = torch.ones(total, dtype=x.dtype)
            keep[order[:count]] = 0
            keep = keep.view(1, 1, height, width)
            images.append(x * keep + fill * (1 - keep))
    batch = torch.cat(images)
    region_f = region.float()
    region_pixels = float(region_f.sum())
    dice, probability = [], []
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            probs = torch.sigmoid(model(batch[start : start + batch_size])[:, 0].float())
            predicted = (probs >= threshold).float()
            overlap = (predicted * region_f).sum(dim=(1, 2))
            denominator = predicted.sum(dim=(1, 2)) + region_pixels
            dice.append(torch.where(denominator > 0, 2 * overlap / denominator.clamp(min=1e-9), torch.ones_like(overlap)))
            probability.append((probs * region_f).sum(dim=(1, 2)) / max(region_pixels, 1.0))
    shape = (len(orders), len(counts))
    return torch.cat(dice).view(shape).numpy(), torch.cat(probability).view(shape).numpy()


def _ranking(heatmap: np.ndarray, seed: int = 0) -> torch.Tensor:
    """Pixel indices, most salient first; ties broken at random (reproducibly)."""
    values = np.asarray(heatmap, dtype=np.float64).ravel()
    tiebreak = np.random.default_rng(seed).random(values.size)
    return torch.from_numpy(np.lexsort((tiebreak, -values)).copy())


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    heatmap: np.ndarray,
    region: torch.Tensor,
    *,
    method: str = "",
    fractions: tuple[float, ...] = DELETION_FRACTIONS,
    threshold: float = 0.5,
    fill: float = 0.0,
    batch_size: int = 16,
) -> DeletionCurve:
    """Delete pixels in the order of ``heatmap`` (most salient first) and follow the prediction.

    Args:
        model: segmentation network.
        x: one normalised input ``(1, C, H, W)``.
        heatmap: ``(H, W)``, higher = more important.
        region: the explained region ``(H, W)`` (from :func:`tumor_region`).
        method: name recorded in the curve.
        fractions: fractions of all pixels deleted, increasing, starting at 0.
        threshold: probability threshold for the Dice.
        fill: value a deleted pixel takes in every channel (0: black, the background of a normalised scan).
        batch_size: images per forward pass.
    """
    check_input(x)
    if tuple(np.shape(heatmap)) != tuple(x.shape[-2:]):
        raise ValueError(f"heatmap shape {np.shape(heatmap)} does not match the input's {tuple(x.shape[-2:])}")
    points = np.asarray(fractions, dtype=np.float64)
    dice, probability = _damaged_scores(
        model, x.detach().float(), [_ranking(heatmap)], region, points, threshold, fill, batch_size
    )
    return DeletionCurve(method, points, dice[0], probability[0])


def random_deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    region: torch.Tensor,
    *,
    repeats: int = 3,
    seed: int = 0,
    fractions: tuple[float, ...] = DELETION_FRACTIONS,
    threshold: float = 0.5,
    fill: float = 0.0,
    batch_size: int = 16,
) -> DeletionCurve:
    """The reference curve: pixels deleted in random order, averaged over ``repeats`` orders."""
    check_input(x)
    generator = torch.Generator().manual_seed(seed)
    total = x.shape[-2] * x.shape[-1]
    orders = [torch.randperm(total, generator=generator) for _ in range(repeats)]
    points = np.asarray(fractions, dtype=np.float64)
    dice, probability = _damaged_scores(model, x.detach().float(), orders, region, points, threshold, fill, batch_size)
    return DeletionCurve("random", points, dice.mean(axis=0), probability.mean(axis=0), spread=dice.std(axis=0))
