"""Classical machine learning per pixel: hand-made local features, and scikit-learn estimators as tensors.

:func:`pixel_features` describes every pixel by convolution-like features that run on any size,
batch and device. The ``export_*`` functions turn fitted scikit-learn estimators (ridge regression,
a CART tree, a k-NN reference set) into fixed-size tensors, and the ``*_probability`` functions
evaluate them in torch, so a fitted model saves as safetensors and runs without pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "feature_names",
    "pixel_features",
    "export_ridge",
    "ridge_probability",
    "export_tree",
    "tree_probability",
    "export_knn",
    "knn_probability",
]


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
