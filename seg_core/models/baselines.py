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

Each is its own family module (:mod:`seg_core.models.naive_prior`, :mod:`seg_core.models.pixel_classifier`)
built on :mod:`seg_core.models.blocks.closed_form` (their base class) and
:mod:`seg_core.models.blocks.classical` (pixel features, estimators as tensors); this module gathers
their public names under the import path the rest of the project uses.

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

from seg_core.models.blocks.classical import (
    export_knn,
    export_ridge,
    export_tree,
    feature_names,
    knn_probability,
    pixel_features,
    ridge_probability,
    tree_probability,
)
from seg_core.models.blocks.closed_form import LOGIT_EPS, MIN_SIDE
from seg_core.models.naive_prior import NaivePrior, naive_prior
from seg_core.models.pixel_classifier import MEMBERS, PixelClassifier, pixel_classifier

__all__ = [
    "NaivePrior",
    "PixelClassifier",
    "naive_prior",
    "pixel_classifier",
    "pixel_features",
    "feature_names",
    "export_ridge",
    "export_tree",
    "export_knn",
    "ridge_probability",
    "tree_probability",
    "knn_probability",
    "MIN_SIDE",
    "LOGIT_EPS",
    "MEMBERS",
]
