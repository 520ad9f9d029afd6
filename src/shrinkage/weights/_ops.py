"""Pure tensor functions behind the sparsifier: thresholds by k-th value, the ST-3 weight.

Every operator comes from :mod:`shrinkage.thresholds` (soft threshold = prox of l1, hard
threshold = prox of l0, any other prox from its registry); this file only adds the per-channel
rescale of ST-3 and the choice of the threshold that hits a target sparsity exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..thresholds import get_penalty
from ..thresholds.cores import soft

__all__ = [
    "kth_threshold",
    "kth_smallest",
    "exact_threshold",
    "channel_gamma",
    "st3_weight",
    "prox_weight",
]

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Module types whose ``weight`` is pruned."""

_EPS = 1e-6  # ST-3's guard in rho_c; keeps empty channels finite


def n_pruned(sparsity: float, n: int) -> int:
    """How many of ``n`` entries a sparsity prunes: ``floor(sparsity * n)`` (robust to 0.99*100)."""
    return min(n, int(math.floor(sparsity * n + 1e-6)))


def kth_threshold(scores: torch.Tensor, sparsity: float, empty: float = 0.0) -> torch.Tensor:
    """The ``k = floor(sparsity * n)``-th smallest score (0-d tensor), by selection, not a sort.

    Entries with ``score > threshold`` are kept, so exactly ``k`` entries are pruned when the
    scores have no ties. With ``k == 0`` returns ``empty`` (nothing pruned).

    >>> round(float(kth_threshold(torch.tensor([0.3, 0.1, 0.2, 0.4]), 0.5)), 6)
    0.2
    """
    flat = scores.reshape(-1)
    k = n_pruned(sparsity, flat.numel())
    if k == 0:
        return torch.full((), empty, dtype=flat.dtype, device=flat.device)
    return kth_smallest(flat, k)


def exact_threshold(flat: torch.Tensor, k: int, empty: float = 0.0, search=None):
    """``(theta, ties)`` such that pruning the entries with ``score <= theta`` plus those of
    the bool mask ``ties`` prunes exactly ``k`` of the 1-d ``flat`` scores.

    Without a tie at the k-th smallest score, theta is that score and ties is None (the
    usual case, as :func:`kth_threshold`). With ties straddling it, theta is the largest
    score below the tied value (``empty`` if none) and ``ties`` marks the first tied entries,
    by position, that complete the count: all-equal scores at k = n/2 prune half, not all.

    >>> t, ties = exact_threshold(torch.tensor([0.5, 0.1, 0.5, 0.5]), 2)
    >>> round(float(t), 6), ties.tolist()
    (0.1, [True, False, False, False])

    ``search``: a :class:`~shrinkage.weights._prune.KthSearch` that finds the k-th smallest
    score and the count at or below it from its previous answer (the same values, cheaper
    when called at every training step on slowly moving scores).
    """
    if k <= 0:
        return torch.full((), empty, dtype=flat.dtype, device=flat.device), None
    if search is not None:
        theta, n_le = search(flat, k)
    else:
        theta = kth_smallest(flat, k)
        n_le = int((flat <= theta).sum())
    if n_le == k:
        return theta, None
    below = flat < theta
    n_below = int(below.sum())
    if n_below:
        lower = flat[below].max()
    elif empty < float(theta):
        lower = torch.full((), empty, dtype=flat.dtype, device=flat.device)
    else:  # nothing lies below the tied value: no threshold can separate them
        return theta, None
    tied = flat == theta
    return lower, tied & (torch.cumsum(tied, 0) <= k - n_below)


_BRACKET_MIN = 1 << 16  # below this size a plain selection is already cheap


def kth_smallest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Exact k-th smallest entry (1-based) of a 1-d tensor, as ``torch.kthvalue(flat, k)``.

    Large inputs are first narrowed to a bracket [lo, hi] read off a strided sample (no RNG,
    so every DDP rank and every resumed run agrees); if the k-th value provably lies inside
    (count below lo < k <= count up to hi), only the bracket is selected from, else the whole
    tensor. torch's CPU quickselect over all entries costs ~10-40 ms for LeNet-5's 430k
    weights, the bracketed one a few passes over memory.

    >>> float(kth_smallest(torch.arange(100000.0).flip(0), 7))
    6.0
    """
    n = flat.numel()
    if n < _BRACKET_MIN:
        return torch.kthvalue(flat, k).values
    stride = max(1, n // 8192)
    sample = flat[::stride]
    m = sample.numel()
    j = (k - 1) / (n - 1) * (m - 1)  # where the k-th value sits in the sample, 0-based
    margin = 4.0 * math.sqrt(m) + 8.0
    lo = torch.kthvalue(sample, max(1, int(j - margin) + 1)).values
    hi = torch.kthvalue(sample, min(m, int(j + margin) + 1)).values
    below = int((flat < lo).sum())
    inside = flat[(flat >= lo) & (flat <= hi)]
    if below < k <= below + inside.numel():
        return torch.kthvalue(inside, k - below).values
    return torch.kthvalue(flat, k).values  # the sample misled us: select over everything


def channel_gamma(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ST-3 per-output-channel rescale, broadcastable to ``w``::

        rho_c = (mean_c(|w| * mask) + 1e-6) / (mean_c(|w|) + 1e-6),  gamma_c = 1.01 / (rho_c + 0.01)

    (Vanderschueren & De Vleeschouwer, WACV 2023). ``rho_c`` is the share of channel c's
    l1 mass that the mask keeps; gamma_c is about 1 / rho_c, capped near 101.
    """
    dims = tuple(range(1, w.dim()))
    aw = w.abs()
    kept = (aw * mask).mean(dim=dims, keepdim=True)
    rho = (kept + _EPS) / (aw.mean(dim=dims, keepdim=True) + _EPS)
    return 1.01 / (rho + 0.01)


def st3_weight(w: torch.Tensor, tau: torch.Tensor, rescale: bool = True) -> torch.Tensor:
    """ST-3 forward weight ``gamma_c * sign(w) * max(|w| - tau, 0)`` (soft threshold = prox of l1).

    >>> st3_weight(torch.tensor([[1.0, -0.25, 3.0]]), torch.tensor(0.5), rescale=False)
    tensor([[0.5000, -0.0000, 2.5000]])
    """
    out = soft(w, tau)
    if rescale:
        out = out * channel_gamma(w, w.abs() > tau)
    return out


def prox_weight(
    w: torch.Tensor,
    tau: torch.Tensor,
    lam: torch.Tensor,
    penalty: str,
    params: dict,
    rescale: bool = False,
) -> torch.Tensor:
    """``prox(penalty, w, lam, step=1)`` with ``lam = lam_for_threshold(penalty, tau)``; entries
    with ``|w| <= tau`` are set to 0 explicitly, so rounding in lam never changes the count.
    Optional ST-3 rescale."""
    mask = w.abs() > tau
    pen = get_penalty(penalty)
    out = pen.prox(w, lam, 1.0, **{**pen.params, **params}) * mask
    if rescale:
        out = out * channel_gamma(w, mask)
    return out
