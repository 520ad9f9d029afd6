"""STR's pure pieces: the learned threshold and the controller of its weight decay.

STR (Kusupati, Ramanujan, Somani, Wortsman, Jain, Kakade & Farhadi, "Soft Threshold Weight
Reparameterization for Learnable Sparsity", ICML 2020) gives each layer a learned scalar s_l
and trains ``w_hat = sign(w) * relu(|w| - sigmoid(s_l))`` with ordinary autograd: kept
weights get dL/dw_hat, pruned ones nothing, and s_l gets
``-sigmoid'(s_l) * sum_kept sign(w) dL/dw_hat``. Weight decay on s_l pulls it towards 0, which
raises the threshold: the decay is what makes STR sparse, and its strength sets how sparse.

To reach a *given* sparsity on a schedule, the decay here is decoupled (``s_l <- (1 - d) s_l``
after every optimizer step, as SGDW / AdamW decay a weight) and its rate d is set at every step
by a controller. The Sparsifier first projects onto the schedule: one shift of every layer's
threshold, ``tau_l = sigmoid(s_l) + delta``, makes exactly floor(s(t) N) weights zero. The
controller then picks the one decay rate that would close that shift within ``HORIZON`` steps,
on average over the weights::

    d = clip(sum_l n_l * max(0, 1 - logit(tau_l) / s_l) / (HORIZON * sum_l n_l), 0, D_MAX)

(only layers whose threshold must rise, with s_l < 0, count: the decay can only raise a
threshold; the loss gradient lowers it). One rate for all layers, as STR's one weight decay:
the ratios s_l / s_m, which the gradient learns, are what the decay keeps. So STR's own
thresholds follow the schedule by their own decay, and the projection that remains (reported
as ``learned_sparsity`` against the target) is small.
"""

from __future__ import annotations

import math

__all__ = ["STR_DEFAULTS", "check_str_params", "decay_rate", "HORIZON", "D_MAX"]

HORIZON = 5  # steps over which the decay would close the projection's shift
D_MAX = 0.1  # the largest decay rate per step

STR_DEFAULTS = {
    "s_init": -8.0,  # sigmoid(-8) = 3.4e-4: below the magnitude of nearly every initial weight
    "decay": 0.0,  # the fixed decay rate when control=False (STR's own rule)
    "control": True,  # the controller on the decay rate
}


def check_str_params(p: dict) -> dict:
    """``method_params`` of str, checked (ValueError naming the key, the value, what is allowed)."""
    s_init = p["s_init"]
    if isinstance(s_init, bool) or not isinstance(s_init, int | float) or not math.isfinite(s_init):
        raise ValueError(f"method_params['s_init'] must be a finite number, got {s_init!r}")
    decay = p["decay"]
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
        raise ValueError(f"method_params['decay'] must be a number in [0, 1), got {decay!r}")
    if not isinstance(p["control"], bool):
        raise ValueError(f"method_params['control'] must be True or False, got {p['control']!r}")
    if p["control"] and decay:
        raise ValueError(
            f"method_params['decay'] is the fixed rate of control=False; with the controller "
            f"on it would be ignored, got decay={decay!r}"
        )
    return {**p, "s_init": float(s_init), "decay": float(decay)}


def decay_rate(s, tau, sizes) -> float:
    """The controller's decay rate (module docstring) from the layers' parameters ``s``, their
    projected thresholds ``tau`` (floats) and sizes.

    Examples
    --------
    >>> round(decay_rate([-4.0], [1 / (1 + math.exp(3.6))], [10]), 6)  # s* = -3.6: 0.1 / 5
    0.02
    """
    total = 0.0
    for s_l, tau_l, n in zip(s, tau, sizes):
        if s_l >= 0 or tau_l <= 0:
            continue
        if tau_l >= 1:
            need = 1.0
        else:
            need = max(0.0, 1.0 - math.log(tau_l / (1.0 - tau_l)) / s_l)
        total += n * min(1.0, need)
    return min(D_MAX, total / (HORIZON * sum(sizes)))
