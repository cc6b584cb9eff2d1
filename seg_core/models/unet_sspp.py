"""U-Net with a Swin spatial pyramid bottleneck (Azad et al., TransDeepLab, PRIME @ MICCAI 2022).

Azad, Heidari, Shariatnia, et al. "TransDeepLab: Convolution-Free Transformer-Based DeepLab v3+
for Medical Image Segmentation", PRIME workshop at MICCAI 2022, introduced Swin spatial pyramid
pooling (SSPP): the atrous branches of DeepLab's ASPP replaced by parallel Swin transformer branches
(Liu et al., ICCV 2021) that differ in their attention window, fused by cross-contextual attention.
Here SSPP is the bottleneck of the seed U-Net (Ronneberger et al., MICCAI 2015): the encoder and
decoder are those of :mod:`seg_core.models.unet`, and the ``16 * width`` bottleneck map is refined by
:class:`~seg_core.models.blocks.swin.SwinSpatialPyramid` (1x1 projection to ``embed_dim`` tokens,
one Swin branch of depth 2 - W-MSA then SW-MSA - per window size, per-position scale attention over
the branches, global-average-pool -> MLP -> sigmoid channel attention, 1x1 projection back, residual).

Window sizes. The seed derived its windows from nothing in particular, and at 128 px every window
exceeded the 8x8 bottleneck, so its "pyramid" collapsed to a single global branch. Here the windows
come from the configured ``input_size``: the bottleneck side is ``ceil(input_size / 2**depth)``
(the base class pads the input up to a multiple of ``2**depth``), and branch ``k`` gets window
``2**(k + 1)`` for ``k < num_branches``, keeping only windows that fit in the bottleneck:

==========  ==========  =================  =========================================
input_size  bottleneck  windows (3 asked)  note
==========  ==========  =================  =========================================
256         16x16       2, 4, 8            8 = 2x2 windows of the map
128         8x8         2, 4, 8            8 = the whole map: a global-attention branch
64          4x4         2, 4               4 = global; two branches, still a pyramid
32          2x2         --                 ValueError: only one window fits
==========  ==========  =================  =========================================

A branch whose window covers the whole map does plain global attention in both of its blocks
(shifting a single window connects nothing, so the shift is dropped). At run-time sizes other than
the configured one (240 px, 100x116 px) the windows stay as built: each Swin block pads its token
grid to a multiple of the window and masks the padding, so a window larger than the map is global
attention over the real tokens.

Sizes: ``width=64, embed_dim=192, num_heads=6, input_size=256`` (paper configuration: the U-Net's
width-64 encoder and 1024-channel bottleneck, Swin-T's stage-2 token width) has 34.2 M
parameters: 31.0 M for the U-Net, 3.2 M for the pyramid. ``width=16, embed_dim=64, num_heads=2,
input_size=128`` (lite) has 2.3 M: 1.9 M + 0.35 M.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("unet_sspp", width=16, embed_dim=64, num_heads=2, input_size=128, in_channels=1)
    >>> net.window_sizes
    (2, 4, 8)
    >>> net(torch.zeros(2, 1, 128, 128)).shape
    torch.Size([2, 1, 128, 128])
"""

from __future__ import annotations

import torch

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.swin import SwinSpatialPyramid
from seg_core.models.unet import UNet

__all__ = ["UNetSSPP", "sspp_window_sizes"]


def sspp_window_sizes(input_size: int, depth: int = 4, num_branches: int = 3) -> tuple[int, ...]:
    """Window sizes of the pyramid's branches for images of ``input_size`` pixels.

    Windows ``2, 4, 8, ...`` (one per branch) that fit in the ``ceil(input_size / 2**depth)``
    bottleneck; see the module docstring for the table.

    Raises:
        ValueError: fewer than 2 distinct windows fit, which would collapse the pyramid.
    """
    if num_branches < 2:
        raise ValueError(f"num_branches={num_branches}: a spatial pyramid needs at least 2 branches")
    if input_size < 1:
        raise ValueError(f"input_size must be a positive number of pixels, got {input_size}")
    side = -(-input_size // 2**depth)
    windows = tuple(2 ** (branch + 1) for branch in range(num_branches) if 2 ** (branch + 1) <= side)
    if len(windows) < 2:
        raise ValueError(
            f"input_size={input_size} gives a {side}x{side} bottleneck (input / {2**depth}, rounded up), where only "
            f"window sizes {windows or '(none)'} fit, so the Swin spatial pyramid would collapse to fewer than 2 branches; "
            f"use input_size of at least {4 * 2**depth} (a 4x4 bottleneck: windows 2 and 4), e.g. 128 or 256"
        )
    return windows


class UNetSSPP(UNet):
    """The seed U-Net with a Swin spatial pyramid refining its bottleneck.

    Args:
        in_channels: number of input modalities.
        out_channels: number of output logits per pixel (1 for a binary tumor mask).
        width: channels of the first stage; later stages double it, the bottleneck is ``16 * width``.
        depth: number of pooling steps (4 in the paper).
        input_size: side in pixels of the images the model is meant for; sets the window sizes (see
            :func:`sspp_window_sizes`). Other sizes still run.
        embed_dim: token channels of the Swin branches.
        num_heads: attention heads of every Swin block; must divide ``embed_dim``.
        num_branches: branches asked for; those whose window does not fit the bottleneck are dropped.
        swin_depth: Swin blocks per branch (alternating regular and shifted windows).
        mlp_ratio: hidden width of each Swin MLP relative to ``embed_dim``.

    Attributes:
        window_sizes: the window size of each branch, in bottleneck tokens.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 64,
        depth: int = 4,
        input_size: int = 256,
        embed_dim: int = 192,
        num_heads: int = 6,
        num_branches: int = 3,
        swin_depth: int = 2,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__(in_channels, out_channels, width=width, depth=depth)
        self.input_size = input_size
        self.window_sizes = sspp_window_sizes(input_size, depth, num_branches)
        bottleneck_channels = width * 2**depth
        self.pyramid = SwinSpatialPyramid(
            bottleneck_channels, embed_dim, num_heads, self.window_sizes, depth=swin_depth, mlp_ratio=mlp_ratio
        )

    def refine_bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck map through the Swin spatial pyramid (a residual refinement)."""
        return self.pyramid(x)


unet_sspp = register_model(
    ModelSpec(
        name="unet_sspp",
        title="U-Net + Swin spatial pyramid",
        family="unet",
        reference=(
            "Azad, Heidari, Shariatnia, et al. TransDeepLab: Convolution-Free Transformer-Based DeepLab v3+ for Medical "
            "Image Segmentation. PRIME workshop, MICCAI 2022 (Swin spatial pyramid pooling), on the U-Net of Ronneberger, "
            "Fischer, Brox, MICCAI 2015."
        ),
        description=(
            "A U-Net whose deepest layer looks at the image at several ranges at once. Three small transformer branches "
            "read the compressed feature map through attention windows of different sizes, from a few neighbouring "
            "positions up to the whole slice, and the network learns, position by position, how much to trust each "
            "range before passing the result to the usual U-Net decoder. This helps when deciding whether a region is "
            "tumor depends on context far away, such as the other hemisphere, at the cost of about 10% more parameters "
            "than the plain U-Net."
        ),
        paper_config={"width": 64, "embed_dim": 192, "num_heads": 6, "input_size": 256},
        lite_config={"width": 16, "embed_dim": 64, "num_heads": 2, "input_size": 128},
    )
)(UNetSSPP)
