"""U-Net with a Swin spatial pyramid: the pyramid is real at the configured sizes and works at any size.

The registry-wide checks (shapes, backward, determinism, save/load) live in test_models.py; these
tests cover what is specific to the pyramid: distinct windows that fit the bottleneck, branches
that do not collapse, scale attention weights, the collapse error, and the padded, masked window
attention that lets a fixed window run on any map size.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from seg_core.models import create_model, get_spec
from seg_core.models.blocks.swin import SwinBlock, SwinSpatialPyramid
from seg_core.models.unet_sspp import UNetSSPP, sspp_window_sizes


def build(**overrides) -> UNetSSPP:
    torch.manual_seed(0)
    return create_model("unet_sspp", **{**get_spec("unet_sspp").lite_config, **overrides})


@pytest.mark.parametrize("input_size", [128, 256])
def test_pyramid_has_distinct_windows_that_fit_the_bottleneck(input_size: int) -> None:
    net = build(input_size=input_size)
    bottleneck = input_size // 16
    windows = [branch.window_size for branch in net.pyramid.branches]
    assert windows == list(net.window_sizes) == [2, 4, 8]
    assert len(set(windows)) == len(windows) >= 2
    assert max(windows) <= bottleneck


def test_branches_differ_because_of_their_windows_alone() -> None:
    net = build(input_size=128).eval()
    # Give every branch the same weights (the position-bias tables differ in size, so zero them):
    # any difference left between the branch outputs then comes from the window sizes.
    reference = {k: v for k, v in net.pyramid.branches[0].state_dict().items() if "relative_position" not in k}
    with torch.no_grad():
        for branch in net.pyramid.branches:
            branch.load_state_dict(reference, strict=False)
            for block in branch.blocks:
                block.attn.relative_position_bias_table.zero_()
    outputs: list[torch.Tensor] = []
    hooks = [branch.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for branch in net.pyramid.branches]
    with torch.inference_mode():
        net(torch.randn(1, 1, 128, 128))
    for hook in hooks:
        hook.remove()
    assert len(outputs) == 3 and all(out.shape == (1, 64, 8, 8) for out in outputs)
    for first, second in itertools.combinations(outputs, 2):
        assert (first - second).abs().max() > 1e-3


@pytest.mark.parametrize("size", [128, 100])
def test_scale_attention_weights_sum_to_one_over_branches(size: int) -> None:
    net = build().eval()
    captured: list[torch.Tensor] = []
    net.pyramid.scale_attention.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.inference_mode():
        net(torch.randn(2, 1, size, size + 16))
    (weights,) = captured
    assert weights.shape[:2] == (2, len(net.window_sizes))
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones_like(weights[:, 0]))


def test_a_configuration_that_collapses_the_pyramid_is_refused() -> None:
    assert sspp_window_sizes(64) == (2, 4)  # 4x4 bottleneck: the smallest real pyramid
    with pytest.raises(ValueError, match="fewer than 2 branches.*input_size of at least 64"):
        sspp_window_sizes(32)
    with pytest.raises(ValueError, match="collapse"):
        build(input_size=32)
    with pytest.raises(ValueError, match="at least 2 branches"):
        build(num_branches=1)
    with pytest.raises(ValueError, match="distinct"):
        SwinSpatialPyramid(in_channels=8, embed_dim=8, num_heads=2, window_sizes=(4, 4))


def test_runs_and_trains_at_240_pixels() -> None:
    net = build(input_size=240)
    assert net.window_sizes == (2, 4, 8)  # 15x15 bottleneck, padded to 16 inside the pyramid
    images = torch.randn(1, 1, 240, 240)
    logits = net(images)
    assert logits.shape == (1, 1, 240, 240) and torch.isfinite(logits).all()
    logits.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.pyramid.parameters())


def test_parameter_counts_match_the_documentation() -> None:
    spec = get_spec("unet_sspp")
    paper = sum(p.numel() for p in create_model("unet_sspp", **spec.paper_config).parameters())
    lite = sum(p.numel() for p in build().parameters())
    assert abs(paper - 34.2e6) < 0.1e6, paper
    assert abs(lite - 2.3e6) < 0.1e6 and lite <= 3.5e6, lite


def naive_swin_attention(block: SwinBlock, tokens: torch.Tensor) -> torch.Tensor:
    """Window attention written out token by token, with windows offset in the unrolled map.

    Shifted windows are the regular grid moved by ``shift`` (partial windows at the borders); a
    token attends to the real tokens of its own window. No padding, rolling or mask involved.
    """
    attention, window = block.attn, block.window_size
    _, height, width, channels = tokens.shape
    heads = attention.num_heads
    shift = [window // 2 if block.shifted and side > window else 0 for side in (height, width)]
    # Windows moved up-left by `shift`: the first one is partial, holding the first `shift` tokens.
    offset = [window - s if s else 0 for s in shift]
    qkv = attention.qkv(tokens).reshape(height, width, 3, heads, channels // heads)
    table = attention.relative_position_bias_table
    out = torch.zeros(height, width, channels)
    for i, j in itertools.product(range(height), range(width)):
        keys = [
            (k, m)
            for k, m in itertools.product(range(height), range(width))
            if (i + offset[0]) // window == (k + offset[0]) // window and (j + offset[1]) // window == (m + offset[1]) // window
        ]
        logits = torch.stack(
            [
                (qkv[i, j, 0] * qkv[k, m, 1]).sum(-1) * attention.scale
                + table[(i - k + window - 1) * (2 * window - 1) + (j - m + window - 1)]
                for k, m in keys
            ]
        )  # (keys, heads)
        values = torch.stack([qkv[k, m, 2] for k, m in keys])  # (keys, heads, head_dim)
        out[i, j] = (torch.softmax(logits, dim=0)[..., None] * values).sum(0).reshape(channels)
    return attention.proj(out)[None]


@pytest.mark.parametrize(
    ("height", "width", "window", "shifted"),
    [
        (8, 8, 4, False),  # exact tiling
        (8, 8, 4, True),  # shifted windows, no padding
        (5, 7, 4, False),  # padding
        (5, 7, 4, True),  # padding and shift together
        (3, 3, 4, True),  # window larger than the map: global attention, shift dropped
        (9, 3, 4, True),  # shift along one axis only
    ],
)
def test_padded_masked_window_attention_matches_naive_attention(height: int, width: int, window: int, shifted: bool) -> None:
    torch.manual_seed(0)
    block = SwinBlock(dim=8, num_heads=2, window_size=window, shifted=shifted).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()  # make the position bias matter
        tokens = torch.randn(1, height, width, 8)
        expected = tokens + naive_swin_attention(block, block.norm1(tokens))
        expected = expected + block.mlp(block.norm2(expected))
        torch.testing.assert_close(block(tokens), expected, atol=1e-5, rtol=1e-5)
