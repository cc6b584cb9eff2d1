"""Loaded segmenters by model id, shared by every request of the API."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from seg_core.inference import Segmenter
from seg_core.weights import CONFIG_NAME, WEIGHTS_DIR, WEIGHTS_NAME, list_weights, load_model

__all__ = ["MAX_CACHED_MODELS", "SegmenterCache"]

logger = logging.getLogger(__name__)

#: Segmenters kept loaded at once (least recently used ones are dropped).
MAX_CACHED_MODELS = 4


class SegmenterCache:
    """Loaded segmenters by model id, shared by all requests (thread-safe, LRU, reloads changed weights)."""

    def __init__(self, weights_dir: str | Path = WEIGHTS_DIR, max_models: int = MAX_CACHED_MODELS) -> None:
        self.weights_dir = Path(weights_dir)
        self.max_models = max_models
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[str, tuple[tuple[int, int], Segmenter]] = OrderedDict()

    def ids(self) -> list[str]:
        return list_weights(self.weights_dir)

    def loaded_ids(self) -> list[str]:
        """Ids of the segmenters loaded now, least recently used first."""
        with self._lock:
            return list(self._cache)

    def _stamp(self, model_id: str) -> tuple[int, int]:
        folder = self.weights_dir / model_id
        return ((folder / CONFIG_NAME).stat().st_mtime_ns, (folder / WEIGHTS_NAME).stat().st_mtime_ns)

    def get(self, model_id: str) -> Segmenter:
        """The segmenter of ``model_id``, loading it once (concurrent first requests wait for one load).

        Raises:
            KeyError: not a trained model in ``weights_dir`` (message lists the valid ids).
            WeightsError: the folder cannot be loaded (e.g. a training job is writing it).
        """
        available = self.ids()
        if model_id not in available:  # only listed ids: a request never names a path
            raise KeyError(f"unknown model {model_id!r}; available: {', '.join(available) or 'none'}")
        with self._lock:
            loading = self._loading.setdefault(model_id, threading.Lock())
        with loading:
            stamp = self._stamp(model_id)
            with self._lock:
                cached = self._cache.get(model_id)
                if cached is not None and cached[0] == stamp:
                    self._cache.move_to_end(model_id)
                    return cached[1]
            segmenter = Segmenter(load_model(model_id, self.weights_dir))
            with self._lock:
                self._cache[model_id] = (stamp, segmenter)
                self._cache.move_to_end(model_id)
                while len(self._cache) > self.max_models:
                    self._cache.popitem(last=False)
            logger.info("Loaded model %s", model_id)
            return segmenter
