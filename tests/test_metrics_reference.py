"""Our metrics against panoptica, the BrainLesion toolkit behind ``brats-evaluation``, on real BraTS volumes.

``segmentation_metrics`` computes Dice through MONAI and HD95 through MONAI's
``compute_hausdorff_distance``, which takes the larger of the two directional 95th percentiles
(prediction -> truth, truth -> prediction), as DeepMind's ``surface-distance`` does. panoptica's own
HD95 pools both directions before the percentile, a convention that gives slightly smaller values
(2.83 against 3.47 mm on one dilated BraTS mask). So the check compares Dice with panoptica's Dice,
and HD95 with the directional convention computed from panoptica's own surface distances. A missed
tumor scores the diagonal of the volume (373.13 mm for 240x240x155 at 1 mm), where
``brats-evaluation`` writes 373, "the diameter of the cube in SRI space". Lesion counts are compared
with panoptica's connected components (26-connected, as ours) and overlap matching, where the two
definitions coincide: when no predicted component touches two lesions (panoptica then matches one
to one, we count each touched lesion as detected).

panoptica pins numpy<2.3, pandas<3 and plotly<6, yet runs with ours; it is installed without its
dependencies from ``requirements-reference.txt`` (see the README's test section), and ``.ci/run``
fails if it is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from seg_core.data import BratsDataset, load_split
from seg_core.metrics import lesion_counts, segmentation_metrics

panoptica = pytest.importorskip("panoptica", reason="pip install --no-deps -r requirements-reference.txt")
from panoptica.metrics import _compute_dice_coefficient  # noqa: E402
from panoptica.metrics import assd as panoptica_assd  # noqa: E402

# A module-level double-underscore function of panoptica's: the distances from one mask's border
# voxels to the other's border (medpy's definition).
_surface_distances = vars(panoptica_assd)["__surface_distances"]


def _directional_hd95(prediction: np.ndarray, truth: np.ndarray, spacing) -> float:
    to_truth = _surface_distances(truth, prediction, spacing)
    to_prediction = _surface_distances(prediction, truth, spacing)
    return float(max(np.percentile(to_truth, 95), np.percentile(to_prediction, 95)))


def _panoptica_lesions(prediction: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """Reference lesions, matched lesions and unmatched predicted components, by panoptica."""
    evaluator = panoptica.Panoptica_Evaluator(
        expected_input=panoptica.InputType.SEMANTIC,
        instance_approximator=panoptica.ConnectedComponentsInstanceApproximator(),
        instance_matcher=panoptica.NaiveThresholdMatching(matching_threshold=0.0, allow_many_to_one=True),
        instance_metrics=[panoptica.Metric.DSC],
        global_metrics=[panoptica.Metric.DSC],
    )
    result = evaluator.evaluate(prediction.astype(np.uint8), truth.astype(np.uint8), verbose=False)
    result = result["ungrouped"] if isinstance(result, dict) else result
    return int(result.n_ref_instances), int(result.tp), int(result.fp)


def _one_lesion_per_component(prediction: np.ndarray, truth: np.ndarray) -> bool:
    structure = np.ones((3,) * truth.ndim, dtype=bool)
    truth_labels, _ = ndimage.label(truth, structure=structure)
    prediction_labels, components = ndimage.label(prediction, structure=structure)
    overlap = prediction & truth
    pairs = np.unique(np.stack([prediction_labels[overlap], truth_labels[overlap]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1]


def _perturbed(truth: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "dilated 2 voxels": ndimage.binary_dilation(truth, iterations=2),
        "eroded 2 voxels": ndimage.binary_erosion(truth, iterations=2),
        "shifted 5 rows": np.roll(truth, 5, axis=1),
        "with a false blob": truth | np.roll(truth, 60, axis=2),
    }


@pytest.fixture(scope="module")
def test_cases(data_root: Path) -> list[tuple[str, np.ndarray, tuple[float, float, float]]]:
    dataset = BratsDataset(data_root)
    cases = []
    for group in load_split("brats")["test"]:
        _, label, spacing = dataset.load_volume(group)
        cases.append((group, label > 0, spacing))
    return cases


def test_dice_and_hd95_agree_with_panoptica_on_real_volumes(test_cases) -> None:
    for group, truth, spacing in test_cases:
        for name, prediction in _perturbed(truth).items():
            ours = segmentation_metrics(prediction, truth, spacing)
            assert ours["dice"] == pytest.approx(_compute_dice_coefficient(truth, prediction), abs=1e-6), (group, name)
            assert ours["hd95"] == pytest.approx(_directional_hd95(prediction, truth, spacing), abs=1e-3), (group, name)


def test_a_missed_tumor_scores_the_brats_worst_distance(test_cases) -> None:
    group, truth, spacing = test_cases[0]
    missed = segmentation_metrics(np.zeros_like(truth), truth, spacing)
    assert truth.shape == (155, 240, 240) and spacing == (1.0, 1.0, 1.0)
    assert missed["hd95"] == pytest.approx(373.13, abs=0.01)  # brats-evaluation: 373
    found = segmentation_metrics(ndimage.binary_dilation(truth, iterations=2), truth, spacing)
    assert found["hd95"] < missed["hd95"]
    assert missed["lesions_detected"] == 0 and missed["lesions_missed"] == missed["lesions"] >= 1


def test_lesion_counts_agree_with_panoptica_where_the_definitions_coincide(test_cases) -> None:
    compared = 0
    for group, truth, _ in test_cases:
        for name, prediction in {**_perturbed(truth), "empty": np.zeros_like(truth)}.items():
            if not _one_lesion_per_component(prediction, truth):
                continue
            ours = lesion_counts(prediction, truth)
            reference, matched, unmatched = _panoptica_lesions(prediction, truth)
            assert (ours["lesions"], ours["lesions_detected"], ours["false_positive_components"]) == (
                reference,
                matched,
                unmatched,
            ), (group, name)
            compared += 1
    assert compared >= 6  # most perturbations keep one lesion per component
