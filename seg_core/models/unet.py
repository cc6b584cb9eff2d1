"""U-Net (Ronneberger et al., MICCAI 2015), as in the seed project.

Encoder of four ``2x(conv3x3-BN-ReLU)`` stages at ``width * (1, 2, 4, 8)`` channels with 2x2 max
pooling, a ``16 * width`` bottleneck, and a decoder of 2x2 transposed convolutions whose output is
concatenated with the skip and refined by another double convolution; a 1x1 convolution gives one
logit per pixel. ``width=64`` is the paper size (about 31.0 M parameters); ``width=16`` is the
"lite" size (about 1.9 M) that trains on a CPU.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("unet", width=16, in_channels=1)
    >>> net(torch.zeros(2, 1, 128, 128)).shape
    torch.Size([2, 1, 128, 128])
"""

from __future__ import annotations

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.conv import UNetSkeleton


class UNet(UNetSkeleton):
    """The seed U-Net.

    Args:
        in_channels: number of input modalities.
        out_channels: number of output logits per pixel (1 for a binary tumor mask).
        width: channels of the first stage; later stages double it.
        depth: number of pooling steps (4 in the paper).
        skip_attention: attention on every skip by name (``"gate"`` makes it the Attention U-Net),
            or ``None``.
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, width: int = 64, depth: int = 4, skip_attention: str | None = None
    ) -> None:
        channels = [width * 2**level for level in range(depth + 1)]
        super().__init__(in_channels, out_channels, channels, skip_attention=skip_attention)


unet = register_model(
    ModelSpec(
        name="unet",
        title="U-Net",
        family="unet",
        reference="Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015.",
        description="Encoder-decoder with skip connections; the baseline every other model is compared with.",
        paper_config={"width": 64},
        lite_config={"width": 16},
        seed_parameters=31.0e6,
    )
)(UNet)
