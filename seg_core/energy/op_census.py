"""Every ATen op of a forward pass, counted or listed as uncounted: no op's cost is silently zero.

:class:`OpCensus` is a ``TorchDispatchMode``: it sees each op PyTorch dispatches, whatever Python
code issued it (layers, ``F.*`` calls, ``torch.cdist``, attention), and sorts it by a rule:

* ``"macs"``: multiply-accumulates counted from the operands' shapes (convolutions, matrix
  products, pairwise distances, fused attention). These enter the energy estimate.
* ``"uncounted"``: ops that move data or compute element by element (activations, normalisation,
  pooling, interpolation, reductions, copies, concatenation). By the convention of the energy
  literature they are left out of the estimate, but they are listed with their output elements,
  so a reader sees what was left out and how large it is.
* ``"free"``: views and metadata (reshape, permute, slicing): no arithmetic, no copy.

An op with no rule lands in :attr:`OpCensus.unclassified`; the energy tests run every registered
architecture under the census and fail on any, so a new layer cannot add cost that reads as 0.

Why not ``torch.utils.flop_counter.FlopCounterMode`` alone: it has formulas for convolutions and
matrix products only, and counts every other op, ``torch.cdist`` included, as 0 without a word.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["OpCensus", "OpRecord", "MAC_RULES", "UNCOUNTED_OPS", "FREE_OPS"]


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else ()


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def _conv_macs(args: tuple, kwargs: dict, out: Any) -> int:
    # Each output element sums (in_channels / groups) x kernel elements products; a transposed
    # convolution does the same work scattered from each input element instead.
    x, weight = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    kernel = _numel(_shape(weight)[2:])
    if transposed:
        return _numel(_shape(x)) * _shape(weight)[1] * kernel
    return _numel(_shape(out)) * _shape(weight)[1] * kernel


def _mm_macs(args: tuple, kwargs: dict, out: Any) -> int:
    first, second = _shape(args[0]), _shape(args[1])
    return first[0] * first[1] * second[1]


def _addmm_macs(args: tuple, kwargs: dict, out: Any) -> int:
    return _mm_macs(args[1:], kwargs, out)


def _bmm_macs(args: tuple, kwargs: dict, out: Any) -> int:
    first, second = _shape(args[0]), _shape(args[1])
    return first[0] * first[1] * first[2] * second[2]


def _baddbmm_macs(args: tuple, kwargs: dict, out: Any) -> int:
    return _bmm_macs(args[1:], kwargs, out)


def _cdist_macs(args: tuple, kwargs: dict, out: Any) -> int:
    # |x - y|^2 over M features for each of the P x R pairs: one subtraction and one
    # multiply-accumulate per feature, counted as one MAC (the square root is per pair).
    x = _shape(args[0])
    return _numel(_shape(out)) * x[-1]


def _euclidean_macs(args: tuple, kwargs: dict, out: Any) -> int:
    # torch.cdist's matrix path (p = 2): P x R distances over M features.
    return _numel(_shape(out)) * _shape(args[0])[-1]


def _mv_macs(args: tuple, kwargs: dict, out: Any) -> int:
    return _numel(_shape(args[0]))


def _attention_macs(args: tuple, kwargs: dict, out: Any) -> int:
    # softmax(Q K^T) V: (L x E) by (E x S), then (L x S) by (S x Ev), per batch and head.
    query, key, value = _shape(args[0]), _shape(args[1]), _shape(args[2])
    batch = _numel(query[:-2])
    return batch * query[-2] * key[-2] * (query[-1] + value[-1])


#: ATen op name -> MACs from ``(args, kwargs, output)``.
MAC_RULES: dict[str, Callable[[tuple, dict, Any], int]] = {
    "aten.convolution.default": _conv_macs,
    "aten.mm.default": _mm_macs,
    "aten.addmm.default": _addmm_macs,
    "aten.bmm.default": _bmm_macs,
    "aten.baddbmm.default": _baddbmm_macs,
    "aten._cdist_forward.default": _cdist_macs,
    "aten._euclidean_dist.default": _euclidean_macs,
    "aten.mv.default": _mv_macs,
    "aten._scaled_dot_product_flash_attention_for_cpu.default": _attention_macs,
    "aten._scaled_dot_product_efficient_attention.default": _attention_macs,
    "aten._scaled_dot_product_flash_attention.default": _attention_macs,
}

#: Ops that compute element by element or move data: listed, left out of the energy (by convention).
UNCOUNTED_OPS = frozenset(
    {
        # activations and pointwise arithmetic
        "aten.relu.default", "aten.relu_.default", "aten.sigmoid.default", "aten.sigmoid_.default",
        "aten.tanh.default", "aten.gelu.default", "aten.silu.default", "aten.hardtanh.default",
        "aten.leaky_relu.default", "aten.clamp.default", "aten.clamp_min.default", "aten.clamp_max.default",
        "aten.add.Tensor", "aten.add_.Tensor", "aten.add.Scalar", "aten.sub.Tensor", "aten.sub.Scalar",
        "aten.rsub.Scalar", "aten.mul.Tensor", "aten.mul_.Tensor", "aten.mul.Scalar", "aten.mul_.Scalar",
        "aten.div.Tensor", "aten.div_.Tensor", "aten.div.Scalar", "aten.pow.Tensor_Scalar", "aten.sqrt.default",
        "aten.rsqrt.default", "aten.exp.default", "aten.log.default", "aten.abs.default", "aten.neg.default",
        "aten.where.self", "aten.gt.Scalar", "aten.ge.Scalar", "aten.lt.Scalar", "aten.le.Scalar",
        "aten.gt.Tensor", "aten.ge.Tensor", "aten.lt.Tensor", "aten.eq.Scalar", "aten.ne.Scalar",
        "aten.logical_not.default", "aten.bitwise_not.default", "aten.bitwise_or.Tensor", "aten.bitwise_and.Tensor",
        "aten.le.Tensor", "aten.ne.Tensor", "aten.eq.Tensor", "aten.logit.default", "aten.fill_.Tensor", "aten.masked_fill.Scalar", "aten.masked_fill_.Scalar",
        "aten.addcmul.default", "aten.addcdiv.default", "aten.lerp.Scalar", "aten.heaviside.default",
        "aten.sign.default", "aten.floor.default", "aten.round.default", "aten.fill_.Scalar", "aten.zero_.default",
        "aten.sum.dim_IntList", "aten.sum.default", "aten.mean.dim", "aten.mean.default", "aten.amax.default",
        "aten.max.dim", "aten.min.dim", "aten.argmax.default", "aten.var.correction", "aten.var_mean.correction",
        "aten.std.correction", "aten.cumsum.default", "aten.topk.default", "aten.sort.default",
        "aten._softmax.default", "aten._log_softmax.default", "aten.softmax.int",
        # normalisation
        "aten._native_batch_norm_legit_no_training.default", "aten.native_batch_norm.default",
        "aten._native_batch_norm_legit.default", "aten.native_layer_norm.default", "aten.native_group_norm.default",
        "aten.linalg_vector_norm.default",
        # pooling and interpolation
        "aten.max_pool2d_with_indices.default", "aten.max_pool2d.default", "aten.avg_pool2d.default",
        "aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default",
        "aten.max_unpool2d.default", "aten.upsample_bilinear2d.default", "aten.upsample_bilinear2d.vec",
        "aten.upsample_nearest2d.default", "aten.upsample_nearest2d.vec", "aten._upsample_bilinear2d_aa.default",
        "aten.grid_sampler_2d.default", "aten.constant_pad_nd.default", "aten.reflection_pad2d.default",
        # data movement
        "aten.clone.default", "aten.copy_.default", "aten._to_copy.default", "aten.cat.default", "aten.stack.default",
        "aten.index.Tensor", "aten.index_put_.default", "aten.index_select.default", "aten.gather.default",
        "aten.scatter.src", "aten.roll.default", "aten.repeat.default", "aten.flip.default", "aten.new_zeros.default",
        "aten.zeros_like.default", "aten.ones_like.default", "aten.empty_like.default", "aten.full_like.default",
        "aten.new_empty.default", "aten.new_full.default", "aten.empty.memory_format", "aten.zeros.default",
        "aten.ones.default", "aten.full.default", "aten.arange.start", "aten.arange.default", "aten.lift_fresh.default",
        "aten.bernoulli_.float", "aten.rand_like.default", "aten.randn_like.default", "aten.native_dropout.default",
        "aten.scalar_tensor.default", "aten.tril.default", "aten.triu.default", "aten.masked_select.default",
        "aten.nonzero.default", "aten.bucketize.Tensor", "aten.searchsorted.Tensor", "aten.unique_consecutive.default",
    }
)  # fmt: skip

#: Views and metadata: no arithmetic and no copy.
FREE_OPS = frozenset(
    {
        "aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "aten.permute.default",
        "aten.transpose.int", "aten.t.default", "aten.expand.default", "aten.slice.Tensor", "aten.select.int",
        "aten.unsqueeze.default", "aten.squeeze.dim", "aten.squeeze.default", "aten.squeeze.dims",
        "aten.detach.default", "aten.alias.default", "aten.split.Tensor", "aten.split_with_sizes.default",
        "aten.unbind.int", "aten.chunk.default", "aten.unfold.default", "aten.as_strided.default",
        "aten.flatten.using_ints", "aten.unflatten.int", "aten.contiguous.default", "aten.is_same_size.default",
        "aten.sym_size.int", "aten.sym_stride.int", "aten.sym_numel.default", "aten.sym_storage_offset.default",
        "aten.expand_as.default", "aten.view_as.default", "aten.narrow.default", "aten.movedim.int",
        "aten._local_scalar_dense.default", "aten.item.default", "aten.empty_strided.default", "aten.set_.source_Storage",
        "prim.device.default", "aten.dim.default", "aten.stride.default", "aten.size.default",
    }
)  # fmt: skip


@dataclass
class OpRecord:
    """One op's share of a forward pass."""

    op: str
    category: str  # "macs", "uncounted", "free" or "unclassified"
    calls: int = 0
    macs: int = 0
    output_elements: int = 0


