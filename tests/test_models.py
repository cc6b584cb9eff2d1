"""Architecture tests, parametrised over the registry so a new model is tested by being registered.

Each model runs in its registered "lite" configuration; the paper configurations are checked
against the seed projects' published parameter counts.
"""

from __future__ import annotations

import json

import pytest
import torch

from seg_core.models import create_model, get_spec, list_models
from seg_core.weights import WeightsError, load_model, save_pretrained
from tests.fixtures.model_signatures import FIXTURE, PRESETS, model_signature

MODELS = list_models()
GRADIENT_MODELS = [name for name in MODELS if get_spec(name).trainable]
SEEDED = [name for name in MODELS if get_spec(name).seed_parameters]


def build(name: str, in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=in_channels, **get_spec(name).lite_config)


def count_parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_registry_lists_unet_and_rejects_unknown_names() -> None:
    assert "unet" in MODELS
    with pytest.raises(KeyError, match="unet"):
        create_model("no_such_net")


def test_every_registered_architecture_has_a_recorded_signature() -> None:
    recorded = json.loads(FIXTURE.read_text())
    assert sorted(recorded) == MODELS, "a registered name was added or removed; see tests/fixtures/model_signatures.py"


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", MODELS)
def test_state_dict_keys_and_shapes_are_those_recorded(name: str, preset: str) -> None:
    """Shipped weights load strictly only while every key and shape stays as it was recorded."""
    expected = json.loads(FIXTURE.read_text())[name][preset]
    actual = model_signature(name, preset)
    if "state_dict" in expected:
        old, new = expected["state_dict"], actual["state_dict"]
        assert set(old) - set(new) == set(), "keys gone"
        assert set(new) - set(old) == set(), "keys added"
        assert {k: new[k] for k in old if new[k] != old[k]} == {}, "shapes or dtypes changed"
    assert actual["num_keys"] == expected["num_keys"]
    assert actual["state_dict_sha256"] == expected["state_dict_sha256"], f"{name} {preset}: keys or shapes changed"
    assert actual["modules_sha256"] == expected["modules_sha256"], f"{name} {preset}: module names changed"


@pytest.mark.parametrize("name", SEEDED)
def test_paper_configuration_matches_the_seed_parameter_count(name: str) -> None:
    spec = get_spec(name)
    parameters = count_parameters(create_model(name, **spec.paper_config))
    assert abs(parameters - spec.seed_parameters) <= 0.10 * spec.seed_parameters, f"{parameters / 1e6:.2f} M"


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_lite_configuration_is_small(name: str) -> None:
    assert count_parameters(build(name)) <= 3.5e6


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [128, 240, 100])
def test_forward_shapes_any_size(name: str, channels: int, size: int) -> None:
    net = build(name, channels).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, channels, size, size + 16))
    assert out.shape == (2, 1, size, size + 16)


@pytest.mark.parametrize("name", MODELS)
def test_too_small_input_says_what_size_to_use(name: str) -> None:
    net = build(name).eval()
    with pytest.raises(ValueError, match="at least"):
        net(torch.randn(1, 1, 4, 4))


def blob_batch(count: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random 'scans' whose bright blobs are the target: spatially coherent like a tumor.

    (Per-pixel noise targets would need full-resolution features, which LinkNet and DeepLab do
    not have by design: their finest features are at 1/4 of the input.)
    """
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(count, 1, size, size, generator=generator)
    images = torch.nn.functional.avg_pool2d(noise, 9, stride=1, padding=4)
    images = (images - images.mean()) / images.std()
    return images, (images > 1.0).float()


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_backward_and_loss_decreases(name: str) -> None:
    net = build(name)
    images, masks = blob_batch()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images), masks)
        optimizer.zero_grad()
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert min(losses[-3:]) < 0.7 * losses[0], [round(x, 3) for x in losses]


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_keeps_no_state_between_calls(name: str) -> None:
    net = build(name).eval()
    first, second = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        alone = net(second)
        net(first)
        after_other = net(second)
    assert torch.equal(alone, after_other)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_gives_identical_outputs(name: str, tmp_path) -> None:
    net = build(name).eval()
    config = {
        "architecture": name,
        "model_config": {"in_channels": 1, **get_spec(name).lite_config},
        "modalities": ["t1c"],
        "input_size": [64, 64],
    }
    save_pretrained(net, config, tmp_path / f"{name}.test", half=False)
    loaded = load_model(tmp_path / f"{name}.test")
    x = torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded.model(x))
    assert get_spec(name).name == loaded.config["architecture"]


def test_load_is_strict_about_keys(tmp_path) -> None:
    net = create_model("unet", width=8)
    config = {"architecture": "unet", "model_config": {"width": 16}, "modalities": ["t1c"], "input_size": [64, 64]}
    save_pretrained(net, config, tmp_path / "unet.wrong")  # weights of width 8, config says 16
    with pytest.raises(WeightsError, match="do not match") as info:
        load_model(tmp_path / "unet.wrong")
    assert "unet" in str(info.value)


@pytest.mark.parametrize("name", ["spatial", "channel", "cbam"])
def test_feature_attention_by_name_keeps_the_shape(name: str) -> None:
    from seg_core.models.blocks.attention import make_feature_attention

    x = torch.randn(2, 32, 16, 16)
    assert make_feature_attention(name, channels=32)(x).shape == x.shape


def test_unknown_attention_names_list_the_valid_ones() -> None:
    from seg_core.models.blocks.attention import make_feature_attention, make_skip_attention

    with pytest.raises(ValueError, match="gate"):
        make_skip_attention("no_such_gate", 8, 16)
    with pytest.raises(ValueError, match="cbam"):
        make_feature_attention("no_such_attention", 8)


def test_a_unet_with_gates_by_name_has_the_attention_unet_keys() -> None:
    gated = create_model("unet", width=8, skip_attention="gate").state_dict()
    assert {k: v.shape for k, v in gated.items()} == {
        k: v.shape for k, v in create_model("attention_unet", width=8).state_dict().items()
    }
