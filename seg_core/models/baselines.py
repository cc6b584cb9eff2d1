"""Baselines every learned model must beat: a naive tumor-frequency prior and a classical pixel classifier.

Both are fitted in closed form (``ModelSpec.trainable`` is False): ``fit(images, masks)`` replaces the
gradient loop of :mod:`seg_core.train`. Their whole fitted state lives in registered buffers whose
shapes follow from the constructor config, so they save and load as safetensors like every other
model of the zoo (never pickle).

* ``naive_prior`` ignores the image: it predicts the per-pixel tumor frequency of the training masks
  (a statistical atlas). Whatever a model scores above it comes from looking at the image.
* ``pixel_classifier`` segments pixels with classical machine learning: hand-made local features
  (intensity, local mean and standard deviation at several window sizes, gradient magnitude,
  position) fed to ridge regression (Hoerl & Kennard 1970), a CART decision tree (Breiman et al.
  1984) and k nearest neighbours (Cover & Hart 1967), and their soft-vote ensemble. scikit-learn
  fits them; each fitted estimator is then exported to tensors and evaluated in torch.

Example:
    >>> import numpy as np, torch
    >>> from seg_core.models import create_model
    >>> images = np.random.default_rng(0).random((4, 1, 64, 64), dtype=np.float32)
    >>> masks = (images > 0.8).astype(np.uint8)
    >>> net = create_model("pixel_classifier", in_channels=1, n_samples=2000, n_reference=500).fit(images, masks)
    >>> net(torch.from_numpy(images)).shape
    torch.Size([4, 1, 64, 64])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.conv import SegmentationNet

__all__ = [
    "NaivePrior",
    "PixelClassifier",
    "pixel_features",
    "feature_names",
    "export_ridge",
    "export_tree",
    "export_knn",
    "ridge_probability",
    "tree_probability",
    "knn_probability",
]

log = logging.getLogger(__name__)

MIN_SIDE = 16
"""Smallest image side the baselines accept (the largest default window, 15 px, must fit)."""

LOGIT_EPS = 1e-4
"""Probabilities are clamped to ``[eps, 1 - eps]`` before the logit, so outputs stay finite (about +-9.2)."""

MEMBERS = ("ensemble", "ridge", "tree", "knn")


def _as_tensor(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array))
    return tensor.to(device)


def _check_training_arrays(images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, in_channels: int) -> None:
    if images.ndim != 4 or images.shape[1] != in_channels:
        raise ValueError(f"images must be shaped (N, {in_channels}, H, W), got {tuple(images.shape)}")
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:]:
        raise ValueError(f"masks must be shaped (N, 1, H, W) like the images {tuple(images.shape)}, got {tuple(masks.shape)}")
    if images.shape[0] == 0:
        raise ValueError("fit needs at least one image")


class _ClosedFormNet(SegmentationNet):
    """Shared input checks of the baselines: any size of at least :data:`MIN_SIDE`, no padding.

    The base class pads to ``input_multiple``; these models work per pixel at any size, and padding
    would shift the position-dependent outputs, so inputs go to :meth:`forward_features` unpadded.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(input_multiple=MIN_SIDE)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images shaped (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"this model takes {self.in_channels} channel(s), got {x.shape[1]} in shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height < MIN_SIDE or width < MIN_SIDE:
            raise ValueError(f"input {height}x{width} is too small for this model; use at least {MIN_SIDE}x{MIN_SIDE} pixels")
        return self.forward_features(x)


# --------------------------------------------------------------------------------------------------
# Naive prior
# --------------------------------------------------------------------------------------------------


class NaivePrior(_ClosedFormNet):
    """Per-pixel tumor frequency of the training masks, whatever the image shows (a statistical atlas).

    ``fit`` averages the training masks, area-resized to ``map_size x map_size``, into a frequency
    map ``p(y, x)``. ``forward`` resizes the map bilinearly to the input's size and returns
    ``logit(p)`` (clamped to ``[1e-4, 1 - 1e-4]``) for every image of the batch. With the usual
    threshold 0.5 (``sigmoid(logit) >= 0.5``) it marks the pixels that are tumor in at least half of
    the training masks; on data where tumors are small and scattered that is often nothing at all,
    which is the point: a model has to look at the image to do better. Any other threshold must be
    chosen on the validation split only. Before ``fit`` the map is zero (background everywhere).

    Reference: the frequency (probabilistic) atlas used as a segmentation prior, e.g. Van Leemput,
    Maes, Vandermeulen, Suetens. Automated model-based tissue classification of MR images of the
    brain. IEEE TMI 1999.

    Args:
        in_channels: number of input modalities (read only to check the input).
        map_size: side of the stored frequency map in pixels.

    Example:
        >>> import numpy as np, torch
        >>> masks = np.zeros((4, 1, 64, 64), dtype=np.uint8)
        >>> masks[:3, :, 20:40, 20:40] = 1  # the same square in three of four masks
        >>> prior = NaivePrior(map_size=64).fit(np.zeros((4, 1, 64, 64), np.float32), masks)
        >>> float(prior.frequency[30, 30])
        0.75
        >>> (torch.sigmoid(prior(torch.zeros(1, 1, 64, 64))) >= 0.5).sum().item()
        400
    """

    def __init__(self, in_channels: int = 1, map_size: int = 64) -> None:
        super().__init__(in_channels)
        if not isinstance(map_size, int) or map_size < 1:
            raise ValueError(f"map_size must be a positive integer, got {map_size!r}")
        self.map_size = map_size
        self.register_buffer("frequency", torch.zeros(map_size, map_size))
        # How many masks the map averages (0: not fitted); kept so a loaded model can tell.
        self.register_buffer("fitted_masks", torch.zeros(1, dtype=torch.int64))

    @torch.no_grad()
    def fit(self, images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, batch_size: int = 256) -> NaivePrior:
        """Set the map to the mean of ``masks`` ``(N, 1, H, W)`` (values >= 0.5 are tumor); images are not used.

        Returns:
            ``self``, fitted.
        """
        _check_training_arrays(images, masks, self.in_channels)
        total = torch.zeros(self.map_size, self.map_size, dtype=torch.float64, device=self.frequency.device)
        for start in range(0, masks.shape[0], batch_size):
            batch = (_as_tensor(masks[start : start + batch_size], self.frequency.device) >= 0.5).float()
            # Area averaging: each map cell holds the tumor fraction of the pixels it covers.
            resized = F.interpolate(batch, size=(self.map_size, self.map_size), mode="area")
            total += resized.sum(dim=(0, 1), dtype=torch.float64)
        self.frequency.copy_(total / masks.shape[0])
        self.fitted_masks.fill_(masks.shape[0])
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        frequency = F.interpolate(self.frequency[None, None], size=(height, width), mode="bilinear", align_corners=False)
        return torch.logit(frequency, eps=LOGIT_EPS).expand(batch, 1, height, width).to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Pixel features
# --------------------------------------------------------------------------------------------------


def feature_names(in_channels: int, scales: Sequence[int]) -> list[str]:
    """Names of the :func:`pixel_features` channels, in order (``c`` indexes the input channel)."""
    names = [f"intensity[c{c}]" for c in range(in_channels)]
    for scale in scales:
        names += [f"mean{scale}[c{c}]" for c in range(in_channels)]
        names += [f"std{scale}[c{c}]" for c in range(in_channels)]
    names += [f"gradient[c{c}]" for c in range(in_channels)]
    return names + ["y", "x"]


def pixel_features(images: torch.Tensor, scales: Sequence[int] = (3, 7, 15)) -> torch.Tensor:
    """Per-pixel features of images ``(B, C, H, W)``, as ``(B, C * (2 + 2 * len(scales)) + 2, H, W)`` float32.

    Per input channel: the intensity; for every window side ``s`` in ``scales`` the local mean and
    (population) standard deviation over the ``s x s`` window; the Sobel gradient magnitude. Then the
    pixel's position ``y`` and ``x`` as fractions of the height and width (pixel centres, in (0, 1)).
    Borders are reflect-padded, so a window never averages in zeros that are not in the image.
    Everything is convolution-like, so it runs on any size, batch and device. Order: see
    :func:`feature_names`.
    """
    x = images.float()
    batch, channels, height, width = x.shape
    parts = [x]
    for scale in scales:
        radius = scale // 2
        padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
        mean = F.avg_pool2d(padded, scale, stride=1)
        mean_of_squares = F.avg_pool2d(padded * padded, scale, stride=1)
        # E[x^2] - E[x]^2 can dip below zero by rounding; clamp before the square root.
        parts += [mean, (mean_of_squares - mean * mean).clamp_min(0).sqrt()]
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device) / 8
    kernels = torch.stack([sobel, sobel.T])[:, None].repeat(channels, 1, 1, 1)  # (2C, 1, 3, 3): d/dx, d/dy per channel
    gradients = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernels, groups=channels)
    parts.append(gradients.view(batch, channels, 2, height, width).pow(2).sum(2).sqrt())
    ys = (torch.arange(height, device=x.device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=x.device, dtype=torch.float32) + 0.5) / width
    parts += [ys.view(1, 1, height, 1).expand(batch, 1, height, width), xs.view(1, 1, 1, width).expand(batch, 1, height, width)]
    return torch.cat(parts, dim=1)


