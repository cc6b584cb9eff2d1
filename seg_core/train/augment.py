"""Augmentation: MONAI transforms drawn per sample, and the augmented batches the loop trains on."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

AUGMENTATIONS = ("standard", "strong")


def augmentation(seed: int, crop: int = 0, strength: str = "standard"):
    """MONAI augmentations applied to one ``{"image": (C,H,W), "mask": (1,H,W)}`` sample.

    ``"standard"``: left-right flip, rotation up to 15 degrees, scaling by up to 15 %, shifts,
    intensity scale/shift, gamma and noise. ``"strong"`` widens the geometry (30 degrees, 25 %)
    and gamma range and adds Gaussian blur and simulated low resolution, after nnU-Net's default
    2D scheme (Isensee et al. 2021), to regularise long fine-tunes that overfit the standard set.
    Up-down flips stay out of both: slices are never shown upside down.

    With ``crop``, a ``crop`` x ``crop`` patch is cut after augmentation, centred on a tumor pixel
    two times in three (on background otherwise), so a network can learn full-resolution detail at
    the cost of small inputs; it still sees whole images at validation and inference.
    """
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
        RandShiftIntensityd,
        RandSimulateLowResolutiond,
    )

    if strength not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, not {strength!r}")
    strong = strength == "strong"
    transform = Compose(
        [
            RandFlipd(keys=("image", "mask"), prob=0.5, spatial_axis=1),
            RandAffined(
                keys=("image", "mask"),
                prob=0.7,
                rotate_range=(np.pi / 6 if strong else np.pi / 12,),
                scale_range=(0.25, 0.25) if strong else (0.15, 0.15),
                translate_range=(0.06, 0.06),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandScaleIntensityd(keys="image", factors=0.15, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.08, prob=0.5),
            RandAdjustContrastd(keys="image", gamma=(0.7, 1.5) if strong else (0.75, 1.35), prob=0.3),
            RandGaussianNoised(keys="image", std=0.02, prob=0.2),
            *(
                [
                    RandGaussianSmoothd(keys="image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), prob=0.2),
                    RandSimulateLowResolutiond(keys="image", zoom_range=(0.5, 1.0), upsample_mode="bilinear", prob=0.25),
                ]
                if strong
                else []
            ),
            *(
                [
                    RandCropByPosNegLabeld(
                        keys=("image", "mask"),
                        label_key="mask",
                        spatial_size=(crop, crop),
                        pos=2,
                        neg=1,
                        num_samples=1,
                        allow_smaller=False,
                    )
                ]
                if crop
                else []
            ),
        ]
    )
    transform.set_random_state(seed=seed)
    return transform


def _one(sample: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """The sample of a transform that may return a list (MONAI's croppers with ``num_samples``)."""
    return sample[0] if isinstance(sample, list) else sample


def augmented_batch(
    arrays: dict[str, np.ndarray], indices: np.ndarray, transform, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The slices ``indices`` of ``arrays``, each augmented by ``transform``: images ``(B, C, H, W)``, masks ``(B, 1, H, W)``.

    The cached float16 images are widened to float32 one slice at a time, so the training set is never held twice.
    """
    items = [
        _one(transform({"image": arrays["images"][i].astype(np.float32), "mask": arrays["masks"][i].astype(np.float32)}))
        for i in indices
    ]
    images = torch.stack([torch.as_tensor(np.asarray(item["image"])) for item in items]).to(device)
    masks = torch.stack([torch.as_tensor(np.asarray(item["mask"])) for item in items]).to(device)
    return images, masks
