"""Why did the model mark this region? Captum attributions, a faithfulness check, and spiking activity.

Three kinds of explanation, for any model of the zoo (:func:`seg_core.models.list_models`), one
module and one entry function each:

* :mod:`~seg_core.explain.captum`, :func:`attribute`: which input pixels the model's tumor score
  depends on (Saliency, Integrated Gradients, Grad-CAM, Occlusion). The score is the sum of the
  tumor logits over the region the model itself predicts (:mod:`~seg_core.explain.inputs`); the
  layers Grad-CAM can use come from :mod:`~seg_core.explain.layers`.
* :mod:`~seg_core.explain.faithfulness`, :func:`deletion_curve`: the most salient pixels are
  deleted first and the prediction re-measured; a faithful map makes the curve fall fast, random
  order (:func:`random_deletion_curve`) is the reference.
* :mod:`~seg_core.explain.spikes`, :func:`explain_spiking`: for the spiking ResNets, per block and
  time step, the attention weights, spike-rate maps and a raster of sampled neurons.

:func:`explain_slice` (:mod:`~seg_core.explain.slice_explanation`) runs all three on one slice of a
scan, as the app's Explain page shows them.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("unet", width=8).eval()
    >>> x = torch.rand(1, 1, 64, 64)
    >>> region, source = tumor_region(net, x)
    >>> result = attribute(net, x, "saliency", region)
    >>> result.heatmap.shape, float(result.heatmap.max()) <= 1.0
    ((64, 64), True)
    >>> curve = deletion_curve(net, x, result.heatmap, region)
    >>> 0.0 <= curve.auc_probability <= 1.0
    True
"""

from __future__ import annotations

# Each module lists its public names in its own __all__; the package offers exactly those.
from seg_core.explain import captum, estimate, faithfulness, inputs, layers, slice_explanation, spike_words, spikes
from seg_core.explain.captum import *  # noqa: F403
from seg_core.explain.estimate import *  # noqa: F403
from seg_core.explain.faithfulness import *  # noqa: F403
from seg_core.explain.inputs import *  # noqa: F403
from seg_core.explain.layers import *  # noqa: F403
from seg_core.explain.slice_explanation import *  # noqa: F403
from seg_core.explain.spike_words import *  # noqa: F403
from seg_core.explain.spikes import *  # noqa: F403

__all__ = [
    *captum.__all__,
    *estimate.__all__,
    *faithfulness.__all__,
    *inputs.__all__,
    *layers.__all__,
    *slice_explanation.__all__,
    *spike_words.__all__,
    *spikes.__all__,
]