# --------------------------------------------------------------------------------------------------
# scikit-learn estimators exported to tensors, and their torch evaluation
# --------------------------------------------------------------------------------------------------


def export_ridge(ridge: Any) -> dict[str, torch.Tensor]:
    """A fitted ``sklearn.linear_model.Ridge`` (one target) as ``coef (F,)`` and ``intercept (1,)`` float32."""
    coef = np.asarray(ridge.coef_, dtype=np.float64).reshape(-1)
    intercept = np.asarray(ridge.intercept_, dtype=np.float64).reshape(1)
    return {"coef": torch.from_numpy(coef.astype(np.float32)), "intercept": torch.from_numpy(intercept.astype(np.float32))}


def ridge_probability(features: torch.Tensor, coef: torch.Tensor, intercept: torch.Tensor) -> torch.Tensor:
    """Ridge regression on 0/1 labels as a probability: ``clip(features @ coef + intercept, 0, 1)`` for ``(P, F)``."""
    return (features @ coef + intercept).clamp(0.0, 1.0)


def export_tree(tree: Any, max_nodes: int) -> dict[str, torch.Tensor]:
    """A fitted binary ``DecisionTreeClassifier`` as node arrays of length ``max_nodes``.

    Returns ``left``, ``right``, ``feature`` (int64), ``threshold`` and ``value`` (float32, the
    leaf's fraction of class 1). Leaves and padding nodes point to themselves, so a walk of fixed
    depth ends on the right leaf whatever its depth. sklearn goes left when the float32 feature is
    ``<=`` its float64 threshold; storing the largest float32 not above that threshold makes the
    float32 comparison in torch decide exactly as sklearn does.
    """
    state = tree.tree_
    n_nodes = state.node_count
    if n_nodes > max_nodes:
        raise ValueError(f"the tree has {n_nodes} nodes, more than the {max_nodes} its buffers hold; lower max_depth")
    if list(tree.classes_) != [0, 1]:
        raise ValueError(f"expected a tree fitted on labels 0 and 1, got classes {list(tree.classes_)}")
    own = np.arange(max_nodes, dtype=np.int64)
    left, right, feature = own.copy(), own.copy(), np.zeros(max_nodes, dtype=np.int64)
    threshold, value = np.zeros(max_nodes, dtype=np.float32), np.zeros(max_nodes, dtype=np.float32)
    split = state.children_left >= 0
    left[:n_nodes] = np.where(split, state.children_left, own[:n_nodes])
    right[:n_nodes] = np.where(split, state.children_right, own[:n_nodes])
    feature[:n_nodes] = np.where(split, state.feature, 0)
    exact = np.where(split, state.threshold, 0.0)
    rounded = exact.astype(np.float32)
    rounded = np.where(rounded > exact, np.nextafter(rounded, np.float32(-np.inf)), rounded)
    threshold[:n_nodes] = rounded
    counts = state.value[:, 0, :]  # (n_nodes, 2): class fractions (or counts, in older sklearn)
    value[:n_nodes] = (counts[:, 1] / np.maximum(counts.sum(axis=1), 1e-300)).astype(np.float32)
    names = ("left", "right", "feature", "threshold", "value")
    return {name: torch.from_numpy(array) for name, array in zip(names, (left, right, feature, threshold, value), strict=True)}


