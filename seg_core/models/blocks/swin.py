"""Swin transformer blocks for 2D feature maps, and the Swin spatial pyramid built from them.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021
(window attention, shifted windows); Azad et al., "TransDeepLab: Convolution-Free
Transformer-Based DeepLab v3+ for Medical Image Segmentation", PRIME workshop at MICCAI 2022 (the
Swin spatial pyramid: parallel Swin branches that differ only in their window size).

The attention itself is MONAI's :class:`~monai.networks.nets.swin_unetr.WindowAttention` (relative
position bias, 2D windows). The block around it is ours rather than MONAI's
``SwinTransformerBlock`` for two reasons: MONAI's ``BasicLayer`` needs ``einops``, and when a
feature map is smaller than the window MONAI shrinks the window to the map, after which its
relative position bias is indexed for the wrong geometry (it keeps the first ``n`` rows of the
table built for the full window). Here the window never changes: the token grid is padded up to a
multiple of the window and the padded tokens are masked out as keys, so a window larger than the
map is exactly global attention over the real tokens, with the bias it was trained with.

Example:
    >>> import torch
    >>> from seg_core.models.blocks.swin import SwinSpatialPyramid
    >>> pyramid = SwinSpatialPyramid(in_channels=128, embed_dim=64, num_heads=2, window_sizes=(2, 4, 8))
    >>> pyramid(torch.randn(1, 128, 7, 9)).shape
    torch.Size([1, 128, 7, 9])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks.mlp import MLPBlock
from monai.networks.nets.swin_unetr import WindowAttention, window_partition, window_reverse

__all__ = [
    "window_attention_mask",
    "SwinBlock",
    "SwinStage",
    "ScaleAttention",
    "ContextualChannelAttention",
    "SwinSpatialPyramid",
]

# Additive attention bias that switches a key off. Finite, as in the reference Swin: a window made
# only of padding then gets a uniform (and later discarded) softmax instead of NaN.
_MASKED = -100.0


def _region_slices(window: int, shift: int) -> tuple[slice, ...]:
    # After a cyclic shift the last window along an axis holds tokens from both ends of the map;
    # labelling the three bands lets the mask stop them attending to each other.
    if shift == 0:
        return (slice(None),)
    return (slice(0, -window), slice(-window, -shift), slice(-shift, None))


def window_attention_mask(
    height: int,
    width: int,
    window: int,
    shift: tuple[int, int],
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor | None:
    """Additive attention mask for windows over a padded, cyclically shifted token grid.

    The grid ``(height, width)`` is padded at the bottom and right up to multiples of ``window`` and
    rolled by ``-shift``. A query may attend to a key only when both come from the same region of
    the unrolled map (shifted windows) and the key is a real token, not padding.

    Args:
        height: rows of the unpadded token grid.
        width: columns of the unpadded token grid.
        window: side of the square attention window, in tokens.
        shift: cyclic shift ``(rows, columns)``; ``(0, 0)`` for regular windows.
        device: where to build the mask.
        dtype: dtype of the mask (that of the attention logits).

    Returns:
        ``(num_windows, window**2, window**2)`` with 0 where attention is allowed and -100 where
        not, windows in :func:`~monai.networks.nets.swin_unetr.window_partition` order; ``None``
        when nothing needs masking (no shift and no padding).
    """
    padded_h, padded_w = -(-height // window) * window, -(-width // window) * window
    if not any(shift) and (padded_h, padded_w) == (height, width):
        return None
    regions = torch.zeros(1, padded_h, padded_w, 1, device=device)
    label = 0
    for rows in _region_slices(window, shift[0]):
        for cols in _region_slices(window, shift[1]):
            regions[:, rows, cols, :] = label
            label += 1
    # Validity is known in map coordinates, so it is rolled like the tokens; region labels are
    # defined directly in the shifted frame (as in the reference implementation).
    valid = torch.zeros(1, padded_h, padded_w, 1, device=device)
    valid[:, :height, :width, :] = 1.0
    if any(shift):
        valid = torch.roll(valid, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    region_windows = window_partition(regions, (window, window)).squeeze(-1)  # (num_windows, n)
    valid_windows = window_partition(valid, (window, window)).squeeze(-1)
    blocked = (region_windows[:, :, None] != region_windows[:, None, :]) | (valid_windows[:, None, :] == 0)
    return torch.zeros(blocked.shape, device=device, dtype=dtype).masked_fill(blocked, _MASKED)


class SwinBlock(nn.Module):
    """One Swin transformer block: (shifted-)window self-attention then an MLP, both pre-norm residual.

    ``x + WMSA(LN(x))`` then ``x + MLP(LN(x))``. The grid is padded to a multiple of the window
    (padded keys masked), so any map size works; the shift is dropped along an axis that fits in
    a single window, where shifting would only split the map without connecting anything.

    Args:
        dim: token channels ``C``.
        num_heads: attention heads; must divide ``dim``.
        window_size: side of the square attention window, in tokens.
        shifted: shift the windows by half a window (SW-MSA) instead of regular windows (W-MSA).
        mlp_ratio: hidden width of the MLP relative to ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shifted: bool = False, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the token channels dim={dim}")
        if window_size < 1:
            raise ValueError(f"window_size must be a positive number of tokens, got {window_size}")
        self.window_size = window_size
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=(window_size, window_size), qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(hidden_size=dim, mlp_dim=int(dim * mlp_ratio), act="GELU", dropout_mode="swin")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, H, W, C)`` -> ``(B, H, W, C)``."""
        batch, height, width, channels = x.shape
        window = self.window_size
        shift = tuple(window // 2 if self.shifted and side > window else 0 for side in (height, width))
        pad_h, pad_w = (-height) % window, (-width) % window
        # Padding after the norm keeps the padded tokens exactly zero; they are masked as keys anyway.
        tokens = F.pad(self.norm1(x), (0, 0, 0, pad_w, 0, pad_h))
        if any(shift):
            tokens = torch.roll(tokens, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        mask = window_attention_mask(height, width, window, shift, device=x.device, dtype=x.dtype)
        windows = self.attn(window_partition(tokens, (window, window)), mask)
        tokens = window_reverse(windows, (window, window), (batch, height + pad_h, width + pad_w))
        if any(shift):
            tokens = torch.roll(tokens, shifts=shift, dims=(1, 2))
        x = x + tokens[:, :height, :width, :]
        return x + self.mlp(self.norm2(x))


class SwinStage(nn.Module):
    """``depth`` Swin blocks at one window size, alternating W-MSA and SW-MSA, then a LayerNorm.

    One branch of the spatial pyramid. The final norm puts every branch on the same scale before
    the scale attention compares them.

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        window_size: side of the attention window, in tokens.
        depth: number of blocks; odd-numbered ones (1, 3, ...) use shifted windows.
        mlp_ratio: hidden width of each MLP relative to ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, depth: int = 2, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1 block, got {depth}")
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, shifted=index % 2 == 1, mlp_ratio=mlp_ratio) for index in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map ``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        tokens = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens).permute(0, 3, 1, 2).contiguous()


