"""The sparse-training methods as data: one ``Method`` record per method.

A record says how the method scores weights (the threshold is a quantile of the scores), what
the forward pass sees (the parametrization's transform, which also fixes the gradient path:
straight-through, or ordinary autograd through a mask), how a threshold becomes the unit's
buffers, and whether ST-3's per-channel rescale is on by default. Adding a method is adding
one record to ``RECORDS``; ``Sparsifier`` reads nothing else.

Two records go beyond "a threshold from a quantile of the scores": ``str`` learns one
threshold parameter per layer (``learned``; the quantile is then a projection onto the
scheduled sparsity, see ``._str``), and ``rigl`` replaces the quantile by its own
drop / grow update of a mask (``dynamic``, see ``._rigl``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..thresholds import get_penalty, straight_through
from ..thresholds.cores import soft
from . import _prune
from ._ops import channel_gamma, prox_weight, st3_weight
from ._rigl import check_rigl_params
from ._str import STR_DEFAULTS, check_str_params

_ste_soft = straight_through(st3_weight)
_ste_prox = straight_through(prox_weight)


# -- forward transforms: (parametrization, raw weight) -> the weight the forward pass sees ----
def _soft_ste(pm, w):
    if _prune.usable(w):  # two passes instead of a dozen tensor operations
        return _prune.st3_forward(w, pm.tau, pm.rescale)
    return _ste_soft(w, pm.tau, pm.rescale)


def _prox_ste(pm, w):
    return _ste_prox(w, pm.tau, pm.lam, pm.penalty, pm.params, pm.rescale)


def _hard_ste(pm, w):
    return _ste_prox(w, pm.tau, pm.lam, "l0", {}, pm.rescale)


def _soft_autograd(pm, w):
    out = soft(w, pm.tau)  # ordinary autograd: zero gradient below tau
    if pm.rescale:
        with torch.no_grad():
            g = channel_gamma(w, w.abs() > pm.tau)
        out = out * g
    return out


def _masked(pm, w):
    mask = pm.mask
    if _prune.usable(w) and mask.is_contiguous() and mask.shape == w.shape:
        return _prune.masked(w, mask)  # the same values, one pass each way
    return w * mask  # sticky mask, ordinary autograd: pruned entries get no gradient


def _str_soft(pm, w):
    # (|w| - g) - shift, in the order the scores are computed: an entry at the projected
    # threshold gives exactly 0, so the count is exact. Ordinary autograd: kept weights get
    # dL/dw_hat, pruned ones nothing, s gets -g'(s) sum_kept sign(w) dL/dw_hat.
    out = torch.sign(w) * torch.relu((w.abs() - torch.sigmoid(pm.s)) - pm.shift)
    if pm.rescale:
        with torch.no_grad():
            g = channel_gamma(w, out != 0)
        out = out * g
    return out


def _rigl_masked(pm, w):
    out = w * pm.mask  # ordinary autograd: inactive entries get no gradient ...
    if pm.capture and out.requires_grad:
        out.register_hook(pm.store_dense_grad)  # ... but on update steps dL/dw_hat is kept
    return out


# -- scores: (unit, |w|) -> the scores whose quantile is the threshold ----------------------
def _magnitude(unit, a):
    return a


def _sigma_scaled(unit, a):
    return a * unit.sqrt_s  # S_l = sum of the weight's dimensions (C_out + C_in + k_h + k_w)


def _unpruned_magnitude(unit, a):
    return torch.where(unit.pm.mask, a, torch.full_like(a, -1.0))  # pruned stay pruned


def _str_margin(unit, a):
    return a - torch.sigmoid(unit.pm.s.detach())  # how far above STR's own threshold


# -- the same scores written into a preallocated buffer (no allocation per step) -----------
def _magnitude_into(unit, w, out):
    torch.abs(w, out=out)


def _sigma_scaled_into(unit, w, out):
    torch.abs(w, out=out)
    out.mul_(unit.sqrt_s)


def _unpruned_magnitude_into(unit, w, out):
    torch.abs(w, out=out)
    out.masked_fill_(torch.logical_not(unit.pm.mask, out=unit.scratch_mask()), -1.0)


# -- thresholds: score threshold -> the unit's magnitude threshold --------------------------
def _same(theta, unit):
    return theta


def _sigma_unscaled(theta, unit):
    """The magnitude threshold of score threshold theta: the largest ``tau`` whose score
    ``tau * sqrt(S_l)``, rounded as the scores are, is ``<= theta``. ``theta / sqrt(S_l)``
    alone can sit one float below the magnitude whose score defines theta: that weight was
    kept, one more than the count (19 of 800 cases)."""
    c = unit.sqrt_s
    tau = theta / c
    up = torch.full_like(tau, math.inf)
    while bool(tau * c > theta):
        tau = torch.nextafter(tau, -up)
    while bool(torch.nextafter(tau, up) * c <= theta):
        tau = torch.nextafter(tau, up)
    return tau


# -- updates: write the unit's buffers for its threshold tau --------------------------------
def _set_tau(unit, tau, scores, penalty=None):
    pm = unit.pm
    pm.tau.copy_(tau)
    if penalty is not None:  # the lam whose prox zeroes exactly |w| <= tau (step 1)
        pen = get_penalty(penalty)
        pm.lam.copy_(pen.lam_for(tau, 1.0, **{**pen.params, **pm.params}))


def _set_tau_and_lam(unit, tau, scores):
    _set_tau(unit, tau, scores, unit.pm.penalty)


def _set_tau_and_l0_lam(unit, tau, scores):
    _set_tau(unit, tau, scores, "l0")


def _set_str_shift(unit, theta, scores):
    """The projection: every layer's threshold shifted by theta (its margin quantile), never
    below 0 (no pruning means tau = 0, not a negative threshold that inflates weights)."""
    pm = unit.pm
    g = torch.sigmoid(pm.s.detach())
    pm.shift.copy_(torch.maximum(theta, -g))
    pm.tau.copy_(g + pm.shift)


def _grow_mask(unit, tau, scores):
    pm = unit.pm
    if scores is None:  # the compiled step: scores made on the fly, one pass, no temporaries
        _prune.gmp_update(unit.param.data, pm.mask, float(tau))
        pm.tau.zero_()
        return
    torch.gt(scores, tau, out=pm.mask)
    # pruned raw weights are exactly 0, for good
    unit.param.masked_fill_(torch.logical_not(pm.mask, out=unit.scratch_mask()), 0.0)
    pm.tau.zero_()


@dataclass(frozen=True)
class Method:
    """One sparse-training method (see the module docstring)."""

    name: str
    forward: Callable  # (parametrization, w) -> weight seen by the forward pass
    gradient: str  # "straight-through" or "masked"
    rescale: bool  # ST-3's per-channel rescale by default
    update: Callable = _set_tau  # (unit, tau, scores): the unit's buffers for threshold tau
    scores: Callable = _magnitude  # (unit, |w|) -> scores
    # (unit, w, out): the same scores, written to out; None: fresh tensors from ``scores``
    scores_into: Callable | None = _magnitude_into
    to_tau: Callable = _same  # (score threshold, unit) -> magnitude threshold
    sticky: bool = False  # a mask that only grows (pruned weights never come back)
    # the scores as the compiled step makes them: "magnitude" |w|, "sigma" |w| sqrt(S_l),
    # "unpruned" |w| inside the mask and -1 outside; None: that step does not apply
    compiled_scores: str | None = "magnitude"
    uses_penalty: bool = False  # takes Sparsifier(penalty=..., penalty_params=...)
    mask: bool = False  # keeps a bool mask buffer (sticky methods, rigl)
    rescale_applies: bool = True  # False: the forward has no per-channel rescale to turn on
    empty: float = 0.0  # a score threshold below every score (nothing pruned)
    learned: bool = False  # one learned threshold parameter s per layer (str)
    dynamic: bool = False  # its own mask update replaces the quantile threshold (rigl)
    params: dict = field(default_factory=dict)  # Sparsifier(method_params=...) and defaults
    check_params: Callable = dict  # the method_params, checked


RECORDS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("st3", _soft_ste, "straight-through", rescale=True),
        Method(
            "st3sigma",
            _soft_ste,
            "straight-through",
            rescale=True,
            scores=_sigma_scaled,
            scores_into=_sigma_scaled_into,
            compiled_scores="sigma",
            to_tau=_sigma_unscaled,
        ),
        Method("hard_ste", _hard_ste, "straight-through", False, update=_set_tau_and_l0_lam),
        Method("soft_nograd", _soft_autograd, "masked", rescale=True),
        Method(
            "gmp",
            _masked,
            "masked",
            rescale=False,
            update=_grow_mask,
            scores=_unpruned_magnitude,
            scores_into=_unpruned_magnitude_into,
            compiled_scores="unpruned",
            sticky=True,
            mask=True,
            rescale_applies=False,  # w * mask: no threshold to compensate
            empty=-0.5,
        ),
        Method(
            "prox_ste",
            _prox_ste,
            "straight-through",
            rescale=True,
            update=_set_tau_and_lam,
            uses_penalty=True,
        ),
        Method(
            "str",
            _str_soft,
            "masked",
            rescale=False,
            update=_set_str_shift,
            scores=_str_margin,
            scores_into=None,  # its margins: fresh tensors, torch's search
            compiled_scores=None,
            empty=-1.0,  # margins are > -sigmoid(s) > -1
            learned=True,
            params=dict(STR_DEFAULTS),
            check_params=check_str_params,
        ),
        Method(
            "rigl",
            _rigl_masked,
            "masked (dense on update steps)",
            rescale=False,
            mask=True,
            rescale_applies=False,
            dynamic=True,  # no threshold: neither score path applies
            scores_into=None,
            compiled_scores=None,
            params={
                "update_end": None,  # required: the step from which the topology is frozen
                "update_every": 100,
                "drop_fraction": 0.3,
                "distribution": "erk",
                "init": "dense",
                "seed": 0,
            },
            check_params=check_rigl_params,
        ),
    )
}

METHODS: tuple[str, ...] = tuple(RECORDS)
"""Sparse-training methods, see ``Sparsifier``."""