def tree_probability(
    features: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    feature: torch.Tensor,
    threshold: torch.Tensor,
    value: torch.Tensor,
    depth: int,
) -> torch.Tensor:
    """Class-1 probability of a tree exported by :func:`export_tree` for features ``(P, F)``: all pixels walk in step."""
    node = torch.zeros(features.shape[0], dtype=torch.int64, device=features.device)
    for _ in range(depth):
        tested = features.gather(1, feature[node][:, None])[:, 0]
        node = torch.where(tested <= threshold[node], left[node], right[node])
    return value[node]


def export_knn(bank: np.ndarray, labels: np.ndarray, max_references: int) -> dict[str, torch.Tensor]:
    """A k-NN reference set (what ``KNeighborsClassifier.fit`` was given) as fixed-size tensors.

    Returns ``bank (max_references, F)`` and ``labels (max_references,)`` float32, zero-padded, and
    ``size (1,)``, the number of rows in use.
    """
    bank, labels = np.asarray(bank, dtype=np.float32), np.asarray(labels, dtype=np.float32).reshape(-1)
    if len(bank) > max_references:
        raise ValueError(f"the neighbour bank has {len(bank)} samples, more than the {max_references} its buffers hold")
    padded_bank = np.zeros((max_references, bank.shape[1]), dtype=np.float32)
    padded_labels = np.zeros(max_references, dtype=np.float32)
    padded_bank[: len(bank)], padded_labels[: len(bank)] = bank, labels
    return {
        "bank": torch.from_numpy(padded_bank),
        "labels": torch.from_numpy(padded_labels),
        "size": torch.tensor([len(bank)], dtype=torch.int64),
    }


