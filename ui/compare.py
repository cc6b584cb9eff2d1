"""The Compare page's figures, computed by :mod:`seg_core.compare` once per scan and settings (shared store)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seg_core.compare import cost_table, pairwise_dice, truth_table
from seg_core.display_names import file_description
from seg_core.inference import Prediction
from seg_core.scans import Scan
from ui.cache import inference_cost, memo


def _settings(prediction: Prediction) -> str:
    return str(prediction.postprocessing)


def pairwise_agreement(key: str, predictions: dict[str, Prediction]) -> np.ndarray:
    """Dice between every two models' masks ``(M, M)``, once per scan, models and post-processing."""
    names = tuple(predictions)
    entry = ("pairwise", key, names, tuple(_settings(p) for p in predictions.values()))
    return memo(entry, lambda: pairwise_dice([predictions[name].mask for name in names]))


def truth_metrics(key: str, scan: Scan, predictions: dict[str, Prediction], truth: np.ndarray) -> pd.DataFrame:
    """Each model against the ground truth over the whole scan (HD95 takes a while: once per model and setting)."""
    from seg_core.metrics import segmentation_metrics  # MONAI: only when there is a truth

    spacing = list(scan.spacing) if scan.spacing_known else None
    truth_hash = hash(truth.tobytes())
    metrics = {
        name: memo(
            ("truth_metrics", key, name, _settings(prediction), truth_hash),
            lambda prediction=prediction: segmentation_metrics(prediction.mask, truth, spacing),
        )
        for name, prediction in predictions.items()
    }
    return truth_table(metrics, scan.spacing_known)


#: The cost table's columns as the page shows them (the figure reads the engine's keys).
COST_COLUMNS = {
    "energy_mj": "estimated energy per slice (mJ)",
    "latency_ms": "time per slice (ms)",
    "this scan (s)": "time on this scan (s)",
    "backend": "runs on",
    "source": "cost figures from",
}


def cost_table_for_people(table: pd.DataFrame) -> pd.DataFrame:
    """The cost table with its columns and sources in words (``energy_mj`` -> "estimated energy per slice (mJ)")."""
    shown = table.rename(columns=COST_COLUMNS)
    if "cost figures from" in shown:
        shown["cost figures from"] = shown["cost figures from"].map(
            lambda source: file_description(source) if source.endswith(".json") else source
        )
    return shown


def costs(predictions: dict[str, Prediction]) -> tuple[pd.DataFrame, list[str]]:
    """The cost table of the models that could be profiled, and a message for each that could not."""
    found, failures = {}, []
    for name in predictions:
        try:
            found[name] = inference_cost(name)
        except Exception as error:  # profiling is informative only; never break the page on it
            failures.append(f"Could not profile {name}: {error}")
    seconds = {name: prediction.seconds for name, prediction in predictions.items()}
    backends = {name: prediction.backend for name, prediction in predictions.items()}
    return cost_table(found, seconds, backends), failures
