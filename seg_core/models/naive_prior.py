"""Naive prior: the per-pixel tumor frequency of the training masks, whatever the image shows.

The baseline every learned model must beat: whatever a model scores above it comes from looking at
the image. Fitted in closed form (``ModelSpec.trainable`` is False) by ``fit(images, masks)``.

Example:
    >>> import numpy as np, torch
    >>> from seg_core.models import create_model
    >>> masks = np.zeros((2, 1, 32, 32), dtype=np.uint8)
    >>> masks[:, :, 8:24, 8:24] = 1
    >>> prior = create_model("naive_prior", map_size=32).fit(np.zeros_like(masks, dtype=np.float32), masks)
    >>> int(prior.fitted_masks), float(prior.frequency.mean())
    (2, 0.25)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.closed_form import LOGIT_EPS, ClosedFormNet, as_tensor, check_training_arrays

__all__ = ["NaivePrior"]


class NaivePrior(ClosedFormNet):
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
        check_training_arrays(images, masks, self.in_channels)
        total = torch.zeros(self.map_size, self.map_size, dtype=torch.float64, device=self.frequency.device)
        for start in range(0, masks.shape[0], batch_size):
            batch = (as_tensor(masks[start : start + batch_size], self.frequency.device) >= 0.5).float()
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
        paper_config={"map_size": 64},
        lite_config={"map_size": 64},
        trainable=False,
    )
)(NaivePrior)
