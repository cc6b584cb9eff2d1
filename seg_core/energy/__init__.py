"""Compute cost of any model of the zoo: parameters, MACs, synaptic operations, energy, CPU latency.

What is counted, and how:

* **MACs** (multiply-accumulates) of every ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d`` and
  ``Linear`` layer, counted by forward hooks from the shapes of each call's actual input and
  output. A layer run on a ``(T*B, C, H, W)`` batch, or called once per time step, is therefore
  counted for all ``T`` steps. Bias additions, normalisation, activations, pooling and neuron
  updates are not counted, as in the literature cited below. Matrix products that run outside
  such layers (``torch.bmm`` in attention, ``F.conv2d`` in a custom block, ``torch.cdist``) are
  found by the op census below and reported as one
  extra dense row, ``(functional ops)``, so that no multiply is silently left out.
  The whole pass runs under :class:`~seg_core.energy.op_census.OpCensus`, which gives every ATen op a
  rule: MACs from the shapes (convolutions, matrix products, ``torch.cdist``, fused attention),
  "uncounted" (listed in the report with its size), or "free" (views). An op with no rule is
  reported in ``unclassified_ops``, never counted as 0.
* **Input spike rate** of each layer call: the fraction of ones in the layer's input when every
  value of that input is 0 or 1 (spikes). Each call is classified on its own. An all-zero input
  is ambiguous (a silent spike map, or an analog map that happens to be zero, such as a ReLU
  over one hidden unit), so it follows the layer's other calls: silent steps of a spiking layer
  cost no SOPs, while a layer that ever receives analog input pays dense MACs for them too.
* **Synaptic operations**: for a call whose input is spikes, ``SOPs = MACs x rate``: a binary
  input only triggers an accumulate of the weight for each spike, never a multiply. Summed over
  the ``T`` calls this is ``MACs per step x mean rate x T`` (Yao et al. 2023; Zhou et al. 2023).
* **Energy**: ``dense MACs x E_MAC_PJ + SOPs x E_AC_PJ``. Horowitz (2014) gives, for 32-bit
  floating point in 45 nm CMOS, 3.7 pJ per multiply and 0.9 pJ per add, hence 4.6 pJ per MAC
  and 0.9 pJ per accumulate. Memory access is left out (it usually dominates on real hardware),
  so the figures compare operation counts in a common unit; they do not predict a chip's power.

Conventions:

* **Direct encoding.** A spiking model receives the analog image, repeated over time steps; its
  first layer therefore performs real multiplies and is counted as dense MACs (its input is not
  binary), while every later layer fed by spiking neurons is counted as SOPs. This is the
  convention of the spiking-segmentation and attention-SNN papers the zoo follows.
* **Data-dependent rates.** Spike rates depend on the input, so the default sample is a
  synthetic head-like phantom (skull, grey and white matter, ventricles, an enhancing tumour
  with oedema), normalised to [0, 1] as the app normalises real scans: random noise would
  drive neurons very differently from an MRI slice. Pass ``sample=`` a real preprocessed slice
  for figures on real data.
* **Whole input.** Counts are for the whole input batch; the default batch is 1, so they are
  per image.
* A layer input that is not exactly binary (graded spikes, sums of spikes, membrane potentials)
  is counted as dense MACs: the conservative choice.

References:
    M. Horowitz. Computing's energy problem (and what we can do about it). IEEE ISSCC 2014,
    pp. 10-14.
    M. Yao et al. Attention Spiking Neural Networks. IEEE TPAMI 45(8), 2023 (energy per SOP/MAC).
    Z. Zhou et al. Spikformer: When Spiking Neural Network Meets Transformer. ICLR 2023.

Modules: :mod:`~seg_core.energy.counting` (layer MACs and spikes), :mod:`~seg_core.energy.op_census`
(every ATen op), :mod:`~seg_core.energy.phantom` (the default input), :mod:`~seg_core.energy.profiling`
(:func:`profile`, :func:`profile_model`, latency) and :mod:`~seg_core.energy.costs` (:class:`CostReport`,
the energy per operation, :func:`format_table`).

Example:
    >>> from seg_core.energy import profile, format_table
    >>> report = profile("unet", size=64, repeats=1, threads=1)
    >>> report.macs > 0 and report.sops == 0
    True
    >>> print(format_table(report))          # doctest: +SKIP
"""

from __future__ import annotations

# Each module lists its public names in its own __all__; the package offers exactly those.
from seg_core.energy import costs, counting, phantom, profiling
from seg_core.energy.costs import *  # noqa: F403
from seg_core.energy.counting import *  # noqa: F403
from seg_core.energy.phantom import *  # noqa: F403
from seg_core.energy.profiling import *  # noqa: F403

__all__ = [*counting.__all__, *phantom.__all__, *profiling.__all__, *costs.__all__]
