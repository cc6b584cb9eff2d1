"""Storing weight tensors as per-channel int8: half the bytes of float16, widened to float32 at load.

The zoo ships 36 models in git and ``weights/`` has an 80 MB budget; float16 safetensors alone
would need about 120 MB. Only *storage* shrinks: the network still computes in float32, on the
decoded weights. Each weight tensor (a float tensor of 2 or more dimensions: conv, transposed
conv and linear kernels) is stored as int8 with one float32 scale per slice along dimension 0,
symmetric, ``scale = max|w| / 127``, the scheme ONNX Runtime uses for per-channel int8 weights.
Everything else (biases, batch-norm statistics, thresholds, integer buffers) keeps the float16
or float32 it had. ``python -m seg_core store-int8`` converts a trained folder only when the
validation Dice drops by at most 0.005, and records both figures.

Hand-written because the libraries that quantise weights (torchao, optimum-quanto) quantise for
int8 *inference* and must then be installed to load the file; this codec is a dozen lines of
torch and keeps ``model.safetensors`` a plain safetensors file any reader can open.
"""

from __future__ import annotations

import torch

__all__ = ["CODEC", "SCALE_SUFFIX", "decode_int8", "encode_int8", "stored_as_int8"]

#: ``codec`` in the safetensors metadata of a file written by :func:`encode_int8`.
CODEC = "int8-per-channel-symmetric"
#: A weight ``w`` is stored as ``w`` (int8) and ``w`` + this suffix (float32, one per channel).
SCALE_SUFFIX = "_scale"
_LEVELS = 127


def stored_as_int8(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a kernel this codec stores as int8 (a float tensor of 2+ dimensions)."""
    return tensor.is_floating_point() and tensor.dim() >= 2


def encode_int8(state: dict[str, torch.Tensor], half: bool = True) -> dict[str, torch.Tensor]:
    """``state`` with every kernel as int8 plus its per-channel scale; other floats float16 when ``half``."""
    stored: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        if stored_as_int8(value):
            if key + SCALE_SUFFIX in state:  # the scale's name would shadow a real tensor
                raise ValueError(f"cannot store {key} as int8: the state already has {key + SCALE_SUFFIX}")
            weights = value.float()
            amax = weights.abs().flatten(1).amax(dim=1)
            # An all-zero channel gets scale 1, not 0: dividing by it must stay finite.
            scale = torch.where(amax > 0, amax / _LEVELS, torch.ones_like(amax))
            shape = (-1,) + (1,) * (weights.dim() - 1)
            stored[key] = torch.round(weights / scale.view(shape)).clamp(-_LEVELS, _LEVELS).to(torch.int8)
            stored[key + SCALE_SUFFIX] = scale
        else:
            stored[key] = value.half() if half and value.is_floating_point() else value
    return stored


def decode_int8(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict :func:`encode_int8` stored, kernels widened to float32 (scale times level)."""
    scales = {key[: -len(SCALE_SUFFIX)]: value for key, value in stored.items() if key.endswith(SCALE_SUFFIX)}
    state: dict[str, torch.Tensor] = {}
    for key, value in stored.items():
        if key.endswith(SCALE_SUFFIX) and key[: -len(SCALE_SUFFIX)] in stored:
            continue
        if key in scales:
            if value.dtype != torch.int8:
                raise ValueError(f"{key} has a scale but is stored as {value.dtype}, not int8")
            shape = (-1,) + (1,) * (value.dim() - 1)
            value = value.float() * scales[key].float().view(shape)
        state[key] = value
    return state
