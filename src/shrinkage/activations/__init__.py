"""Sparse activations at the edge of chaos (Price et al., ICLR 2024).

Large-width Gaussian-process maps for any activation, in float64 and vectorised over q:

- ``moments`` (E[phi], E[phi^2], E[phi'^2] for X ~ N(0, q); closed forms for ``relu``,
  ``shifted_relu``, ``soft_threshold``, ``clipped_relu``/``crelu``,
  ``clipped_soft_threshold``/``cst``, ``erf``; quadrature for ``tanh`` and any callable),
  ``zero_fraction``;
- ``variance_map``, ``dV_dq``, ``d2V_dq2``, ``chi``, ``correlation_map``,
  ``propagate``, ``depth_scales``, ``fixed_points`` (certified scan);
- ``edge_of_chaos`` -> ``EoCConfig`` (tau, sigma_w, sigma_b for a target sparsity, with
  the diagnosis), ``safe_clip`` (largest m keeping ``q*`` the unique attracting fixed point),
  ``clip_for_depth`` (the m a network of a given depth and width trains best with:
  ``edge_of_chaos(..., m="auto", depth=, width=)``), ``q_star_scan`` (the maps as
  functions of ``q*``, with m scaled or fixed);
- finite width: ``finite_width`` (the exact variance chain and the spread of the gradient
  over depth at width N), ``width_for_depth``, ``fluctuation_moments``;
- ``SparsityControl`` (thresholds held at the target sparsity while training);
- ``init_``, ``ActivationSparsity``, ``simulate`` (finite-width Monte Carlo);
  models in ``shrinkage.models.mlp`` / ``shrinkage.models.deep_cnn``; MNIST training in
  ``shrinkage.experiments.activations``; figures in ``shrinkage.activations.plots``.

The activation functions themselves live in ``shrinkage.thresholds``.

Examples
--------
>>> cfg = edge_of_chaos("cst", sparsity=0.85)   # m chosen safely
>>> round(cfg.m, 3), cfg.stable
(1.327, True)
"""

from ._gauss import ACTIVATION_NAMES, moments, zero_fraction
from .control import SparsityControl
from .eoc import (
    EdgeOfChaosWarning,
    EoCConfig,
    clip_for_depth,
    edge_of_chaos,
    q_star_scan,
    safe_clip,
)
from .finite_width import FiniteWidth, finite_width, fluctuation_moments, width_for_depth
from .maps import (
    FixedPoint,
    chi,
    correlation_map,
    d2V_dq2,
    depth_scales,
    dV_dq,
    fixed_points,
    propagate,
    variance_map,
)
from .nn import ActivationSparsity, init_, unit_census
from .simulate import simulate, simulate_gain

__all__ = [
    "ACTIVATION_NAMES",
    "moments",
    "zero_fraction",
    "variance_map",
    "dV_dq",
    "d2V_dq2",
    "chi",
    "correlation_map",
    "propagate",
    "depth_scales",
    "fixed_points",
    "FixedPoint",
    "edge_of_chaos",
    "safe_clip",
    "clip_for_depth",
    "q_star_scan",
    "finite_width",
    "FiniteWidth",
    "fluctuation_moments",
    "width_for_depth",
    "SparsityControl",
    "EoCConfig",
    "EdgeOfChaosWarning",
    "init_",
    "ActivationSparsity",
    "unit_census",
    "simulate",
    "simulate_gain",
]
