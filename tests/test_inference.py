"""Inference: channel mapping, resizing, batching and progress, on a small model saved to disk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seg_core.inference import ModalityError, Segmenter, fast_bfloat16, select_channels
from seg_core.models import create_model
from seg_core.postprocess import PostProcessing
from seg_core.scans import UNSPECIFIED, Scan
from seg_core.weights import LoadedModel, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import UNNORMALIZED, save_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def bright_pixel_segmenter(tmp_path_factory) -> Segmenter:
    """A 1x1-conv 'model' whose logit is a fixed function of the normalised intensity.

    U-Net's head alone is used by zeroing every other layer would be opaque; instead the U-Net is
    trained for a few steps to call bright pixels tumor, which makes the expected mask known.
    """
    torch.manual_seed(0)
    net = create_model("unet", width=4, in_channels=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    rng = np.random.default_rng(0)
    for _ in range(60):
        images = torch.from_numpy(rng.random((8, 1, 32, 32)).astype(np.float32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images), (images > 0.7).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("w") / "unet.bright"
    save_tiny_model(folder, "unet", {"width": 4, "in_channels": 1}, 32, model=net.eval(), half=False, **UNNORMALIZED)
    return Segmenter(load_model(folder), batch_size=3)


def make_scan(depth: int, size: int, modalities=("t1c",)) -> Scan:
    array = np.zeros((len(modalities), depth, size, size), dtype=np.float32)
    array[:, :, size // 4 : size // 2, size // 4 : size // 2] = 0.95  # a bright square
    array[:, :, size // 2 :, :] = 0.3  # dim tissue
    return Scan(array=array, modalities=tuple(modalities), spacing=(2.0, 0.5, 0.5), name="synthetic", is_2d=depth == 1)


def test_select_channels_maps_by_name() -> None:
    scan = make_scan(1, 32, ("t1", "flair", "t1c"))
    scan.array[2] += 5
    chosen = select_channels(scan, ["t1c", "flair"])
    assert np.array_equal(chosen[0], scan.array[2]) and np.array_equal(chosen[1], scan.array[1])


def test_select_channels_accepts_unspecified_gray_for_one_channel_models() -> None:
    scan = make_scan(1, 32, (UNSPECIFIED,))
    assert select_channels(scan, ["t1c"]).shape == (1, 1, 32, 32)


def test_missing_modality_error_names_what_is_needed_and_what_is_there() -> None:
    with pytest.raises(ModalityError, match=r"needs FLAIR.*has T1 contrast-enhanced"):
        select_channels(make_scan(1, 32, ("t1c",)), ["flair", "t1c"], "unet.brats2015")


def test_volume_prediction_resizes_back_and_reports_progress(bright_pixel_segmenter: Segmenter) -> None:
    scan = make_scan(7, 64)
    scan.array[:, 3] = 0  # an empty slice is skipped and predicted empty
    calls = []
    prediction = bright_pixel_segmenter(scan, progress=lambda done, total: calls.append((done, total)))
    assert prediction.mask.shape == (7, 64, 64) and prediction.probabilities.shape == (7, 64, 64)
    assert calls[-1] == (6, 6) and len(calls) == 2  # 6 occupied slices in batches of 3
    assert prediction.slice_presence == [True, True, True, False, True, True, True]
    square = prediction.mask[0, 16:32, 16:32]
    assert square.mean() > 0.9 and prediction.mask[0, 40:, :].mean() < 0.05
    # Sizes use the spacing: 0.5 x 0.5 mm pixels, 2 mm slices.
    expected_ml = prediction.mask.sum() * 2.0 * 0.5 * 0.5 / 1000
    assert prediction.sizes["volume_ml"] == pytest.approx(expected_ml)


def test_threshold_changes_the_mask(bright_pixel_segmenter: Segmenter) -> None:
    scan = make_scan(1, 32)
    loose = bright_pixel_segmenter(scan, PostProcessing(threshold=0.01)).mask.sum()
    strict = bright_pixel_segmenter(scan, PostProcessing(threshold=0.99)).mask.sum()
    assert loose > strict


def _with_config(segmenter: Segmenter, **changes) -> LoadedModel:
    return LoadedModel(segmenter.model, {**segmenter.config, **changes}, Path("."), "local")


def test_bfloat16_follows_the_config_and_the_hardware_on_torch_only(bright_pixel_segmenter: Segmenter) -> None:
    # Weights without "inference_dtype" (every float32-trained one) never switch precision.
    assert bright_pixel_segmenter.bfloat16 is False
    # The default path is float32 on every CPU, so its masks do not depend on bf16 units.
    assert Segmenter(_with_config(bright_pixel_segmenter, inference_dtype="bfloat16")).bfloat16 is False
    asks = Segmenter(_with_config(bright_pixel_segmenter, inference_dtype="bfloat16"), backend="torch")
    assert asks.bfloat16 is fast_bfloat16(torch.device("cpu"))
    assert Segmenter(_with_config(bright_pixel_segmenter, inference_dtype="bfloat16"), bfloat16=False).bfloat16 is False


def test_bfloat16_mask_matches_float32(bright_pixel_segmenter: Segmenter) -> None:
    # Forced on: autocast runs on any CPU (emulated where not native); the mask must agree.
    scan = make_scan(3, 48)
    reference = bright_pixel_segmenter(scan).mask
    fast = Segmenter(_with_config(bright_pixel_segmenter), bfloat16=True)(scan).mask
    assert reference.sum() > 0
    assert (reference != fast).mean() < 0.01


def test_slices_outside_the_head_are_skipped_also_when_z_scored(bright_pixel_segmenter: Segmenter) -> None:
    # A z-scored volume: the background is one negative constant, not 0, on the 3 slices above the head.
    volume = np.full((1, 8, 32, 32), -3.62, dtype=np.float32)
    volume[0, 3:, 8:24, 8:24] = np.random.default_rng(0).normal(size=(5, 16, 16))
    scan = Scan(volume, ["t1c"], name="zscored")
    assert bright_pixel_segmenter.occupied_slices(scan, volume) == [3, 4, 5, 6, 7]
    steps: list[tuple[int, int]] = []
    bright_pixel_segmenter.predict_probabilities(scan, progress=lambda done, total: steps.append((done, total)))
    assert steps[-1] == (5, 5)
    # The case's own brain mask wins where it has one.
    brain = np.zeros((8, 32, 32), dtype=np.uint8)
    brain[4:6, 10:20, 10:20] = 1
    scan.meta["brainmask"] = brain
    assert bright_pixel_segmenter.occupied_slices(scan, volume) == [4, 5]
