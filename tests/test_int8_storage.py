"""Per-channel int8 storage of kernels (``seg_core.weights.int8_storage``) and the ``store-int8`` gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import seg_core.store_int8 as store_module
from seg_core.models import create_model
from seg_core.store_int8 import MAX_DICE_DROP, store_int8
from seg_core.weights import WeightsError, load_model, save_pretrained
from seg_core.weights.int8_storage import SCALE_SUFFIX, decode_int8, encode_int8
from tests.tiny_models import save_tiny_model, weights_config


def test_kernels_round_trip_within_half_a_level_and_the_rest_is_float16() -> None:
    torch.manual_seed(0)
    kernel = torch.randn(6, 3, 3, 3)
    kernel[2] = 0.0  # an all-zero channel must neither divide by zero nor come back as NaN
    state = {"conv.weight": kernel, "conv.bias": torch.randn(6), "bn.num_batches_tracked": torch.tensor(7)}
    stored = encode_int8(state)
    assert stored["conv.weight"].dtype == torch.int8
    assert stored["conv.weight" + SCALE_SUFFIX].shape == (6,)
    assert stored["conv.bias"].dtype == torch.float16
    assert stored["bn.num_batches_tracked"].dtype == torch.int64
    decoded = decode_int8(stored)
    assert set(decoded) == set(state)
    scale = kernel.abs().flatten(1).amax(dim=1).clamp_min(1e-12) / 127
    error = (decoded["conv.weight"] - kernel).abs().flatten(1).amax(dim=1)
    assert torch.all(error <= scale / 2 + 1e-7)
    assert torch.equal(decoded["conv.weight"][2], torch.zeros(3, 3, 3))
    # each channel uses the whole range: its largest weight is stored exactly at +-127
    assert torch.all(stored["conv.weight"].flatten(1).abs().amax(dim=1)[[0, 1, 3, 4, 5]] == 127)


def test_a_scale_name_that_would_shadow_a_tensor_is_refused() -> None:
    with pytest.raises(ValueError, match="already has"):
        encode_int8({"w": torch.ones(2, 2), "w" + SCALE_SUFFIX: torch.ones(2)})


def test_int8_stored_weights_load_as_float32_and_predict_like_the_originals(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = create_model("unet", width=8, in_channels=1).eval()
    config = weights_config("unet", {"width": 8, "in_channels": 1}, 64)
    half = save_pretrained(net, config, tmp_path / "unet.half")
    small = save_pretrained(net, config, tmp_path / "unet.small", int8=True)
    assert (small / "model.safetensors").stat().st_size < 0.6 * (half / "model.safetensors").stat().st_size
    loaded = load_model(small)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert "int8" in loaded.config["stored_dtype"]
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        reference, stored = net(images), loaded.model(images)
    assert torch.allclose(torch.sigmoid(reference), torch.sigmoid(stored), atol=0.02)
    assert not torch.equal(reference, stored)  # it really is the int8 copy that ran


def test_a_file_in_an_unknown_codec_is_refused_with_its_name(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "unet.x", "unet", {"width": 8, "in_channels": 1}, 64)
    path = folder / "model.safetensors"
    save_file(load_file(str(path)), str(path), metadata={"format": "pt", "codec": "int4-magic"})
    config = json.loads((folder / "config.json").read_text())
    config.pop("sha256")  # the record would (rightly) refuse the rewritten file first
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="int4-magic"):
        load_model(folder)


@pytest.mark.parametrize(("after", "accepted"), [(0.7 - MAX_DICE_DROP / 2, True), (0.7 - 2 * MAX_DICE_DROP, False)])
def test_store_int8_keeps_the_int8_file_only_when_validation_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: float, accepted: bool
) -> None:
    old_graph = {"accepted": True, "file": "model.int8.onnx", "command": "python -m seg_core quantize --model unet.test"}
    folder = save_tiny_model(
        tmp_path / "unet.test", "unet", {"width": 8, "in_channels": 1}, 64, id="unet.test", dataset="figshare", int8=old_graph
    )
    (folder / "model.int8.onnx").write_bytes(b"graph of the old weights")
    (folder / "metrics.json").write_text(json.dumps({"quantization": {"accepted": True}}))
    original = (folder / "model.safetensors").read_bytes()
    figures = iter([0.7, after])  # validation Dice before, then with int8 storage
    monkeypatch.setattr(store_module, "validation_dice", lambda segmenter, dataset, root: next(figures))
    record = store_int8("unet.test", "unused-data-root", weights_dir=tmp_path)
    assert record["accepted"] is accepted
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["storage"]["drop"] == pytest.approx(0.7 - after)
    if accepted:
        assert (folder / "model.safetensors").read_bytes() != original
        assert config["storage"]["accepted"] and "int8" not in config  # the old graph's record is gone
        assert not (folder / "model.int8.onnx").exists() and "quantization" not in metrics
        assert load_model(folder).config["sha256"]["model.safetensors"] == config["sha256"]["model.safetensors"]
        assert "stored as per-channel int8" in (folder / "README.md").read_text()
    else:
        assert (folder / "model.safetensors").read_bytes() == original
        assert "storage" not in config and config["int8"] == old_graph


def test_store_int8_leaves_closed_form_baselines_alone(tmp_path: Path) -> None:
    save_tiny_model(tmp_path / "naive_prior.test", "naive_prior", {"map_size": 64}, 64, id="naive_prior.test", dataset="figshare")
    with pytest.raises(ValueError, match="baseline"):
        store_int8("naive_prior.test", "unused", weights_dir=tmp_path)
