"""SA-UNet (Guo, Szemenyei, Yi, Wang, Chen, Fan, "SA-UNet: Spatial Attention U-Net for Retinal Vessel Segmentation", ICPR 2020).

A small U-Net built from structured dropout convolution blocks, ``2 x (conv3x3 -> DropBlock ->
BatchNorm -> ReLU)``, with DropBlock at block size 7 and keep probability 0.9. The encoder has
three stages at ``width * (1, 2, 4)`` channels with 2x2 max pooling; the ``8 * width`` bottleneck
has a spatial attention module (channel mean and max -> 7x7 convolution -> sigmoid -> multiply)
between its two convolution blocks; the decoder upsamples with 3x3 stride-2 transposed
convolutions and concatenates the skips. ``width=16`` is the paper size, about 0.54 M parameters as
published; it is small enough to be the "lite" size too.

The layout (three pooling steps, 16-32-64 encoder, 128-channel bottleneck) follows the authors'
reference code, which gives the published 0.54 M parameters; ``depth=4`` adds a fourth stage.

Example:
    >>> from seg_core.models import create_model
    >>> net = create_model("sa_unet", width=16, in_channels=1)
    >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)  # millions, as published
    0.54
"""

from __future__ import annotations

import torch.nn as nn

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.attention import DropBlock2d, make_feature_attention
from seg_core.models.blocks.conv import UNetSkeleton


class DropBlockConv(nn.Sequential):
    """``conv3x3 -> DropBlock -> BatchNorm -> ReLU``, SA-UNet's structured dropout convolution.

    DropBlock sits before BatchNorm, as in the reference code, so BatchNorm sees the statistics of
    the regularised features. The convolution has no bias because BatchNorm's shift replaces it.
    """

    def __init__(self, in_channels: int, out_channels: int, block_size: int = 7, keep_prob: float = 0.9) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            DropBlock2d(block_size=block_size, keep_prob=keep_prob),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SAUNet(UNetSkeleton):
    """Spatial Attention U-Net: the U-Net skeleton with DropBlock stages and attention in the bottleneck.

    Args:
        in_channels, out_channels: input modalities and logits per pixel, as for the U-Net.
        width: channels of the first stage (``start_neurons``, 16 in the paper); later stages double it.
        depth: number of pooling steps (3 in the paper).
        block_size: DropBlock square side (7 in the paper).
        keep_prob: DropBlock keep probability (0.9 in the paper).
        bottleneck_attention: attention between the bottleneck's two blocks, by name
            (:func:`~seg_core.models.blocks.attention.make_feature_attention`; ``"spatial"`` in the paper).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 16,
        depth: int = 3,
        block_size: int = 7,
        keep_prob: float = 0.9,
        bottleneck_attention: str = "spatial",
    ) -> None:
        channels = [width * 2**level for level in range(depth + 1)]

        def stage(in_ch: int, out_ch: int) -> nn.Sequential:
            return nn.Sequential(
                DropBlockConv(in_ch, out_ch, block_size, keep_prob), DropBlockConv(out_ch, out_ch, block_size, keep_prob)
            )

        def upsampler(in_ch: int, out_ch: int) -> nn.Module:
            # 3x3 transposed convolution, stride 2, as the reference Keras Conv2DTranspose(3, strides=2, "same").
            return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1)

        super().__init__(
            in_channels,
            out_channels,
            channels,
            make_stage=stage,
            make_upsampler=upsampler,
            bottleneck=nn.Sequential(
                DropBlockConv(channels[depth - 1], channels[depth], block_size, keep_prob),
                make_feature_attention(bottleneck_attention, channels[depth]),
                DropBlockConv(channels[depth], channels[depth], block_size, keep_prob),
            ),
        )


sa_unet = register_model(
    ModelSpec(
        name="sa_unet",
        title="SA-UNet",
        family="unet",
        reference="Guo, Szemenyei, Yi, Wang, Chen, Fan. SA-UNet: Spatial Attention U-Net for Retinal Vessel Segmentation. ICPR 2020.",
        description=(
            "A very small U-Net (about half a million parameters, some 60 times fewer than the U-Net) "
            "designed for small data sets. During training it switches off whole square patches of its "
            "feature maps at random (DropBlock), which keeps it from memorising the few training images, "
            "and at its deepest level a spatial attention map decides which pixels matter. Fast on a CPU."
        ),
        input_multiple=8,
        paper_config={"width": 16},
        lite_config={"width": 16},
    )
)(SAUNet)
