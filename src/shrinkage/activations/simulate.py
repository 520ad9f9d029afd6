"""Monte Carlo check of the maps: propagate inputs through random finite-width networks."""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import check_int_at_least, check_open_unit
from ._cfg import CONFIG_ATTRS, check_config
from ._docs import fill_doc
from ._gauss import _SPECS

# the simulations build the network from the config, inputs scaled to its first layer
CONFIG_NEEDS = (*CONFIG_ATTRS, "module", "input_mean_square")


@fill_doc
def simulate(
    cfg,
    depth: int,
    width: int,
    n_inputs: int = 2,
    seed: int = 0,
    rho0: float = 0.5,
    n_nets: int = 1,
    dtype=torch.float64,
) -> dict:
    """Finite-width networks at the config ``cfg``: per-layer q^l, rho^l and fraction of zeros.

    Inputs (``n_inputs`` of dimension ``width``, pairwise correlation ``rho0``) are scaled to
    mean square ``cfg.input_mean_square`` so that q^1 = ``q*``, exactly as
    ``shrinkage.models.mlp`` scales data. Layer l: h^l = W^l phi(h^{l-1}) + b^l, W ~ N(0,
    sigma_w^2 / width), b ~ N(0, sigma_b^2), drawn afresh for each of ``n_nets`` networks.

    A layer whose variance overflows sets ``q`` to inf from there on.

    Parameters
    ----------
    cfg : EoCConfig
        An edge-of-chaos configuration of a named activation.
    %(depth_any)s
    width : int
        Units per layer (and input dimension), >= 1.
    n_inputs : int, optional
        Inputs propagated together, >= 1. Default 2.
    seed : int, optional
        Seed of the generator of inputs, weights and biases. Default 0.
    rho0 : float, optional
        Pairwise correlation of the inputs, in [0, 1) (checked only when ``n_inputs`` > 1).
        Default 0.5.
    n_nets : int, optional
        Independent networks, >= 1. Default 1.
    dtype : torch.dtype, optional
        Precision of the simulation. Default ``torch.float64``.

    Returns
    -------
    dict
        Arrays over layers 1..depth: ``q`` (n_nets, n_inputs, depth) empirical mean squares,
        ``rho`` (n_nets, depth) mean pairwise correlation (NaN for one input), ``sparsity``
        (n_nets, depth) fraction of exact zeros of phi(h^l).

    Raises
    ------
    ValueError
        If ``depth``, ``width``, ``n_inputs`` or ``n_nets`` is not an integer >= 1, or
        ``rho0`` is not in [0, 1) with more than one input.
    TypeError
        If ``cfg`` is not an edge-of-chaos config (for example the activation's name).

    Examples
    --------
    CST at 85% sparsity keeps about 85% zeros in every layer (up to sampling error):

    >>> from shrinkage.activations import edge_of_chaos
    >>> cfg = edge_of_chaos("cst", 0.85)
    >>> sim = simulate(cfg, depth=3, width=100, n_inputs=16, n_nets=4)
    >>> sim["q"].shape, sim["sparsity"].shape
    ((4, 16, 3), (4, 3))
    >>> bool(abs(sim["sparsity"].mean(0) - 0.85).max() < 0.05)
    True
    """
    check_config(cfg, CONFIG_NEEDS)
    depth = check_int_at_least("depth", depth)
    width = check_int_at_least("width", width)
    n_inputs = check_int_at_least("n_inputs", n_inputs)
    n_nets = check_int_at_least("n_nets", n_nets)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    if n_inputs > 1:
        check_open_unit("rho0", rho0, closed_low=True)
    spec = _SPECS[cfg.activation]
    g = torch.Generator().manual_seed(int(seed))
    sw, sb = float(cfg.sigma_w), float(cfg.sigma_b)
    q = np.full((n_nets, n_inputs, depth), np.nan)
    rho = np.full((n_nets, depth), np.nan)
    sp = np.full((n_nets, depth), np.nan)
    iu = np.triu_indices(n_inputs, 1)
    for k in range(n_nets):
        z0 = torch.randn(1, width, generator=g, dtype=dtype)
        z = torch.randn(n_inputs, width, generator=g, dtype=dtype)
        x = math.sqrt(rho0) * z0 + math.sqrt(1 - rho0) * z
        x = x * (cfg.input_mean_square / x.pow(2).mean(1, keepdim=True)).sqrt()
        for layer in range(depth):
            w = torch.randn(width, width, generator=g, dtype=dtype) * (sw / math.sqrt(width))
            b = torch.randn(width, generator=g, dtype=dtype) * sb
            with np.errstate(all="ignore"):
                h = x @ w.T + b
            hq = h.pow(2).mean(1)
            q[k, :, layer] = hq.numpy()
            x = spec.core(h, cfg.tau, cfg.m)
            sp[k, layer] = float((x == 0).double().mean())
            if n_inputs > 1:
                c = (h @ h.T / width).numpy()
                d = np.sqrt(np.outer(np.diag(c), np.diag(c)))
                with np.errstate(all="ignore"):
                    rho[k, layer] = float(np.mean(c[iu] / d[iu]))
            if not torch.isfinite(hq).all():
                q[k, :, layer:] = np.inf
                break
    return {"q": q, "rho": rho, "sparsity": sp}


