"""Gaussian initialisation from (sigma_w, sigma_b): shared by the activations pillar
(``shrinkage.activations.init_``) and the models (``shrinkage.models.mlp``), which may
not import each other."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def gaussian_init_(module: nn.Module, sigma_w: float, sigma_b: float) -> nn.Module:
    """Every Linear / Conv weight N(0, sigma_w^2 / fan_in), every bias N(0, sigma_b^2), in place."""
    sw, sb = float(sigma_w), float(sigma_b)
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, _LAYERS):
                w = _raw(mod, "weight")
                w.normal_(0.0, sw / math.sqrt(w[0].numel()))
                if mod.bias is not None:
                    _raw(mod, "bias").normal_(0.0, sb)
    return module


def _raw(mod: nn.Module, name: str) -> torch.Tensor:
    """The tensor to draw into: a parametrized weight (a Sparsifier's) is computed on each
    read, so the draw goes to the raw one it is computed from (it landed in a temporary)."""
    if parametrize.is_parametrized(mod, name):
        return getattr(mod.parametrizations, name).original
    return getattr(mod, name)
