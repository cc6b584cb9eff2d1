"""Running a trained model over a :class:`~seg_core.scans.Scan`: slices and volumes -> :class:`Prediction`.

The 2D models of the zoo see one slice at a time, as in training: each slice's channels are picked
to match the modalities the weights were trained on, normalised with the config's normaliser,
resized to the model's input size, run in batches under ``torch.inference_mode``, and the logits
are resized back to the slice's own size before the sigmoid and threshold. Slices with no signal
at all (padding above and below the head) are skipped and predicted empty.

Example:
    >>> from seg_core import load_scan, Segmenter
    >>> segmenter = Segmenter.from_pretrained("unet.figshare")          # doctest: +SKIP
    >>> prediction = segmenter(load_scan("slice.png"))                   # doctest: +SKIP
    >>> prediction.sizes["largest_area_mm2"]                             # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seg_core.postprocess import PostProcessing, tumor_size
from seg_core.preprocess import IntensityNormalizer, resize_images
from seg_core.scans import UNSPECIFIED, Scan, ScanError
from seg_core.weights import LoadedModel, load_model

__all__ = ["ModalityError", "Prediction", "Segmenter", "fast_bfloat16", "select_channels"]

ProgressCallback = Callable[[int, int], None]

MODALITY_TITLES = {"t1": "T1", "t1c": "T1 contrast-enhanced (T1c)", "t2": "T2", "flair": "FLAIR", UNSPECIFIED: "unspecified"}


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively (faster than float32, not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # AVX-512 BF16 or AMX: oneDNN's bfloat16 kernels run 2-3x faster than float32 there. On
        # older CPUs bfloat16 is emulated and slower, so those stay in float32.
        try:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:  # a PyTorch without these probes
            return False
    return False


class ModalityError(ScanError):
    """The scan lacks an input modality the model needs."""


def select_channels(scan: Scan, required: list[str] | tuple[str, ...], model_name: str = "this model") -> np.ndarray:
    """The scan's channels in the order ``required`` lists them, ``(len(required), D, H, W)``.

    A single channel of unknown contrast (a plain grayscale PNG) is accepted by any one-channel
    model: the user chose the model for their image, and refusing would make 2D uploads useless.

    Raises:
        ModalityError: naming what the model needs and what the scan has.
    """
    available = list(scan.modalities)
    if len(required) == 1 and available == [UNSPECIFIED]:
        return scan.array[:1]
    missing = [m for m in required if m not in available]
    if missing:
        need = ", ".join(MODALITY_TITLES.get(m, m) for m in required)
        have = ", ".join(MODALITY_TITLES.get(m, m) for m in available)
        raise ModalityError(
            f"{model_name} needs {need}; this scan has {have}. Choose a model for these sequences or upload the missing ones."
        )
    return scan.array[[available.index(m) for m in required]]


@dataclass
class Prediction:
    """A model's answer for one scan.

    Attributes:
        probabilities: tumor probability ``(D, H, W)`` float32 in [0, 1].
        mask: the post-processed binary mask ``(D, H, W)`` uint8.
        sizes: figures from :func:`seg_core.postprocess.tumor_size` (areas in mm^2, volume in mL).
        model_id: the weights that produced it.
        seconds: wall time of the model and post-processing.
    """

    probabilities: np.ndarray
    mask: np.ndarray
    sizes: dict[str, Any]
    model_id: str
    seconds: float
    postprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def slice_presence(self) -> list[bool]:
        return [bool(s.any()) for s in self.mask]


class Segmenter:
    """A loaded model ready to segment scans; safe to share between threads.

    Args:
        loaded: model and config from :func:`seg_core.weights.load_model`.
        device: where to run.
        batch_size: slices per forward pass.
        flip_tta: average the logits of the slice and its left-right mirror (test-time
            augmentation); default: what the weights' config chose on validation.
        bfloat16: run the model under bfloat16 autocast; default: when the weights' config asks
            for it (``"inference_dtype": "bfloat16"``, recorded for weights trained and validated
            that way) and the device computes bfloat16 natively. The mask can differ from a
            float32 run in a few boundary pixels.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        flip_tta: bool | None = None,
        bfloat16: bool | None = None,
    ) -> None:
        # Channels-last (NHWC) is the layout oneDNN's and cuDNN's convolutions run fastest: measured
        # 1.45x for the U-Net on a 2-core AVX-512 CPU (bfloat16 and float32), 1.1-2x across the zoo.
        self.model = loaded.model.to(device, memory_format=torch.channels_last).eval()
        self.config = loaded.config
        self.model_id = loaded.model_id
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.modalities = list(self.config["modalities"])
        self.input_size = tuple(self.config["input_size"])
        self.normalize = IntensityNormalizer.from_dict(self.config.get("normalization"))
        self.threshold = float(self.config.get("threshold", 0.5))
        # Post-processing and test-time flipping are chosen on the validation split by
        # `python -m seg_core select`, nnU-Net style, and recorded in the config.
        self.postprocessing = PostProcessing.from_dict(self.config.get("postprocessing") or {"threshold": self.threshold})
        self.flip_tta = bool(self.config.get("flip_tta", False)) if flip_tta is None else flip_tta
        if bfloat16 is None:
            bfloat16 = self.config.get("inference_dtype", "float32") == "bfloat16" and fast_bfloat16(self.device)
        self.bfloat16 = bfloat16
        # One forward pass at a time per model: spiking models carry membrane state through a
        # pass, and a cached model is shared by every session of the app.
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model: str, **kwargs: Any) -> Segmenter:
        return cls(load_model(model), **kwargs)

    def prepare(self, scan: Scan) -> np.ndarray:
        """The model's channels of ``scan``, ``(C, D, H, W)`` float32 (not yet normalised)."""
        return select_channels(scan, self.modalities, self.model_id)

    @torch.inference_mode()
    def predict_probabilities(self, scan: Scan, progress: ProgressCallback | None = None) -> np.ndarray:
        """Tumor probability ``(D, H, W)`` for every slice of ``scan``."""
        channels = self.prepare(scan)
        depth, height, width = channels.shape[1:]
        probabilities = np.zeros((depth, height, width), dtype=np.float32)
        # Empty slices carry no information; skipping them keeps volumes fast.
        occupied = [d for d in range(depth) if np.any(channels[:, d])]
        normalized = self.normalize.volume(channels)
        done = 0
        for start in range(0, len(occupied), self.batch_size):
            indices = occupied[start : start + self.batch_size]
            batch = np.stack([self.normalize.slice(channels, d, normalized) for d in indices])
            images = resize_images(torch.from_numpy(batch).to(self.device), self.input_size)
            images = images.contiguous(memory_format=torch.channels_last)
            with self._lock, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
                logits = self.model(images)
                if self.flip_tta:
                    logits = (logits + self.model(images.flip(-1)).flip(-1)) / 2
            logits = resize_images(logits.float(), (height, width))
            probabilities[indices] = torch.sigmoid(logits[:, 0]).cpu().numpy()
            done += len(indices)
            if progress is not None:
                progress(done, len(occupied))
        if progress is not None and not occupied:
            progress(0, 0)
        return probabilities

    def __call__(
        self,
        scan: Scan,
        postprocessing: PostProcessing | None = None,
        progress: ProgressCallback | None = None,
    ) -> Prediction:
        """Segment ``scan``: probabilities, post-processed mask and tumor sizes."""
        start = time.perf_counter()
        postprocessing = postprocessing or self.postprocessing
        probabilities = self.predict_probabilities(scan, progress)
        mask = postprocessing(probabilities, spacing=scan.spacing)
        sizes = tumor_size(mask, scan.spacing)
        return Prediction(probabilities, mask, sizes, self.model_id, time.perf_counter() - start, postprocessing.to_dict())