def first_layer_rho(cfg, rho0: float) -> float:
    """Correlation of the first pre-activations for inputs of correlation rho0 scaled as in
    ``simulate``: (sigma_w^2 E[phi^2] rho0 + sigma_b^2) / q*."""
    return (cfg.sigma_w**2 * cfg.input_mean_square * rho0 + cfg.sigma_b**2) / cfg.q_star


@fill_doc
def simulate_gain(
    cfg, depth: int, width: int, n_nets: int = 40, seed: int = 0, chunk: int = 20
) -> dict:
    """Random finite-width networks at ``cfg`` (weights drawn afresh per layer, one input
    scaled so that v^1 = ``q*``): the conditional variance v^L = sigma_w^2 |phi^{L-1}|^2 / N +
    sigma_b^2 of the last layer and ln(|g^1| / |g^L|), a random gradient at the last hidden
    layer back-propagated through the same weights (autograd through ``cfg.module()``).

    Returns ``{"v_last": (n_nets,), "log_gain": (n_nets,)}`` (float64 arrays): what
    ``finite_width`` predicts the mean and spread of.

    Parameters
    ----------
    cfg : EoCConfig
        An edge-of-chaos configuration (its ``module()``, ``sigma_w``, ``sigma_b`` and
        ``input_mean_square`` are used).
    %(depth, width)s
    n_nets : int, optional
        Independent networks, >= 1. Default 40.
    seed : int, optional
        Seed of the generator. Default 0.
    chunk : int, optional
        Networks simulated together in one batched pass (memory: chunk x width^2 per
        layer). Default 20.

    Returns
    -------
    dict
        ``v_last``: (n_nets,) conditional variance of the last layer; ``log_gain``:
        (n_nets,) ln(|g^1| / |g^L|).

    Raises
    ------
    ValueError
        If ``depth`` < 2, or ``width`` or ``n_nets`` < 1 (or not integers).
    TypeError
        If ``cfg`` is not an edge-of-chaos config (for example the activation's name).

    Examples
    --------
    >>> from shrinkage.activations import edge_of_chaos
    >>> out = simulate_gain(edge_of_chaos("relu"), depth=3, width=64, n_nets=10)
    >>> out["v_last"].shape, out["log_gain"].shape
    ((10,), (10,))
    >>> bool((out["v_last"] > 0).all())
    True
    """
    check_config(cfg, CONFIG_NEEDS)
    depth = check_int_at_least("depth", depth, 2)
    width = check_int_at_least("width", width)
    n_nets = check_int_at_least("n_nets", n_nets)
    chunk = check_int_at_least("chunk", chunk)
    g = torch.Generator().manual_seed(int(seed))
    act = cfg.module()
    sw, sb = float(cfg.sigma_w), float(cfg.sigma_b)
    v_last, gains = [], []
    for start in range(0, n_nets, chunk):
        k = min(chunk, n_nets - start)
        x = torch.randn(k, 1, width, generator=g)
        x = x * (cfg.input_mean_square / x.pow(2).mean(-1, keepdim=True)).sqrt()
        hs = []
        for _ in range(depth):
            w = torch.randn(k, width, width, generator=g) * (sw / math.sqrt(width))
            b = torch.randn(k, 1, width, generator=g) * sb
            v = sw**2 * x.pow(2).mean((1, 2)) + sb**2
            h = (torch.bmm(x, w.transpose(1, 2)) + b).requires_grad_(True)
            hs.append(h)
            x = act(h)
        grad = torch.randn(hs[-1].shape, generator=g)
        (g1,) = torch.autograd.grad(hs[-1], hs[0], grad)
        v_last.append(v.detach().double())
        gains.append((g1.norm(dim=(1, 2)) / grad.norm(dim=(1, 2))).double().log())
    return {"v_last": torch.cat(v_last).numpy(), "log_gain": torch.cat(gains).numpy()}
