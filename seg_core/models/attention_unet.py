"""Attention U-Net (Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018).

The U-Net of :mod:`seg_core.models.unet` (four ``2x(conv3x3-BN-ReLU)`` stages at
``width * (1, 2, 4, 8)`` channels, a ``16 * width`` bottleneck, 2x2 transposed-convolution
decoder) with an additive attention gate on every skip connection: before a skip is concatenated
into the decoder, it is multiplied by per-pixel coefficients in ``[0, 1]`` computed from the skip
and from the coarser decoder state (the gating signal), so irrelevant regions are suppressed.
``width=64`` is the paper size (about 31.6 M parameters); ``width=16`` is the "lite" size (about
2.0 M).

Example:
    >>> from seg_core.models import create_model
    >>> net = create_model("attention_unet", width=16, in_channels=1)
    >>> len(net.gates), type(net.gates[0]).__name__  # one gate per skip, deepest first
    (4, 'AttentionGate')
"""

from __future__ import annotations

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.unet import UNet


class AttentionUNet(UNet):
    """U-Net with additive attention gates on its skips (``UNet(skip_attention="gate")``).

    The gating signal of the skip at level ``l`` is the decoder state one level deeper (before its
    upsampling), as in the paper: it has seen more context than the skip and tells the gate which
    regions matter. The gates are ``gates[i]``, deepest first, like the decoders.

    Args:
        in_channels, out_channels, width, depth: as for :class:`~seg_core.models.unet.UNet`.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 64, depth: int = 4) -> None:
        super().__init__(in_channels, out_channels, width=width, depth=depth, skip_attention="gate")


attention_unet = register_model(
    ModelSpec(
        name="attention_unet",
        title="Attention U-Net",
        family="unet",
        reference="Oktay, Schlemper, Le Folgoc, et al. Attention U-Net: Learning Where to Look for the Pancreas. MIDL 2018.",
        description=(
            "A U-Net whose skip connections pass through attention gates. Each gate looks at the fine "
            "encoder features and at the coarser, more informed decoder features and gives every pixel a "
            "weight between 0 and 1, so the decoder hears mostly about regions that look relevant (the "
            "tumor and its border) and less about healthy tissue. The weights can be shown as heat maps. "
            "It costs about 2% more parameters than the plain U-Net."
        ),
        input_multiple=16,
        paper_config={"width": 64},
        lite_config={"width": 16},
        seed_parameters=31.7e6,
    )
)(AttentionUNet)
