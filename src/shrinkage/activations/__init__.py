"""Sparse activations at the edge of chaos (Price et al., ICLR 2024).

Large-width Gaussian-process maps for any activation, in float64 and vectorised over q:

- :func:`moments` (E[phi], E[phi^2], E[phi'^2] for X ~ N(0, q); closed forms for ``relu``,
  ``shifted_relu``, ``soft_threshold``, ``clipped_relu``/``crelu``,
  ``clipped_soft_threshold``/``cst``, ``erf``; quadrature for ``tanh`` and any callable),
  :func:`zero_fraction`;
- :func:`variance_map`, :func:`dV_dq`, :func:`d2V_dq2`, :func:`chi`, :func:`correlation_map`,
  :func:`propagate`, :func:`depth_scales`, :func:`fixed_points` (certified scan);
- :func:`edge_of_chaos` -> :class:`EoCConfig` (tau, sigma_w, sigma_b for a target sparsity, with
  the diagnosis), :func:`safe_clip` (largest m keeping ``q*`` the unique attracting fixed point),
  :func:`clip_for_depth` (the m a network of a given depth and width trains best with:
  ``edge_of_chaos(..., m="auto", depth=, width=)``), :func:`q_star_scan` (the maps as
  functions of ``q*``, with m scaled or fixed);
- finite width: :func:`finite_width` (the exact variance chain and the spread of the gradient
  over depth at width N), :func:`width_for_depth`, :func:`fluctuation_moments`;
- :class:`SparsityControl` (thresholds held at the target sparsity while training);
- :func:`init_`, :class:`ActivationSparsity`, :func:`simulate` (finite-width Monte Carlo);
  models in :func:`shrinkage.models.mlp` / :func:`shrinkage.models.deep_cnn`; MNIST training in
  :mod:`shrinkage.experiments.activations`; figures in :mod:`shrinkage.activations.plots`.

The activation functions themselves live in :mod:`shrinkage.thresholds`.

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
