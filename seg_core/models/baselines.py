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
    >>> import torch
    >>> from seg_core.models.baselines import feature_names, pixel_features
    >>> pixel_features(torch.zeros(2, 1, 32, 32)).shape  # 8 features of the one channel, then y and x
    torch.Size([2, 10, 32, 32])
    >>> feature_names(1, scales=(3, 7, 15))[:3]
    ['intensity[c0]', 'mean3[c0]', 'std3[c0]']
"""

from __future__ import annotations

# A compatibility path: the pixel features and estimator exports lived here before the split.
from seg_core.models.blocks.classical import *  # noqa: F403
from seg_core.models.blocks.classical import __all__ as _CLASSICAL_NAMES
from seg_core.models.blocks.closed_form import LOGIT_EPS, MIN_SIDE
from seg_core.models.naive_prior import NaivePrior, naive_prior
from seg_core.models.pixel_classifier import MEMBERS, PixelClassifier, pixel_classifier

__all__ = [
    "NaivePrior",
    "PixelClassifier",
    "naive_prior",
    "pixel_classifier",
    "MIN_SIDE",
    "LOGIT_EPS",
    "MEMBERS",
    *_CLASSICAL_NAMES,
]
