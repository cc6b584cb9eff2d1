"""Explanations whose words agree with their figures: the faithfulness verdict, spiking summaries in
words, the spike-rate colour scale, and the time estimate shown before an explanation starts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seg_core.explain import (
    COMPLETENESS_LIMIT,
    DELETION_FRACTIONS,
    DELETION_MEANING,
    SPIKE_RATE_COLORSCALE,
    BlockActivity,
    SpikeRaster,
    SpikingExplanation,
    describe_spiking,
    estimate_explanation,
    explain_slice,
    explanation_passes,
)
from seg_core.inference import Segmenter
from seg_core.scans import Scan, load_scan
from seg_core.verdict import faithfulness_verdict
from seg_core.weights import WEIGHTS_DIR, list_weights, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import PERCENTILE, save_tiny_model  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The verdict: "best" by the deletion curve, and never without saying so when the numbers do not add up
# ---------------------------------------------------------------------------------------------


def _row(key: str, title: str, auc: float, error: float | None = None) -> dict:
    return {"method": title, "key": key, "auc_dice": auc, "auc_probability": auc, "seconds": 0.1, "completeness_error": error}


RANDOM_ROW = _row("random", "Random order (reference)", 0.7)


def test_a_method_with_a_large_completeness_error_is_not_called_best_silently():
    table = [_row("integrated_gradients", "Integrated Gradients", 0.2, 1.286), _row("saliency", "Saliency", 0.3), RANDOM_ROW]
    verdict = faithfulness_verdict(table)
    sentence = verdict.sentence()
    assert verdict.key == "integrated_gradients" and verdict.incomplete
    assert "explains best" not in sentence
    assert "completeness error is 128.6%" in sentence and f"above {COMPLETENESS_LIMIT:.0%}" in sentence
    assert verdict.alternative == "Saliency" and "**Saliency** ranks best" in sentence
    assert DELETION_MEANING in sentence  # what "faithful" means, in one plain sentence


def test_a_complete_method_is_called_best_with_the_meaning():
    table = [_row("integrated_gradients", "Integrated Gradients", 0.2, 0.04), _row("saliency", "Saliency", 0.3), RANDOM_ROW]
    verdict = faithfulness_verdict(table)
    assert not verdict.incomplete and verdict.alternative is None
    assert "**Integrated Gradients** explains best" in verdict.sentence()
    assert "lower area under the deletion curve is better" in verdict.sentence()


@pytest.fixture(scope="module")
def tiny_unet(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    folder = tmp_path_factory.mktemp("weights") / "unet.tiny"
    save_tiny_model(folder, "unet", {"width": 8, "in_channels": 1}, 64, half=False, normalization=PERCENTILE, threshold=0.5)
    return Segmenter(load_model(folder), backend="torch")


def _phantom_scan() -> Scan:
    yy, xx = np.mgrid[:64, :64]
    image = np.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / 60.0) + 0.1 * np.random.default_rng(0).random((64, 64))
    return Scan(array=image[None, None].astype(np.float32), modalities=("t1c",), is_2d=True)


def test_the_faithfulness_table_carries_the_completeness_error(tiny_unet: Segmenter):
    result = explain_slice(tiny_unet, _phantom_scan(), 0, ("saliency", "integrated_gradients"), n_steps=4, random_repeats=1)
    rows = {row["key"]: row for row in result.faithfulness_table()}
    assert rows["integrated_gradients"]["completeness_error"] == result.attributions["integrated_gradients"].convergence_delta
    assert rows["saliency"]["completeness_error"] is None and rows["random"]["completeness_error"] is None
    assert result.spiking_summary() is None  # not a spiking model
    verdict = faithfulness_verdict(result.faithfulness_table())
    assert verdict is not None and (verdict.incomplete == ("completeness error" in verdict.sentence()))


# ---------------------------------------------------------------------------------------------
# Spiking activity in words
# ---------------------------------------------------------------------------------------------


def _block(name: str, rates: list[float], rate_map: np.ndarray, temporal: list[float] | None) -> BlockActivity:
    steps = len(rates)
    size = rate_map.shape
    return BlockActivity(
        name=name,
        channels=4,
        size=size,
        temporal=None if temporal is None else np.asarray(temporal, np.float32),
        channel=np.full(4, 0.5, np.float32),
        spatial=np.full(size, 0.5, np.float32),
        step_attention=np.full((steps, *size), 0.5, np.float32),
        rate_maps=np.repeat(rate_map[None], steps, axis=0).astype(np.float32),
        step_rates=np.asarray(rates, np.float32),
    )


def _recording(blocks: list[BlockActivity], steps: int) -> SpikingExplanation:
    raster = SpikeRaster([], [], np.zeros((0, steps), bool), np.zeros(0, bool))
    return SpikingExplanation(steps, blocks, {}, raster, (16, 16))


def test_spiking_words_name_the_busiest_block_the_tumor_contrast_and_the_attended_step():
    region = np.zeros((16, 16), bool)
    region[:8, :8] = True  # the top-left quarter
    contrast = np.full((8, 8), 0.1)
    contrast[:4, :4] = 0.3  # the tumor fires 3x the background in the second stage
    blocks = [
        _block("stages.0.0", [0.05, 0.05, 0.05, 0.05], np.full((16, 16), 0.05), [0.5, 0.5, 0.5, 0.5]),
        _block("stages.1.0", [0.1, 0.2, 0.2, 0.1], contrast, [0.8, 0.4, 0.4, 0.4]),
    ]
    summary = describe_spiking(_recording(blocks, 4), region)
    assert summary.busiest_stage == "stages.1"
    assert "Most spikes are in the second block (deep features)" in summary.text  # the last of two stages
    assert summary.tumor_ratio["stages.1"] == pytest.approx(3.0)
    assert "fires 3.0x more than the background in the second block" in summary.text
    # Temporal share: block 1 flat (25% each), block 2 0.8/2.0 = 40% at step 1: mean 32.5% at step 1.
    assert summary.temporal_share[0] == pytest.approx((0.25 + 0.4) / 2)
    assert "Time step 1 carries 32% of the temporal attention" in summary.text
    assert not summary.temporal_flat
    assert "Time step 2 of 4 holds the most spikes" in summary.text


def test_flat_temporal_attention_is_said_to_be_flat():
    blocks = [_block(f"stages.{i}.0", [0.0] * 4, np.zeros((8, 8)), [0.5] * 4) for i in range(2)]
    summary = describe_spiking(_recording(blocks, 4))
    assert summary.temporal_flat
    assert "Temporal attention is flat in this model" in summary.text and "(0.50)" in summary.text
    assert "No neuron of the spiking blocks fired" in summary.text
    assert "carries" not in summary.text  # no step is said to matter


def test_models_without_temporal_attention_or_with_one_step_say_so():
    no_temporal = describe_spiking(_recording([_block("stages.0.0", [0.1, 0.2], np.full((8, 8), 0.1), None)], 2))
    assert "no temporal attention" in no_temporal.text and no_temporal.temporal_share is None
    one_step = describe_spiking(_recording([_block("stages.0.0", [0.1], np.full((8, 8), 0.1), [0.7])], 1))
    assert "single time step" in one_step.text


def test_spike_rate_colours_are_dark_at_the_low_end():
    def luminance(colour: str) -> float:
        r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    positions = [stop[0] for stop in SPIKE_RATE_COLORSCALE]
    values = [luminance(stop[1]) for stop in SPIKE_RATE_COLORSCALE]
    assert positions[0] == 0.0 and positions[-1] == 1.0 and positions == sorted(positions)
    assert values == sorted(values) and values[0] < 0.05 < 0.9 < values[-1]


def _shipped(model_id: str) -> Segmenter:
    if model_id not in list_weights(WEIGHTS_DIR):
        pytest.skip(f"{model_id} is not shipped here")
    return Segmenter(load_model(model_id), backend="torch")


@pytest.mark.data
def test_spiking_words_on_a_real_slice_agree_with_the_recording(data_root: Path):
    segmenter = _shipped("csa_snn.figshare")
    result = explain_slice(segmenter, load_scan(data_root / "figshare" / "images" / "1.png"), 0, (), faithfulness=False)
    summary = describe_spiking(result.spiking, result.region)
    assert result.spiking_summary().text == summary.text
    rates: dict[str, list[float]] = {}
    for block in result.spiking.blocks:
        rates.setdefault(".".join(block.name.split(".")[:2]), []).append(float(block.step_rates.mean()))
    busiest = max(rates, key=lambda stage: np.mean(rates[stage]))
    assert summary.busiest_stage == busiest
    assert f"{summary.stage_rates[busiest]:.0%} of its neurons fire" in summary.text
    assert any(ratio is not None for ratio in summary.tumor_ratio.values())


@pytest.mark.data
def test_tcsa_temporal_attention_on_a_real_slice_is_described_honestly(data_root: Path, tmp_path: Path):
    """With tcsa_snn.figshare when shipped, else an untrained TCSA-SNN: flat attention is never hidden."""
    if "tcsa_snn.figshare" in list_weights(WEIGHTS_DIR):
        segmenter = Segmenter(load_model("tcsa_snn.figshare"), backend="torch")
    else:
        folder = save_tiny_model(
            tmp_path / "tcsa_snn.untrained", "tcsa_snn", {"width": 8, "in_channels": 1}, 128, half=False,
            normalization=PERCENTILE, threshold=0.5, spiking=True,
        )  # fmt: skip
        segmenter = Segmenter(load_model(folder), backend="torch")
    result = explain_slice(segmenter, load_scan(data_root / "figshare" / "images" / "1.png"), 0, (), faithfulness=False)
    summary = describe_spiking(result.spiking, result.region)
    weights = np.stack([b.temporal for b in result.spiking.blocks])
    flat = bool(np.all(np.ptp(weights, axis=1) < 1e-3))
    assert summary.temporal_flat == flat
    assert ("Temporal attention is flat" in summary.text) == flat
    assert ("of the temporal attention" in summary.text) == (not flat)


# ---------------------------------------------------------------------------------------------
# The estimate before an explanation starts
# ---------------------------------------------------------------------------------------------


def test_explanation_passes_follow_the_settings():
    base = explanation_passes(input_size=(128, 128))
    assert list(base) == ["setup", "saliency", "integrated_gradients", "gradcam", "occlusion", "deletion_curves"]
    assert base["occlusion"].batched == 8 * 8 + 1  # 16 px patches tile a 128 px slice, plus the whole image
    assert explanation_passes(n_steps=32)["integrated_gradients"].gradient == 32
    assert base["deletion_curves"].batched == len(DELETION_FRACTIONS) * (4 + 2)
    assert "spiking" in explanation_passes(("saliency",), spiking=True)
    with pytest.raises(ValueError, match="unknown explanation method"):
        explanation_passes(("lime",))


def test_estimate_is_measured_on_the_model_and_grows_with_the_work(tiny_unet: Segmenter):
    small = estimate_explanation(tiny_unet, ("saliency",), faithfulness=False, runs=1)
    large = estimate_explanation(tiny_unet, ("saliency", "integrated_gradients", "occlusion"), n_steps=64, runs=1)
    assert small.forward_ms > 0 and small.gradient_ms > 0 and small.seconds > 0
    assert set(small.steps) == {"setup", "saliency"}
    assert large.steps["integrated_gradients"] > large.steps["saliency"]
    assert large.seconds == pytest.approx(sum(large.steps.values()))
    assert large.words().startswith(("about", "under"))
    assert set(large.step_words()) == set(large.steps)


def test_estimate_does_not_touch_the_shared_model(tiny_unet: Segmenter):
    before = {k: v.clone() for k, v in tiny_unet.model.state_dict().items()}
    grads = [p.requires_grad for p in tiny_unet.model.parameters()]
    estimate_explanation(tiny_unet, ("gradcam",), faithfulness=False, runs=1)
    assert all(torch.equal(before[k], v) for k, v in tiny_unet.model.state_dict().items())
    assert grads == [p.requires_grad for p in tiny_unet.model.parameters()]