class ScaleAttention(nn.Module):
    """Attention over the pyramid's branches: per position, softmax weights that sum to 1.

    The weights are computed from all branches together (a 1x1 two-layer MLP over their
    concatenation), so each position can pick the context size that suits it: a small window at
    a tumor boundary, the widest one inside a large homogeneous region.

    Args:
        dim: channels ``C`` of each branch.
        num_branches: number of branches ``M``.
    """

    def __init__(self, dim: int, num_branches: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Conv2d(num_branches * dim, dim, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(dim, num_branches, kernel_size=1),
        )

    def forward(self, branches: Sequence[torch.Tensor]) -> torch.Tensor:
        """``M`` maps ``(B, C, H, W)`` -> weights ``(B, M, H, W)``, summing to 1 over ``M``."""
        return torch.softmax(self.score(torch.cat(list(branches), dim=1)), dim=1)


class ContextualChannelAttention(nn.Module):
    """Cross-contextual token attention: global average over tokens -> MLP -> sigmoid -> channel gates.

    Squeeze-and-excitation over the fused tokens: the image-level summary of every scale decides
    which channels of every token to keep.

    Args:
        dim: channels ``C``.
        reduction: hidden width of the MLP is ``dim // reduction`` (at least 1).
    """

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``, each channel scaled by a gate in (0, 1)."""
        gates = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))))
        return x * gates[:, :, None, None]


class SwinSpatialPyramid(nn.Module):
    """Swin spatial pyramid pooling (SSPP) over a feature map, as a residual refinement.

    ``x + BN(conv1x1(CCA(sum_m a_m * Swin_m(conv1x1(x)))))``: the map is projected to
    ``embed_dim`` tokens, each branch ``m`` runs ``depth`` Swin blocks with its own window size
    (a window as large as the map is global attention), :class:`ScaleAttention` weights ``a_m``
    fuse the branches per position, :class:`ContextualChannelAttention` reweights the channels,
    and a 1x1 convolution with BatchNorm projects back to ``in_channels``. The residual keeps the
    convolutional features, so the pyramid adds context rather than replacing them.

    Args:
        in_channels: channels of the input map (the U-Net bottleneck).
        embed_dim: token channels inside the pyramid.
        num_heads: attention heads of every Swin block; must divide ``embed_dim``.
        window_sizes: one distinct window size per branch, at least two.
        depth: Swin blocks per branch (W-MSA, SW-MSA, ...).
        mlp_ratio: hidden width of each Swin MLP relative to ``embed_dim``.
        reduction: reduction of the channel-attention MLP.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        num_heads: int,
        window_sizes: Sequence[int],
        depth: int = 2,
        mlp_ratio: float = 4.0,
        reduction: int = 4,
    ) -> None:
        super().__init__()
        window_sizes = tuple(int(size) for size in window_sizes)
        if len(set(window_sizes)) != len(window_sizes) or len(window_sizes) < 2:
            raise ValueError(
                f"a spatial pyramid needs at least 2 distinct window sizes, one per branch, got {window_sizes}; "
                "equal windows would make branches that see the same context"
            )
        self.window_sizes = window_sizes
        self.proj_in = nn.Conv2d(in_channels, embed_dim, kernel_size=1)
        self.branches = nn.ModuleList(SwinStage(embed_dim, num_heads, size, depth, mlp_ratio) for size in window_sizes)
        self.scale_attention = ScaleAttention(embed_dim, len(window_sizes))
        self.channel_attention = ContextualChannelAttention(embed_dim, reduction)
        self.proj_out = nn.Sequential(
            nn.Conv2d(embed_dim, in_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(in_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, in_channels, H, W)``, any ``H, W``."""
        tokens = self.proj_in(x)
        branches = [branch(tokens) for branch in self.branches]
        weights = self.scale_attention(branches)
        fused = sum(weights[:, index : index + 1] * branch for index, branch in enumerate(branches))
        return x + self.proj_out(self.channel_attention(fused))
