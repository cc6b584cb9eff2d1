"""Attention and regularisation blocks of the conventional attention networks, chosen by name.

- :class:`AttentionGate`: additive attention gate on a skip connection (Attention U-Net,
  Oktay et al. 2018), used by the U-Net, LinkNet and SegNet variants of the zoo.
- :class:`SpatialAttention`: channel mean + max -> 7x7 convolution -> sigmoid (CBAM's spatial
  branch, Woo et al. 2018), used in SA-UNet's bottleneck (Guo et al. 2020).
- :class:`ChannelAttention` and :class:`CBAM`: CBAM's channel branch, and both branches in turn.
- :class:`DropBlock2d`: structured dropout of contiguous square regions (Ghiasi et al. 2018);
  MONAI and torch have no module of it that matches SA-UNet's reference code, so it lives here.

Networks take attention as a name, as segmentation_models_pytorch does, so a config stays JSON:
:func:`make_skip_attention` builds the attention on a skip connection (driven by a gating signal),
:func:`make_feature_attention` the attention on a feature map. Adding a kind means adding it to
:data:`SKIP_ATTENTIONS` or :data:`FEATURE_ATTENTIONS`.

Each block keeps its attention map in a ``coefficients`` submodule whose output is in ``[0, 1]``
(``(B, 1, H, W)`` per pixel, ``(B, C, 1, 1)`` per channel), so explanation tools and tests can read
it with a forward hook instead of the blocks storing tensors between calls.

Example:
    >>> import torch
    >>> gate = make_skip_attention("gate", skip_channels=8, gating_channels=16)
    >>> gate(torch.ones(1, 8, 32, 32), gating=torch.ones(1, 16, 16, 16)).shape
    torch.Size([1, 8, 32, 32])
    >>> type(make_feature_attention("cbam", channels=32)).__name__
    'CBAM'
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "AttentionGate",
    "SpatialAttention",
    "ChannelAttention",
    "CBAM",
    "DropBlock2d",
    "SKIP_ATTENTIONS",
    "FEATURE_ATTENTIONS",
    "make_skip_attention",
    "make_feature_attention",
]


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018).

    For a skip feature map ``x`` and a gating signal ``g`` from a coarser scale of the decoder::

        alpha = sigmoid(psi(relu(W_x x + W_g g + b_g)) + b_psi)      # (B, 1, H, W), in [0, 1]
        output = alpha * x

    ``W_x``, ``W_g`` and ``psi`` are 1x1 convolutions. The paper computes the sum at the gating
    resolution (``x`` downsampled by a strided ``W_x``) and resamples ``alpha`` back up; here the
    projected gating signal is upsampled bilinearly to the skip instead, so ``alpha`` is computed
    at the skip's own resolution and keeps fine boundaries without a resampler.

    Args:
        skip_channels: channels of the skip feature map ``x``.
        gating_channels: channels of the gating signal ``g``.
        inter_channels: channels of the intermediate sum; defaults to ``skip_channels // 2`` as in
            the paper's reference code.

    Shapes:
        ``skip`` ``(B, skip_channels, H, W)``, ``gating`` ``(B, gating_channels, H', W')`` with any
        ``H', W'`` (usually ``H / 2, W / 2``); output ``(B, skip_channels, H, W)``.
    """

    def __init__(self, skip_channels: int, gating_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter_channels = inter_channels or max(skip_channels // 2, 1)
        # The paper has a single bias b_g for the sum, so W_x needs none.
        self.skip_projection = nn.Conv2d(skip_channels, inter_channels, kernel_size=1, bias=False)
        self.gating_projection = nn.Conv2d(gating_channels, inter_channels, kernel_size=1)
        self.coefficients = nn.Sequential(nn.Conv2d(inter_channels, 1, kernel_size=1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        gate = self.gating_projection(gating)
        if gate.shape[-2:] != skip.shape[-2:]:
            gate = F.interpolate(gate, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        alpha = self.coefficients(F.relu(self.skip_projection(skip) + gate))
        return skip * alpha


class SpatialAttention(nn.Module):
    """Spatial attention (Woo et al., CBAM, ECCV 2018), as used in SA-UNet (Guo et al., ICPR 2020).

    ``output = x * sigmoid(conv7x7([mean_c(x), max_c(x)]))``: the channel-wise mean and maximum
    summarise "where" the features respond, and one 7x7 convolution without bias (as in SA-UNet's
    reference code) turns them into one weight per pixel.

    Args:
        kernel_size: side of the convolution (7 in both papers).

    Shapes:
        input and output ``(B, C, H, W)``; the ``coefficients`` submodule outputs ``(B, 1, H, W)``.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so the map keeps its size, got {kernel_size}")
        self.coefficients = nn.Sequential(
            nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.coefficients(summary)


class ChannelAttention(nn.Module):
    """Channel attention (Woo et al., CBAM, ECCV 2018): ``x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    The spatial average and maximum of every channel go through one shared MLP of 1x1
    convolutions ``C -> C / reduction -> C``; the sum of the two outputs, through a sigmoid,
    weights each channel.

    Args:
        channels: ``C``.
        reduction: hidden width of the MLP is ``C // reduction`` (at least 1; 16 in the paper).

    Shapes:
        input and output ``(B, C, H, W)``; the ``coefficients`` submodule outputs ``(B, C, 1, 1)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
        )
        self.coefficients = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * self.coefficients(summary)


class CBAM(nn.Sequential):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018): channel attention, then spatial attention.

    Args:
        channels: ``C``.
        reduction: reduction of the channel MLP (16 in the paper).
        kernel_size: side of the spatial attention's convolution (7 in the paper).

    Shapes:
        input and output ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__(ChannelAttention(channels, reduction), SpatialAttention(kernel_size))


SKIP_ATTENTIONS: dict[str, Callable[[int, int], nn.Module]] = {
    "gate": lambda skip_channels, gating_channels: AttentionGate(skip_channels, gating_channels),
}
"""Attention on a skip connection: ``(skip_channels, gating_channels) -> module(skip, gating=...)``."""

FEATURE_ATTENTIONS: dict[str, Callable[[int], nn.Module]] = {
    "spatial": lambda channels: SpatialAttention(kernel_size=7),
    "channel": lambda channels: ChannelAttention(channels),
    "cbam": lambda channels: CBAM(channels),
}
"""Attention on a feature map: ``channels -> module(x)`` keeping the shape of ``x``."""


def make_skip_attention(name: str, skip_channels: int, gating_channels: int) -> nn.Module:
    """The skip attention called ``name`` (see :data:`SKIP_ATTENTIONS`) for these channels.

    Raises:
        ValueError: ``name`` is unknown; the message lists the valid names.
    """
    if name not in SKIP_ATTENTIONS:
        raise ValueError(f"unknown skip attention {name!r}; choose one of: {', '.join(SKIP_ATTENTIONS)}")
    return SKIP_ATTENTIONS[name](skip_channels, gating_channels)


def make_feature_attention(name: str, channels: int) -> nn.Module:
    """The feature-map attention called ``name`` (see :data:`FEATURE_ATTENTIONS`) for ``channels`` channels.

    Raises:
        ValueError: ``name`` is unknown; the message lists the valid names.
    """
    if name not in FEATURE_ATTENTIONS:
        raise ValueError(f"unknown feature attention {name!r}; choose one of: {', '.join(FEATURE_ATTENTIONS)}")
    return FEATURE_ATTENTIONS[name](channels)


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi, Lin, Le, "DropBlock: A regularization method for convolutional networks", NeurIPS 2018).

    In training, drops ``block_size x block_size`` squares of each channel independently and
    rescales the rest so the expected activation is unchanged; in eval mode it is the identity.
    Dropping contiguous regions, unlike dropout, removes the spatially correlated information a
    convolution could otherwise recover from the neighbours. Seeds are drawn only where a whole
    block fits, with the paper's rate

        gamma = (1 - keep_prob) / block_size**2 * H * W / ((H - block_size + 1) * (W - block_size + 1))

    as in SA-UNet's reference code. On maps smaller than ``block_size`` the block shrinks to the
    map, so the regularisation stays at the requested rate instead of silently switching off.

    Args:
        block_size: side of the dropped squares (7 in SA-UNet).
        keep_prob: expected fraction of activations kept (0.9 in SA-UNet).

    Shapes:
        input and output ``(B, C, H, W)``.
    """

    def __init__(self, block_size: int = 7, keep_prob: float = 0.9) -> None:
        super().__init__()
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        self.block_size = block_size
        self.keep_prob = keep_prob

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, keep_prob={self.keep_prob}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.keep_prob == 1.0:
            return x
        batch, channels, height, width = x.shape
        block = min(self.block_size, height, width)
        gamma = (1.0 - self.keep_prob) / block**2 * height * width / ((height - block + 1) * (width - block + 1))
        # One seed per valid top-left corner; max pooling over the zero-padded seeds grows each seed
        # into its block, which then lies wholly inside the map.
        seeds = torch.bernoulli(x.new_full((batch, channels, height - block + 1, width - block + 1), min(gamma, 1.0)))
        dropped = F.max_pool2d(F.pad(seeds, (block - 1, block - 1, block - 1, block - 1)), kernel_size=block, stride=1)
        keep = 1.0 - dropped
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))
