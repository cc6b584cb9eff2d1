"""Classical pixel classifier: ridge regression, a CART tree and k-NN on hand-made local features, and their vote.

Classical machine learning, the baseline between the naive prior and the deep networks. scikit-learn
fits the estimators (``fit(images, masks)``; ``ModelSpec.trainable`` is False); each fitted
estimator is exported to tensors (:mod:`seg_core.models.blocks.classical`) and evaluated in torch.

Example:
    >>> import numpy as np, torch
    >>> from seg_core.models import create_model
    >>> images = np.random.default_rng(0).random((4, 1, 64, 64), dtype=np.float32)
    >>> masks = (images > 0.8).astype(np.uint8)
    >>> net = create_model("pixel_classifier", in_channels=1, n_samples=2000, n_reference=500).fit(images, masks)
    >>> sorted(net.member_probabilities(torch.from_numpy(images[:1])))
    ['knn', 'ridge', 'tree']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks import classical
from seg_core.models.blocks.closed_form import LOGIT_EPS, MIN_SIDE, ClosedFormNet, as_tensor, check_training_arrays

__all__ = ["PixelClassifier", "MEMBERS"]

log = logging.getLogger(__name__)

MEMBERS = ("ensemble", "ridge", "tree", "knn")
"""What ``PixelClassifier.forward`` may return: the soft vote or one of its members."""


class PixelClassifier(ClosedFormNet):
    """Classical machine learning per pixel: ridge, CART tree and k-NN on local features, and their soft vote.

    Every pixel is described by :func:`classical.pixel_features` (intensity, local mean and standard deviation
    at each window side in ``scales``, gradient magnitude, position), standardised with the mean and
    standard deviation of the training sample. ``fit`` draws a stratified random sample of
    ``n_samples`` training pixels, a fraction ``positive_fraction`` of them tumor, and fits with
    scikit-learn:

    * ridge regression on the 0/1 label (Hoerl & Kennard 1970), read as a probability clipped to [0, 1];
    * a CART decision tree (Breiman, Friedman, Olshen, Stone 1984) of depth ``max_depth``;
    * k nearest neighbours (Cover & Hart 1967) with ``n_neighbors`` neighbours among ``n_reference``
      reference pixels drawn from that sample (same class ratio).

    The ensemble averages the three probabilities. Tumor is rare (about 2 % of the pixels of a
    Figshare slice), so a uniform sample would hold too few tumor pixels to learn from; an equal
    (class-balanced, 0.5) sample swings the other way: at the fixed 0.5 threshold the members then
    call every bright, textured spot tumor. ``positive_fraction`` sets where the members' 0.5 lies
    between the two. The default 0.2 was chosen on Figshare validation slices (fitted on 600 training
    slices at 128 px, per-image Dice of the ensemble at threshold 0.5 on 56 validation slices: 0.14
    with 0.5, 0.27 with 0.2; 0.1 gave 0.31, but there ridge never reaches 0.5 and the ensemble falls
    to 0.14 at threshold 0.7, too close to an edge). Rescaling a balanced model's odds to the true
    prevalence (Saerens et al. 2002) was tried too and marked almost nothing as tumor: the tree's and
    k-NN's probabilities are too far from calibrated for that.

    For inference without pickle, the fitted estimators are exported to buffers of fixed size
    (see the ``export_*`` functions of :mod:`seg_core.models.blocks.classical`) and evaluated in torch; the
    tests check that torch and scikit-learn give the same probabilities. ``member`` picks the output:
    ``"ensemble"`` or one of ``"ridge"``, ``"tree"``, ``"knn"``, to evaluate each on its own. Before
    ``fit`` every member outputs 0 (background everywhere).

    References: Hoerl, Kennard. Ridge regression: biased estimation for nonorthogonal problems.
    Technometrics 1970. Breiman, Friedman, Olshen, Stone. Classification and Regression Trees.
    Wadsworth 1984. Cover, Hart. Nearest neighbor pattern classification. IEEE Trans. Inf. Theory 1967.
    Saerens, Latinne, Decaestecker. Adjusting the outputs of a classifier to new a priori
    probabilities. Neural Computation 2002 (the correction that did not help here).

    Args:
        in_channels: number of input modalities.
        scales: window sides (odd, 3 to 31 px) of the local mean and standard deviation features.
        max_depth: depth of the tree; its buffers hold ``2 ** (max_depth + 1) - 1`` nodes.
        min_samples_leaf: fewest training pixels in a leaf of the tree (smooths its probabilities).
        n_neighbors: ``k`` of k-NN.
        n_reference: size of the k-NN reference bank (a fixed buffer size).
        n_samples: training pixels for ridge and tree (fewer when one class runs short: the ratio is kept).
        ridge_alpha: L2 penalty of ridge regression, on standardised features.
        member: which probability ``forward`` returns: ``"ensemble"``, ``"ridge"``, ``"tree"`` or ``"knn"``.
        positive_fraction: fraction of tumor pixels in the training sample and the k-NN bank (0.5:
            class-balanced). It moves what the 0.5 threshold means; choose it on validation only.
        seed: seed of the pixel sampling and of the tree.

    Example:
        >>> import numpy as np, torch
        >>> images = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
        >>> masks = (images > 0.7).astype(np.uint8)
        >>> net = PixelClassifier(n_samples=1000, n_reference=200, member="tree").fit(images, masks)
        >>> probability = torch.sigmoid(net(torch.from_numpy(images)))
        >>> bool(((probability >= 0.5) == torch.from_numpy(masks).bool()).float().mean() > 0.95)
        True
    """

    def __init__(
        self,
        in_channels: int = 1,
        scales: Sequence[int] = (3, 7, 15),
        max_depth: int = 10,
        min_samples_leaf: int = 20,
        n_neighbors: int = 15,
        n_reference: int = 4000,
        n_samples: int = 40000,
        ridge_alpha: float = 1.0,
        member: str = "ensemble",
        positive_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(in_channels)
        scales = tuple(scales)
        if not scales or any(not isinstance(s, int) or s % 2 == 0 or not 3 <= s <= 2 * MIN_SIDE - 1 for s in scales):
            raise ValueError(f"scales must be odd window sides from 3 to {2 * MIN_SIDE - 1} px, got {list(scales)}")
        if member not in MEMBERS:
            raise ValueError(f"member must be one of {', '.join(MEMBERS)}; got {member!r}")
        for name, number in (("max_depth", max_depth), ("min_samples_leaf", min_samples_leaf), ("n_neighbors", n_neighbors)):
            if not isinstance(number, int) or number < 1:
                raise ValueError(f"{name} must be a positive integer, got {number!r}")
        if max_depth > 16:
            raise ValueError(f"max_depth must be at most 16 (the tree's buffers grow as 2**depth), got {max_depth}")
        if not isinstance(n_reference, int) or n_reference < n_neighbors:
            raise ValueError(f"n_reference must be an integer of at least n_neighbors={n_neighbors}, got {n_reference!r}")
        if not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an integer of at least 2, got {n_samples!r}")
        self.scales, self.max_depth, self.min_samples_leaf = scales, max_depth, min_samples_leaf
        self.n_neighbors, self.n_reference, self.n_samples = n_neighbors, n_reference, n_samples
        if not 0 < positive_fraction < 1:
            raise ValueError(f"positive_fraction must be strictly between 0 and 1, got {positive_fraction!r}")
        self.ridge_alpha, self.member, self.positive_fraction, self.seed = (
            float(ridge_alpha),
            member,
            float(positive_fraction),
            seed,
        )
        self.n_features = len(classical.feature_names(in_channels, scales))
        n_features, max_nodes = self.n_features, 2 ** (max_depth + 1) - 1
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("ridge_coef", torch.zeros(n_features))
        self.register_buffer("ridge_intercept", torch.zeros(1))
        self.register_buffer("tree_left", torch.arange(max_nodes))
        self.register_buffer("tree_right", torch.arange(max_nodes))
        self.register_buffer("tree_feature", torch.zeros(max_nodes, dtype=torch.int64))
        self.register_buffer("tree_threshold", torch.zeros(max_nodes))
        self.register_buffer("tree_value", torch.zeros(max_nodes))
        self.register_buffer("knn_bank", torch.zeros(n_reference, n_features))
        self.register_buffer("knn_labels", torch.zeros(n_reference))
        self.register_buffer("knn_size", torch.zeros(1, dtype=torch.int64))

    # ---- features -------------------------------------------------------------------------------

    def standardized_features(self, images: torch.Tensor) -> torch.Tensor:
        """Standardised :func:`classical.pixel_features` of ``(B, C, H, W)`` images as rows ``(B * H * W, F)``."""
        features = classical.pixel_features(images, self.scales)
        rows = features.permute(0, 2, 3, 1).reshape(-1, self.n_features)
        return (rows - self.feature_mean) / self.feature_std

    # ---- fitting --------------------------------------------------------------------------------

    @torch.no_grad()
    def fit(self, images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, batch_size: int = 64) -> PixelClassifier:
        """Fit ridge, tree and k-NN on a stratified sample of the pixels of ``images`` ``(N, C, H, W)``.

        ``masks`` ``(N, 1, H, W)`` mark tumor with values >= 0.5. Any float dtype is accepted: each
        batch is converted to float32 on the model's device before its features are computed.

        Returns:
            ``self``, fitted.
        """
        from sklearn.linear_model import Ridge
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.tree import DecisionTreeClassifier

        check_training_arrays(images, masks, self.in_channels)
        rng = np.random.default_rng(self.seed)
        truth = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks).reshape(-1) >= 0.5
        positives, negatives = np.flatnonzero(truth), np.flatnonzero(~truth)
        if len(positives) == 0 or len(negatives) == 0:
            raise ValueError("fit needs masks with both tumor and background pixels")
        odds = self.positive_fraction / (1 - self.positive_fraction)
        # Keep the asked class ratio even when one class runs short, by shrinking both.
        n_positive = max(1, min(round(self.n_samples * self.positive_fraction), len(positives), int(len(negatives) * odds)))
        n_negative = max(1, min(round(n_positive / odds), len(negatives)))
        chosen = np.concatenate(
            [rng.choice(positives, n_positive, replace=False), rng.choice(negatives, n_negative, replace=False)]
        )
        labels = truth[chosen].astype(np.int64)
        raw = self._features_at(images, chosen, batch_size)

        mean, std = raw.mean(0, dtype=np.float64).astype(np.float32), raw.std(0, dtype=np.float64).astype(np.float32)
        std[std < 1e-6] = 1.0  # constant features (e.g. an empty channel) stay at zero instead of dividing by zero
        self.feature_mean.copy_(torch.from_numpy(mean))
        self.feature_std.copy_(torch.from_numpy(std))
        # Standardise in torch with the stored float32 buffers, so the tree sees exactly the values inference computes.
        standardized = ((torch.from_numpy(raw) - self.feature_mean.cpu()) / self.feature_std.cpu()).numpy()

        ridge = Ridge(alpha=self.ridge_alpha).fit(standardized.astype(np.float64), labels.astype(np.float64))
        tree = DecisionTreeClassifier(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf, random_state=self.seed)
        tree.fit(standardized, labels)
        # The bank keeps the class ratio of the sample: the first pixels of each (shuffled) class.
        bank_positive = min(round(self.n_reference * n_positive / len(chosen)), n_positive)
        bank_negative = min(self.n_reference - bank_positive, n_negative)
        reference = np.concatenate([np.arange(bank_positive), n_positive + np.arange(bank_negative)])
        # sklearn's k-NN only stores its reference set; fitting it checks the inputs as sklearn would.
        KNeighborsClassifier(n_neighbors=min(self.n_neighbors, len(reference))).fit(standardized[reference], labels[reference])
        self.load_estimators(ridge, tree, standardized[reference], labels[reference])
        log.info("pixel classifier fitted on %d pixels (%d tumor), %d tree nodes", len(chosen), n_positive, tree.tree_.node_count)
        return self

    def _features_at(self, images: np.ndarray | torch.Tensor, flat_indices: np.ndarray, batch_size: int) -> np.ndarray:
        # Features of every training image would not fit in memory (2000 slices x 34 features x 128^2
        # floats is 4 GB), so compute them a batch of images at a time and keep only the chosen pixels.
        pixels_per_image = int(np.prod(images.shape[2:]))
        order = np.argsort(flat_indices, kind="stable")
        image_of = flat_indices[order] // pixels_per_image
        rows = np.empty((len(flat_indices), self.n_features), dtype=np.float32)
        device = self.feature_mean.device
        for start in range(0, images.shape[0], batch_size):
            inside = (image_of >= start) & (image_of < start + batch_size)
            if not inside.any():
                continue
            batch = as_tensor(images[start : start + batch_size], device).float()
            features = classical.pixel_features(batch, self.scales).permute(0, 2, 3, 1).reshape(-1, self.n_features)
            local = torch.from_numpy(flat_indices[order][inside] - start * pixels_per_image).to(device)
            rows[order[inside]] = features[local].cpu().numpy()
        return rows

    def load_estimators(self, ridge: Any, tree: Any, knn_bank: np.ndarray, knn_labels: np.ndarray) -> None:
        """Copy a fitted ridge, tree and k-NN reference set into the buffers (on this model's standardised features)."""
        ridge_state, tree_state = classical.export_ridge(ridge), classical.export_tree(tree, self.tree_left.numel())
        knn_state = classical.export_knn(knn_bank, knn_labels, self.n_reference)
        for name, tensor in [
            *(("ridge_" + k, v) for k, v in ridge_state.items()),
            *(("tree_" + k, v) for k, v in tree_state.items()),
            *(("knn_" + k, v) for k, v in knn_state.items()),
        ]:
            getattr(self, name).copy_(tensor)

    # ---- inference ------------------------------------------------------------------------------

    def member_probabilities(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Probabilities ``(B, 1, H, W)`` of the member(s) that ``self.member`` needs (all three for the ensemble)."""
        batch, _, height, width = images.shape
        rows = self.standardized_features(images)
        wanted = ("ridge", "tree", "knn") if self.member == "ensemble" else (self.member,)
        probabilities = {}
        for name in wanted:
            if name == "ridge":
                p = classical.ridge_probability(rows, self.ridge_coef, self.ridge_intercept)
            elif name == "tree":
                p = classical.tree_probability(
                    rows, self.tree_left, self.tree_right, self.tree_feature, self.tree_threshold, self.tree_value, self.max_depth
                )
            else:
                size = int(self.knn_size)
                p = classical.knn_probability(rows, self.knn_bank[:size], self.knn_labels[:size], self.n_neighbors)
            probabilities[name] = p.view(batch, height, width, 1).permute(0, 3, 1, 2)
        return probabilities

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = self.member_probabilities(x)
        if self.member != "ensemble":
            return torch.logit(probabilities[self.member], eps=LOGIT_EPS).to(x.dtype)
        probability = sum(probabilities.values()) / 3
        return torch.logit(probability, eps=LOGIT_EPS).to(x.dtype)


# One configuration for both presets: a closed-form fit has no paper size to scale down from.
_PAPER_CONFIG: dict[str, Any] = {
    "scales": [3, 7, 15],
    "max_depth": 10,
    "n_neighbors": 15,
    "n_reference": 4000,
    "n_samples": 40000,
}


pixel_classifier = register_model(
    ModelSpec(
        name="pixel_classifier",
        title="Classical pixel classifier (ridge + tree + k-NN)",
        family="baseline",
        reference=(
            "Hoerl & Kennard, Ridge regression, Technometrics 1970; Breiman, Friedman, Olshen & Stone, Classification and "
            "Regression Trees, 1984; Cover & Hart, Nearest neighbor pattern classification, IEEE Trans. Inf. Theory 1967."
        ),
        input_multiple=1,
        description=(
            "Classical machine learning, pixel by pixel: each pixel is described by its brightness, the average brightness "
            "and contrast of its neighbourhood at three window sizes, the edge strength and its position. A ridge regression, "
            "a decision tree and a nearest-neighbour vote, fitted on a sample of tumor and healthy pixels, each give "
            "a tumor probability; the ensemble averages the three. No deep learning, no training loop."
        ),
        paper_config=_PAPER_CONFIG,
        lite_config=_PAPER_CONFIG,
        trainable=False,
    )
)(PixelClassifier)
