"""Attention and regularisation blocks of the conventional attention networks.

- :class:`AttentionGate`: additive attention gate on a skip connection (Attention U-Net,
  Oktay et al. 2018), also used by the LinkNet and SegNet variants of the zoo.
- :class:`SpatialAttention`: channel mean + max -> 7x7 convolution -> sigmoid (CBAM's spatial
  branch, Woo et al. 2018), used in SA-UNet's bottleneck (Guo et al. 2020).
- :class:`DropBlock2d`: structured dropout of contiguous square regions (Ghiasi et al. 2018);
  MONAI and torch have no module of it that matches SA-UNet's reference code, so it lives here.

Each block keeps its attention map in a ``coefficients`` submodule whose output is ``(B, 1, H, W)``
in ``[0, 1]``, so explanation tools and tests can read it with a forward hook instead of the blocks
storing tensors between calls.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AttentionGate", "SpatialAttention", "DropBlock2d"]


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