def knn_probability(features: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Fraction of class 1 among the ``k`` nearest (Euclidean) rows of ``bank`` ``(R, F)``, for features ``(P, F)``.

    Pixels go in chunks so the ``chunk x R`` distance matrix stays small. Uniform weights, as
    sklearn's default; which of several equidistant neighbours counts may differ from sklearn.
    """
    k = min(k, bank.shape[0])
    if k == 0:  # not fitted: no neighbours, no tumor
        return features.new_zeros(features.shape[0])
    out = []
    for start in range(0, features.shape[0], chunk):
        distances = torch.cdist(features[start : start + chunk], bank)
        nearest = distances.topk(k, dim=1, largest=False).indices
        out.append(labels[nearest].mean(dim=1))
    return torch.cat(out)


# --------------------------------------------------------------------------------------------------
# Pixel classifier
# --------------------------------------------------------------------------------------------------


class PixelClassifier(_ClosedFormNet):
    """Classical machine learning per pixel: ridge, CART tree and k-NN on local features, and their soft vote.

    Every pixel is described by :func:`pixel_features` (intensity, local mean and standard deviation
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
    (see :func:`export_ridge`, :func:`export_tree`, :func:`export_knn`) and evaluated in torch; the
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
        self.n_features = len(feature_names(in_channels, scales))
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
        """Standardised :func:`pixel_features` of ``(B, C, H, W)`` images as rows ``(B * H * W, F)``."""
        features = pixel_features(images, self.scales)
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

        _check_training_arrays(images, masks, self.in_channels)
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
            batch = _as_tensor(images[start : start + batch_size], device).float()
            features = pixel_features(batch, self.scales).permute(0, 2, 3, 1).reshape(-1, self.n_features)
            local = torch.from_numpy(flat_indices[order][inside] - start * pixels_per_image).to(device)
            rows[order[inside]] = features[local].cpu().numpy()
        return rows

    def load_estimators(self, ridge: Any, tree: Any, knn_bank: np.ndarray, knn_labels: np.ndarray) -> None:
        """Copy a fitted ridge, tree and k-NN reference set into the buffers (on this model's standardised features)."""
        ridge_state, tree_state = export_ridge(ridge), export_tree(tree, self.tree_left.numel())
        knn_state = export_knn(knn_bank, knn_labels, self.n_reference)
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
                p = ridge_probability(rows, self.ridge_coef, self.ridge_intercept)
            elif name == "tree":
                p = tree_probability(
                    rows, self.tree_left, self.tree_right, self.tree_feature, self.tree_threshold, self.tree_value, self.max_depth
                )
            else:
                size = int(self.knn_size)
                p = knn_probability(rows, self.knn_bank[:size], self.knn_labels[:size], self.n_neighbors)
            probabilities[name] = p.view(batch, height, width, 1).permute(0, 3, 1, 2)
        return probabilities

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = self.member_probabilities(x)
        if self.member != "ensemble":
            return torch.logit(probabilities[self.member], eps=LOGIT_EPS).to(x.dtype)
        probability = sum(probabilities.values()) / 3
        return torch.logit(probability, eps=LOGIT_EPS).to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Registry entries
# --------------------------------------------------------------------------------------------------

_NAIVE_CONFIG: dict[str, Any] = {"map_size": 64}
_PIXEL_CONFIG: dict[str, Any] = {
    "scales": [3, 7, 15],
    "max_depth": 10,
    "n_neighbors": 15,
    "n_reference": 4000,
    "n_samples": 40000,
}


naive_prior = register_model(
    ModelSpec(
        name="naive_prior",
        title="Naive prior (tumor frequency map)",
        family="baseline",
        reference=(
            "Frequency-atlas baseline, as the probabilistic atlases of Van Leemput, Maes, Vandermeulen, Suetens. "
            "Automated model-based tissue classification of MR images of the brain. IEEE TMI 1999."
        ),
        input_multiple=1,
        description=(
            "The simplest possible baseline: it never looks at the scan. It has learned how often each pixel position was "
            "tumor in the training masks, and predicts tumor where that happened in at least half of them (often nowhere). "
            "A model that does not clearly beat it has not learned to read the image."
        ),
        paper_config=_NAIVE_CONFIG,
        lite_config=_NAIVE_CONFIG,
        trainable=False,
    )
)(NaivePrior)


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
        paper_config=_PIXEL_CONFIG,
        lite_config=_PIXEL_CONFIG,
        trainable=False,
    )
)(PixelClassifier)