class OpCensus(TorchDispatchMode):
    """Record every ATen op run inside the ``with`` block, with its MACs or its output size.

    Run the model under ``torch.no_grad()``, not ``torch.inference_mode()``: in inference mode
    composite ops (``conv2d``, ``linear``, ``cdist``) reach the census undecomposed, with no rule.

    Example:
        >>> import torch
        >>> with OpCensus() as census:
        ...     _ = torch.cdist(torch.ones(1, 5, 3), torch.ones(1, 4, 3))
        >>> census.macs
        60
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, OpRecord] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        if name in MAC_RULES:
            category = "macs"
        elif name in UNCOUNTED_OPS:
            category = "uncounted"
        elif name in FREE_OPS:
            category = "free"
        else:
            category = "unclassified"
        record = self.records.setdefault(name, OpRecord(name, category))
        record.calls += 1
        first = out[0] if isinstance(out, tuple | list) and out else out
        record.output_elements += _numel(_shape(first))
        if category == "macs":
            record.macs += int(MAC_RULES[name](args, kwargs, first))
        return out

    @property
    def macs(self) -> int:
        """MACs of every op with a rule."""
        return sum(record.macs for record in self.records.values())

    @property
    def unclassified(self) -> list[str]:
        """Ops that ran without a rule: their cost is unknown, not zero."""
        return sorted(name for name, record in self.records.items() if record.category == "unclassified")

    def uncounted(self) -> list[OpRecord]:
        """The ops left out of the energy by convention, largest output first."""
        left_out = [record for record in self.records.values() if record.category == "uncounted"]
        return sorted(left_out, key=lambda record: -record.output_elements)
