"""Running a trained model over a :class:`~seg_core.scans.Scan`: slices and volumes -> :class:`Prediction`.

The 2D models of the zoo see one slice at a time, as in training: each slice's channels are picked
to match the modalities the weights were trained on, normalised with the config's normaliser,
resized to the model's input size, run in batches under ``torch.inference_mode``, and the logits
are resized back to the slice's own size before the sigmoid and threshold. Slices outside the head
(the brain mask where the case has one, else :func:`~seg_core.preprocess.head_mask`, which also
finds the constant background of z-scored volumes) are skipped and predicted empty. The forward
pass runs on a :mod:`seg_core.backends` backend: ONNX Runtime for the conventional nets on the CPU,
torch for the rest.

Example:
    >>> from seg_core import load_scan, Segmenter
    >>> segmenter = Segmenter.from_pretrained("unet.figshare")          # doctest: +SKIP
    >>> prediction = segmenter(load_scan("slice.png"))                   # doctest: +SKIP
    >>> prediction.sizes["largest_area_mm2"]                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seg_core.backends import Backend, TorchBackend, create_backend
from seg_core.postprocess import PostProcessing, tumor_size
from seg_core.preprocess import IntensityNormalizer, head_mask, resize_images
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
        backend: where the forward pass ran (``onnxruntime``, ``onnxruntime-int8``, ``torch`` or ``torch-bf16``).
    """

    probabilities: np.ndarray
    mask: np.ndarray
    sizes: dict[str, Any]
    model_id: str
    seconds: float
    postprocessing: dict[str, Any] = field(default_factory=dict)
    backend: str = "torch"

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
            that way), the device computes bfloat16 natively and the backend is torch. The mask
            can differ from a float32 run in a few boundary pixels.
        backend: ``"auto"`` (the weights' int8 graph where they ship its calibration ranges and it
            rebuilds to the validated graph, else ONNX Runtime where the model exports, else torch), ``"torch"``, ``"onnxruntime"`` (fp32),
            ``"onnxruntime-int8"``, or a ready backend object; see
            :func:`seg_core.backends.create_backend`. Built at first use,
            so the one-off export (2-9 s, then cached on disk) is not paid by explain-only uses.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        flip_tta: bool | None = None,
        bfloat16: bool | None = None,
        backend: str | Backend = "auto",
    ) -> None:
        self.model = loaded.model.eval()
        self.folder = loaded.folder
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
            bfloat16 = (
                backend == "torch" and self.config.get("inference_dtype", "float32") == "bfloat16" and fast_bfloat16(self.device)
            )
        self.bfloat16 = bfloat16
        self.backend_preference = backend
        self._backend: Backend | None = None
        self.backend_reason = ""
        # Guards the backend's creation, and the torch passes of a model that keeps state on its
        # modules during a pass (see forward): a cached model is shared by every session of the app.
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model: str, **kwargs: Any) -> Segmenter:
        return cls(load_model(model), **kwargs)

    def prepare(self, scan: Scan) -> np.ndarray:
        """The model's channels of ``scan``, ``(C, D, H, W)`` float32 (not yet normalised)."""
        return select_channels(scan, self.modalities, self.model_id)

    @property
    def backend(self) -> Backend:
        """The backend the forward pass runs on, created (and for ONNX Runtime exported) at first use."""
        with self._lock:
            if self._backend is None and not isinstance(self.backend_preference, str):
                self._backend, self.backend_reason = self.backend_preference, "given"
            elif self._backend is None:
                self._backend, self.backend_reason = create_backend(
                    self.model, self.config, self.device, self.backend_preference, self.bfloat16, self.folder
                )
        return self._backend

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Logits ``(N, 1, H, W)`` of preprocessed slices ``(N, C, H, W)``, with flip TTA if chosen."""
        backend = self.backend
        # A torch module that keeps state on itself during a pass (snn.Leaky with mem=None does) is
        # not re-entrant, and a cached model is shared by every session of the app: one torch pass at
        # a time, unless the model declares its forward pure (``reentrant_forward``: the spiking
        # ResNets keep their membranes in local variables). ONNX Runtime sessions are thread-safe.
        reentrant = getattr(self.model, "reentrant_forward", False)
        guard = self._lock if isinstance(backend, TorchBackend) and not reentrant else contextlib.nullcontext()
        with guard:
            logits = backend(images)
            if self.flip_tta:
                logits = (logits + backend(np.ascontiguousarray(images[..., ::-1]))[..., ::-1]) / 2
        return logits

    @staticmethod
    def occupied_slices(scan: Scan, channels: np.ndarray) -> list[int]:
        """Slices inside the head: the case's brain mask where it has one, else :func:`head_mask`.

        A slice outside carries nothing to segment, and skipping it saves its forward pass; unlike
        "any non-zero voxel", :func:`head_mask` also finds the constant background of z-scored volumes.
        """
        brain = scan.meta.get("brainmask")
        if brain is not None and brain.shape == channels.shape[1:]:
            return [int(d) for d in np.flatnonzero(brain.reshape(brain.shape[0], -1).any(axis=1))]
        inside = np.zeros(channels.shape[1], dtype=bool)
        for channel in channels:
            inside |= head_mask(channel).reshape(channel.shape[0], -1).any(axis=1)
        return [int(d) for d in np.flatnonzero(inside)]

    @torch.inference_mode()
    def predict_probabilities(self, scan: Scan, progress: ProgressCallback | None = None) -> np.ndarray:
        """Tumor probability ``(D, H, W)`` for every slice of ``scan``."""
        channels = self.prepare(scan)
        depth, height, width = channels.shape[1:]
        probabilities = np.zeros((depth, height, width), dtype=np.float32)
        occupied = self.occupied_slices(scan, channels)
        normalized = self.normalize.volume(channels)
        done = 0
        for start in range(0, len(occupied), self.batch_size):
            indices = occupied[start : start + self.batch_size]
            batch = np.stack([self.normalize.slice(channels, d, normalized) for d in indices])
            images = resize_images(torch.from_numpy(batch), self.input_size)
            logits = torch.from_numpy(self.forward(images.numpy()))
            logits = resize_images(logits.float(), (height, width))
            probabilities[indices] = torch.sigmoid(logits[:, 0]).numpy()
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
        probabilities = self.predict_probabilities(scan, progress)
        return self.finish(scan, probabilities, postprocessing, time.perf_counter() - start)

    def finish(
        self,
        scan: Scan,
        probabilities: np.ndarray,
        postprocessing: PostProcessing | None = None,
        model_seconds: float = 0.0,
    ) -> Prediction:
        """The :class:`Prediction` from this model's ``probabilities`` of ``scan``: post-processed, measured.

        The second half of :meth:`__call__`, for callers that keep probabilities and post-process
        them again with other settings (the app's sliders) without running the model again.
        """
        start = time.perf_counter()
        postprocessing = postprocessing or self.postprocessing
        mask = postprocessing(probabilities, spacing=scan.spacing)
        sizes = tumor_size(mask, scan.spacing)
        return Prediction(
            probabilities,
            mask,
            sizes,
            self.model_id,
            model_seconds + time.perf_counter() - start,
            postprocessing.to_dict(),
            self.backend.name,
        )
