"""Architecture-specific checks of the conventional attention networks.

tests/test_models.py covers what every registered model must do (shapes, training, determinism,
save/load); this file checks that each of these models is the architecture its paper describes.
Paper-size networks are built on the meta device: their parameters are counted without
allocating or initialising them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.models import create_model, get_spec
from seg_core.models.blocks.aspp import ASPP, ImagePoolingBatchNorm
from seg_core.models.blocks.attention import AttentionGate, DropBlock2d, SpatialAttention


def build(name: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels=1, **{**get_spec(name).lite_config, **overrides})


def paper_size(name: str) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **get_spec(name).paper_config)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def record_outputs(modules: list[nn.Module]) -> tuple[list[torch.Tensor], list]:
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach())) for m in modules]
    return outputs, handles


# Published counts: Attention U-Net from the seed project, SA-UNet and LinkNet from their papers,
# SegNet from its paper plus our five gates, DeepLabv3+ ResNet-101 with regular convolutions.
PAPER_COUNTS = {
    "attention_unet": (31.7e6, 0.10),
    "sa_unet": (0.54e6, 0.05),
    "linknet_ag": (11.5e6, 0.05),
    "segnet_ag": (29.5e6 + 0.62e6, 0.02),
    "deeplab_aspp": (59.3e6, 0.02),
}


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_paper_size_parameter_counts(name: str) -> None:
    expected, tolerance = PAPER_COUNTS[name]
    parameters = count_parameters(paper_size(name))
    assert abs(parameters - expected) <= tolerance * expected, f"{parameters / 1e6:.3f} M"


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_lite_is_narrower_but_same_kind(name: str) -> None:
    lite = count_parameters(build(name))
    assert lite <= 3.5e6
    assert get_spec(name).input_multiple == build(name).input_multiple


# --- blocks -------------------------------------------------------------------------------------


def test_attention_gate_is_additive_attention_with_coefficients_in_unit_interval() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(skip_channels=8, gating_channels=16)
    skip, gating = torch.randn(2, 8, 12, 12), torch.randn(2, 16, 6, 6)
    recorded, handles = record_outputs([gate.coefficients])
    out = gate(skip, gating)
    handles[0].remove()
    (alpha,) = recorded
    psi, _ = gate.coefficients
    projected = F.interpolate(gate.gating_projection(gating), size=(12, 12), mode="bilinear", align_corners=False)
    expected_alpha = torch.sigmoid(psi(F.relu(gate.skip_projection(skip) + projected)))
    assert alpha.shape == (2, 1, 12, 12)
    torch.testing.assert_close(alpha, expected_alpha)
    torch.testing.assert_close(out, skip * expected_alpha)
    assert gate.skip_projection.kernel_size == gate.gating_projection.kernel_size == psi.kernel_size == (1, 1)


def test_spatial_attention_is_mean_max_concat_conv7_sigmoid_multiply() -> None:
    torch.manual_seed(0)
    attention = SpatialAttention()
    conv, sigmoid = attention.coefficients
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.bias) == (2, 1, (7, 7), None)
    assert isinstance(sigmoid, nn.Sigmoid)
    x = torch.randn(2, 5, 9, 9)
    summary = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], dim=1)
    torch.testing.assert_close(attention(x), x * torch.sigmoid(conv(summary)))


def test_dropblock_is_identity_in_eval_and_drops_whole_blocks_in_training() -> None:
    drop = DropBlock2d(block_size=7, keep_prob=0.9)
    x = torch.ones(4, 16, 48, 48)
    assert drop.eval()(x) is x
    torch.manual_seed(0)
    out = drop.train()(x)
    dropped = (out == 0).float()
    assert 0.05 < dropped.mean().item() < 0.15  # about 1 - keep_prob
    # Every dropped pixel lies in a fully dropped 7x7 square: find the squares, grow them back.
    squares = (F.avg_pool2d(dropped, 7, stride=1) > 1 - 1e-6).float()
    covered = F.max_pool2d(F.pad(squares, (6, 6, 6, 6)), 7, stride=1)
    assert torch.equal(covered, dropped)
    # The kept activations are rescaled so the mean is preserved.
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, out.numel() / kept.numel()))


def test_dropblock_on_a_map_smaller_than_the_block() -> None:
    torch.manual_seed(0)
    out = DropBlock2d(block_size=7, keep_prob=0.5).train()(torch.ones(8, 32, 4, 4))
    per_channel = (out == 0).flatten(2).all(-1).float()  # a 4x4 map is dropped whole or not at all
    assert torch.equal((out == 0).flatten(2).any(-1).float(), per_channel)
    assert 0.3 < per_channel.mean().item() < 0.7


def test_aspp_branches_and_fusion() -> None:
    aspp = ASPP(in_channels=32, out_channels=16)
    assert len(aspp.branches) == 4
    kernels = [(branch[0].kernel_size, branch[0].dilation) for branch in aspp.branches]
    assert kernels == [((1, 1), (1, 1)), ((3, 3), (6, 6)), ((3, 3), (12, 12)), ((3, 3), (18, 18))]
    assert all(isinstance(branch[1], nn.BatchNorm2d) and isinstance(branch[2], nn.ReLU) for branch in aspp.branches)
    pool, conv, norm, relu = aspp.image_pooling
    assert isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size == 1
    assert conv.kernel_size == (1, 1) and isinstance(norm, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    fuse = aspp.project[0]
    assert (fuse[0].in_channels, fuse[0].out_channels, fuse[0].kernel_size) == (5 * 16, 16, (1, 1))
    assert isinstance(fuse[1], nn.BatchNorm2d) and isinstance(aspp.project[1], nn.Dropout)
    assert aspp.eval()(torch.randn(1, 32, 10, 12)).shape == (1, 16, 10, 12)


def test_image_pooling_batchnorm_trains_with_a_batch_of_one() -> None:
    norm = ImagePoolingBatchNorm(4).train()
    with pytest.raises(ValueError):  # what plain BatchNorm does, and why this class exists
        nn.BatchNorm2d(4).train()(torch.randn(1, 4, 1, 1))
    out = norm(torch.randn(1, 4, 1, 1))
    out.sum().backward()
    assert norm.weight.grad is not None
    assert norm(torch.randn(3, 4, 1, 1)).shape == (3, 4, 1, 1)  # ordinary BatchNorm otherwise


# --- attention_unet -----------------------------------------------------------------------------


def test_attention_unet_gates_every_skip_with_unit_interval_coefficients() -> None:
    net = build("attention_unet").eval()
    assert len(net.gates) == len(net.encoders) == 4
    coefficients, handles = record_outputs([gate.coefficients for gate in net.gates])
    with torch.inference_mode():
        net(torch.randn(2, 1, 64, 64))
    for handle in handles:
        handle.remove()
    assert [tuple(c.shape) for c in coefficients] == [(2, 1, 8, 8), (2, 1, 16, 16), (2, 1, 32, 32), (2, 1, 64, 64)]
    assert all(c.min() >= 0 and c.max() <= 1 for c in coefficients)


def test_attention_unet_is_the_unet_plus_gates() -> None:
    unet = create_model("unet", width=16)
    attention = build("attention_unet")
    gates = sum(count_parameters(gate) for gate in attention.gates)
    assert count_parameters(attention) == count_parameters(unet) + gates
    upsamplers = [(u.kernel_size, u.stride) for u in attention.upsamplers]
    assert upsamplers == [((2, 2), (2, 2))] * 4


# --- sa_unet ------------------------------------------------------------------------------------


def test_sa_unet_layout_dropblocks_and_spatial_attention() -> None:
    net = build("sa_unet")
    assert [stage[0][0].out_channels for stage in net.encoders] == [16, 32, 64]
    first, attention, second = net.bottleneck
    assert first[0].out_channels == second[0].out_channels == 128
    assert isinstance(attention, SpatialAttention)
    drops = [m for m in net.modules() if isinstance(m, DropBlock2d)]
    assert len(drops) == 2 * 3 + 2 + 2 * 3
    assert all((d.block_size, d.keep_prob) == (7, 0.9) for d in drops)
    # conv3x3 -> DropBlock -> BN -> ReLU
    assert [type(m) for m in net.encoders[0][0]] == [nn.Conv2d, DropBlock2d, nn.BatchNorm2d, nn.ReLU]


def test_sa_unet_is_stochastic_in_training_only() -> None:
    net = build("sa_unet")
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert not torch.equal(net.train()(x), net(x))
        net.eval()
        assert torch.equal(net(x), net(x))


def test_sa_unet_spatial_attention_map_shape() -> None:
    net = build("sa_unet").eval()
    recorded, handles = record_outputs([net.bottleneck[1].coefficients])
    with torch.inference_mode():
        net(torch.randn(2, 1, 64, 64))
    handles[0].remove()
    (attention_map,) = recorded
    assert attention_map.shape == (2, 1, 8, 8)
    assert attention_map.min() >= 0 and attention_map.max() <= 1


# --- linknet_ag ---------------------------------------------------------------------------------


def test_linknet_encoder_is_resnet18_and_decoder_blocks_squeeze() -> None:
    net = paper_size("linknet_ag")
    assert (net.stem[0].kernel_size, net.stem[0].stride) == ((7, 7), (2, 2)) and isinstance(net.stem[3], nn.MaxPool2d)
    assert [len(stage) for stage in net.encoders] == [2, 2, 2, 2]
    assert [stage[-1].body[-2].out_channels for stage in net.encoders] == [64, 128, 256, 512]
    for decoder, (m, n) in zip(net.decoders, [(64, 64), (128, 64), (256, 128), (512, 256)], strict=True):
        reduce, up, expand = decoder[0], decoder[3], decoder[6]
        assert (reduce.in_channels, reduce.out_channels, reduce.kernel_size) == (m, m // 4, (1, 1))
        assert isinstance(up, nn.ConvTranspose2d) and up.kernel_size == (3, 3)
        assert (expand.out_channels, expand.kernel_size) == (n, (1, 1))
    assert [d[3].stride for d in net.decoders] == [(1, 1), (2, 2), (2, 2), (2, 2)]


def test_linknet_adds_the_gated_link_to_the_decoder_output() -> None:
    net = build("linknet_ag").eval()
    decoded, gated, consumed = {}, {}, {}
    handles = []
    for level in range(4):
        handles.append(net.decoders[level].register_forward_hook(lambda _m, _i, out, k=level: decoded.__setitem__(k, out)))
        handles.append(net.gates[level].register_forward_hook(lambda _m, _i, out, k=level: gated.__setitem__(k, out)))
        consumer = net.decoders[level - 1] if level else net.head
        handles.append(consumer.register_forward_pre_hook(lambda _m, args, k=level: consumed.__setitem__(k, args[0].clone())))
    coefficients, more = record_outputs([gate.coefficients for gate in net.gates])
    with torch.inference_mode():
        net(torch.randn(2, 1, 64, 64))
    for handle in handles + more:
        handle.remove()
    for level in range(4):
        torch.testing.assert_close(consumed[level], decoded[level] + gated[level])
    # Gates on every link: stem (/4), stages 1-3 inputs (/4, /8, /16), run deepest first.
    assert [tuple(c.shape) for c in coefficients] == [(2, 1, 4, 4), (2, 1, 8, 8), (2, 1, 16, 16), (2, 1, 16, 16)]
    assert all(c.min() >= 0 and c.max() <= 1 for c in coefficients)


# --- segnet_ag ----------------------------------------------------------------------------------


def test_segnet_encoder_is_vgg16_with_index_unpooling() -> None:
    net = paper_size("segnet_ag")
    convs = [[m.out_channels for m in stage if isinstance(m, nn.Conv2d)] for stage in net.encoders]
    assert convs == [[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3]
    decoder_convs = [[m.out_channels for m in stage if isinstance(m, nn.Conv2d)] for stage in net.decoders]
    assert decoder_convs == [[64], [128, 64], [256, 256, 128], [512, 512, 256], [512, 512, 512]]
    assert net.pool.return_indices and isinstance(net.unpool, nn.MaxUnpool2d)
    assert len(net.gates) == 5
    gates = sum(count_parameters(gate) for gate in net.gates)
    assert abs(count_parameters(net) - gates - 29.5e6) <= 0.01 * 29.5e6  # SegNet itself, as published


def test_segnet_adds_the_gated_skip_to_the_unpooled_map() -> None:
    net = build("segnet_ag").eval()
    unpooled, gated, consumed = [], [], []
    handles = [
        net.unpool.register_forward_hook(lambda _m, _i, out: unpooled.append(out)),
        *[g.register_forward_hook(lambda _m, _i, out: gated.append(out)) for g in net.gates],
        *[d.register_forward_pre_hook(lambda _m, args: consumed.append(args[0].clone())) for d in net.decoders],
    ]
    coefficients, more = record_outputs([gate.coefficients for gate in net.gates])
    with torch.inference_mode():
        net(torch.randn(2, 1, 64, 64))
    for handle in handles + more:
        handle.remove()
    assert len(consumed) == 5
    for total, up, gate in zip(consumed, unpooled, gated, strict=True):
        torch.testing.assert_close(total, up + gate)
    # Unpooling puts each value back where its maximum was: at most one nonzero per 2x2 window.
    nonzero = F.avg_pool2d((unpooled[-1] != 0).float(), 2) * 4
    assert nonzero.max() <= 1
    assert [c.shape[-1] for c in coefficients] == [4, 8, 16, 32, 64]


# --- deeplab_aspp -------------------------------------------------------------------------------


def test_deeplab_paper_config_is_resnet101_at_output_stride_16() -> None:
    net = paper_size("deeplab_aspp")
    assert [len(stage) for stage in net.stages] == [3, 4, 23, 3]
    last = [(block.body[3].stride, block.body[3].dilation) for block in net.stages[3]]
    assert last == [((1, 1), (2, 2)), ((1, 1), (4, 4)), ((1, 1), (8, 8))]  # multi-grid (1, 2, 4) x 2
    assert net.aspp.branches[0][0].in_channels == 2048 and net.aspp.branches[0][0].out_channels == 256
    assert (net.low_level[0].in_channels, net.low_level[0].out_channels) == (256, 48)
    assert [m.out_channels for m in net.decoder if isinstance(m, nn.Conv2d)] == [256, 256]
    assert net.decoder[0].in_channels == 256 + 48


def test_deeplab_feature_strides_and_full_size_logits() -> None:
    net = build("deeplab_aspp").eval()
    aspp_in: list[torch.Size] = []
    handle = net.aspp.register_forward_pre_hook(lambda _m, args: aspp_in.append(args[0].shape))
    low, more = record_outputs([net.low_level])
    with torch.inference_mode():
        out = net(torch.randn(1, 1, 96, 128))
    handle.remove()
    more[0].remove()
    assert aspp_in[0][-2:] == (6, 8)  # output stride 16
    assert low[0].shape[-2:] == (24, 32)  # low-level features at stride 4
    assert out.shape == (1, 1, 96, 128)


def test_deeplab_trains_with_batches_of_one_and_more() -> None:
    net = build("deeplab_aspp").train()
    for batch in (1, 2):
        loss = net(torch.randn(batch, 1, 64, 64)).square().mean()
        loss.backward()
    assert all(p.grad is not None for p in net.parameters())
