"""Sparse weights: ST-3 sparse training and its relatives on any PyTorch model.

- ``Sparsifier`` (methods in ``METHODS``), schedules ``Cubic``, ``Linear``,
  ``Constant``;
- ``flops`` / ``FlopsReport``: dense and sparse multiply-accumulates of any model;
- pure functions ``kth_threshold``, ``kth_smallest``, ``channel_gamma``,
  ``st3_weight``, ``prox_weight``, ``layer_densities`` (RigL's ERK / uniform layer
  densities);
- ``export``: sparse-enough layers onto measured-fastest sparse kernels (real speed;
  ``activations=True`` also skips zero activations: ``ActivationChain``);
  ``densify``, ``load_exported``, ``SparseLinear``, ``SparseConv2d``;
- ``effective_macs``: MACs left when zero weights *and* zero activations are skipped;
- the MNIST experiments behind ``shrinkage weights train|sweep`` are in
  ``shrinkage.experiments.weights``.

Examples
--------
>>> import torch, shrinkage.weights as sw
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
>>> sp = sw.Sparsifier(model, sparsity=0.9, method="st3", schedule=sw.Cubic(start=0, end=100))
>>> # training loop: loss.backward(); opt.step(); sp.step()
>>> dense = sp.squash()   # plain nn.Modules, zeros baked in
"""

from ._act_chain import ActivationChain
from ._export import densify, export, kernel_summary, load_exported
from ._flops import FlopsReport, flops
from ._ops import channel_gamma, kth_smallest, kth_threshold, prox_weight, st3_weight
from ._rigl import layer_densities
from ._schedules import Constant, Cubic, Linear, Schedule
from ._sparse_modules import SparseConv2d, SparseLinear
from ._sparsifier import METHODS, PRUNABLE, PrunedLayerWarning, SparseWeight, Sparsifier
from .effective import effective_macs, format_effective_macs

__all__ = [
    "Sparsifier",
    "SparseWeight",
    "PrunedLayerWarning",
    "METHODS",
    "PRUNABLE",
    "Schedule",
    "Cubic",
    "Linear",
    "Constant",
    "flops",
    "FlopsReport",
    "kth_threshold",
    "kth_smallest",
    "channel_gamma",
    "st3_weight",
    "prox_weight",
    "layer_densities",
    "export",
    "densify",
    "load_exported",
    "kernel_summary",
    "SparseLinear",
    "SparseConv2d",
    "ActivationChain",
    "effective_macs",
    "format_effective_macs",
]
