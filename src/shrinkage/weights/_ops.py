"""Pure tensor functions behind the sparsifier: thresholds by k-th value, the ST-3 weight.

Every operator comes from ``shrinkage.thresholds`` (soft threshold = prox of l1, hard
threshold = prox of l0, any other prox from its registry); this file only adds the per-channel
rescale of ST-3 and the choice of the threshold that hits a target sparsity exactly.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ..thresholds import get_penalty
from ..thresholds.cores import soft
from ._docs import fill_doc

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
    scores have no ties (with ties, ``Sparsifier`` completes the count by position).
    With ``k == 0`` returns ``empty`` (nothing pruned). The selection is
    ``kth_smallest``.

    Parameters
    ----------
    scores : torch.Tensor
        Scores of any shape (flattened), e.g. ``|w|``; finite.
    sparsity : float
        Fraction to prune, in [0, 1]; ``k = floor(sparsity * n)`` (with a 1e-6 guard, so
        ``0.99 * 100`` counts 99), capped at ``n``.
    empty : float, default 0.0
        The threshold returned when ``k == 0``: a value below every score keeps everything.

    Returns
    -------
    torch.Tensor
        0-d tensor of ``scores``' dtype and device: the k-th smallest score, or ``empty``.

    Raises
    ------
    ValueError
        ``sparsity`` outside [0, 1] or not a number; ``scores`` hold NaN or inf.
    TypeError
        ``scores`` is not a floating-point tensor (a list of per-layer scores: ``torch.cat``
        them first).

    Examples
    --------
    Half of four scores: the threshold is the 2nd smallest, and exactly two lie above it.

    >>> s = torch.tensor([0.3, 0.1, 0.2, 0.4])
    >>> t = kth_threshold(s, 0.5)
    >>> round(float(t), 6), int((s > t).sum())
    (0.2, 2)
    >>> float(kth_threshold(s, 0.1, empty=-1.0))  # k = 0: nothing pruned
    -1.0
    """
    if (
        isinstance(sparsity, bool)
        or not isinstance(sparsity, numbers.Real)
        or not (0.0 <= sparsity <= 1.0)
    ):
        raise ValueError(f"sparsity must be a number in [0, 1], got sparsity={sparsity!r}")
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    flat = scores.reshape(-1)
    if (
        flat.numel()
        and not bool(torch.isfinite(flat.sum()))
        and not bool(torch.isfinite(flat).all())
    ):
        # a NaN sorts nowhere: the k-th value would be some other score, silently
        raise ValueError(f"scores hold {int((~torch.isfinite(flat)).sum())} NaN or inf value(s)")
    k = n_pruned(sparsity, flat.numel())
    if k == 0:
        return torch.full((), empty, dtype=flat.dtype, device=flat.device)
    return kth_smallest(flat, k)


def exact_threshold(flat: torch.Tensor, k: int, empty: float = 0.0, search=None):
    """``(theta, ties)`` such that pruning the entries with ``score <= theta`` plus those of
    the bool mask ``ties`` prunes exactly ``k`` of the 1-d ``flat`` scores.

    Without a tie at the k-th smallest score, theta is that score and ties is None (the
    usual case, as ``kth_threshold``). With ties straddling it, theta is the largest
    score below the tied value (``empty`` if none) and ``ties`` marks the first tied entries,
    by position, that complete the count: all-equal scores at k = n/2 prune half, not all.


    ``search``: a ``KthSearch`` that finds the k-th smallest
    score and the count at or below it from its previous answer (the same values, cheaper
    when called at every training step on slowly moving scores).

    Examples
    --------
    >>> t, ties = exact_threshold(torch.tensor([0.5, 0.1, 0.5, 0.5]), 2)
    >>> round(float(t), 6), ties.tolist()
    (0.1, [True, False, False, False])
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
    # a masked maximum and the few tied positions: no boolean indexing of every score
    if n_below:
        lower = torch.where(below, flat, torch.full_like(flat, -math.inf)).max()
    elif empty < float(theta):
        lower = torch.full((), empty, dtype=flat.dtype, device=flat.device)
    else:  # nothing lies below the tied value: no threshold can separate them
        return theta, None
    ties = torch.zeros_like(flat, dtype=torch.bool)
    ties[torch.nonzero(flat == theta).reshape(-1)[: k - n_below]] = True
    return lower, ties


_BRACKET_MIN = 1 << 16  # below this size a plain selection is already cheap


def kth_smallest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Exact k-th smallest entry (1-based) of a 1-d tensor, as ``torch.kthvalue(flat, k)``.

    Large inputs (2**16 entries or more) are first narrowed to a bracket [lo, hi] read off a
    strided sample (no RNG, so every DDP rank and every resumed run agrees); if the k-th
    value provably lies inside (count below lo < k <= count up to hi), only the bracket is
    selected from, else the whole tensor. torch's CPU quickselect over all entries costs
    ~10-40 ms for LeNet-5's 430k weights, the bracketed one a few passes over memory.
    The result is the same either way.

    Parameters
    ----------
    flat : torch.Tensor
        1-d tensor of finite values.
    k : int
        Rank, 1-based: ``1 <= k <= flat.numel()``.

    Returns
    -------
    torch.Tensor
        0-d tensor: the k-th smallest entry of ``flat``.

    Raises
    ------
    ValueError
        ``flat`` not 1-d, or ``k`` not an integer in ``[1, flat.numel()]``.

    Examples
    --------
    The bracketed path (100 000 entries) agrees with ``torch.kthvalue``:

    >>> x = torch.arange(100000.0).flip(0)
    >>> float(kth_smallest(x, 7))
    6.0
    >>> bool(kth_smallest(x, 54321) == torch.kthvalue(x, 54321).values)
    True
    """
    n = flat.numel()
    if flat.dim() != 1:
        raise ValueError(f"flat must be 1-d, got shape {tuple(flat.shape)}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}] (flat.numel()), got k={k!r}")
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
    """ST-3 per-output-channel rescale, broadcastable to ``w``.

    With the means over every dimension but the first (the output channel c):

        rho_c = (mean_c(|w| * mask) + 1e-6) / (mean_c(|w|) + 1e-6),  gamma_c = 1.01 / (rho_c + 0.01)

    (Vanderschueren & De Vleeschouwer, WACV 2023). ``rho_c`` is the share of channel c's
    l1 mass that the mask keeps; gamma_c is about 1 / rho_c, capped near 101 (a channel
    with nothing kept).

    Parameters
    ----------
    w : torch.Tensor
        Weight, ``(C_out, ...)`` (a Linear's ``(out, in)``, a conv's
        ``(C_out, C_in, k_h, k_w)``), at least 1-d.
    mask : torch.Tensor
        Bool (or 0/1) tensor of ``w``'s shape: the entries kept.

    Returns
    -------
    torch.Tensor
        ``gamma`` of shape ``(C_out, 1, ..., 1)``, broadcastable to ``w``.

    Examples
    --------
    A channel that keeps everything gets gamma = 1; one that keeps a quarter of its l1
    mass gets about 4 (1.01 / 0.26):

    >>> w = torch.tensor([[1.0, -1.0], [3.0, 1.0]])
    >>> g = channel_gamma(w, torch.tensor([[True, True], [False, True]]))
    >>> g.shape, [round(v, 3) for v in g.flatten().tolist()]
    (torch.Size([2, 1]), [1.0, 3.885])
    """
    dims = tuple(range(1, w.dim()))
    aw = w.abs()
    kept = (aw * mask).mean(dim=dims, keepdim=True)
    rho = (kept + _EPS) / (aw.mean(dim=dims, keepdim=True) + _EPS)
    return 1.01 / (rho + 0.01)


@fill_doc
def st3_weight(w: torch.Tensor, tau: torch.Tensor, rescale: bool = True) -> torch.Tensor:
    """ST-3 forward weight ``gamma_c * sign(w) * max(|w| - tau, 0)`` (soft threshold = prox of l1).

    The weight the forward pass of ``Sparsifier`` ``method="st3"`` sees
    (Vanderschueren & De Vleeschouwer, WACV 2023): the soft threshold of the raw weight,
    times the per-channel rescale ``channel_gamma`` of the mask ``|w| > tau``, which
    restores each output channel's l1 mass lost to the shrinkage.

    Parameters
    ----------
    %(w)s
    tau : torch.Tensor or float
        Magnitude threshold, >= 0 (not checked); a 0-d tensor or anything broadcastable.
    rescale : bool, default True
        Multiply by ``gamma_c`` (ST-3's rescale); False gives the plain soft threshold.

    Returns
    -------
    torch.Tensor
        The thresholded weight, ``w``'s shape; zero exactly where ``|w| <= tau``.

    Examples
    --------
    >>> w = torch.tensor([[1.0, -0.25, 3.0]])
    >>> st3_weight(w, torch.tensor(0.5), rescale=False)
    tensor([[0.5000, -0.0000, 2.5000]])

    With the rescale, the channel keeps 4/4.25 of its l1 mass, so gamma is about 1.06:

    >>> out = st3_weight(w, torch.tensor(0.5))
    >>> [round(v, 4) for v in (out / st3_weight(w, 0.5, rescale=False))[0, [0, 2]].tolist()]
    [1.0618, 1.0618]
    """
    out = soft(w, tau)
    if rescale:
        out = out * channel_gamma(w, w.abs() > tau)
    return out


@fill_doc
def prox_weight(
    w: torch.Tensor,
    tau: torch.Tensor,
    lam: torch.Tensor,
    penalty: str,
    params: dict,
    rescale: bool = False,
) -> torch.Tensor:
    """``prox(penalty, w, lam, step=1)`` with entries ``|w| <= tau`` set to 0 explicitly.

    The forward weight of ``Sparsifier`` ``method="prox_ste"`` (and of ``"hard_ste"``,
    with ``penalty="l0"``): ``lam`` is meant to be ``lam_for_threshold(penalty, tau)``, the
    penalty weight whose prox zeroes exactly ``|w| <= tau``; the explicit mask makes sure
    rounding in lam never changes the count of zeros. Optional ST-3 rescale
    (``channel_gamma`` of the mask).

    Parameters
    ----------
    %(w)s
    tau : torch.Tensor or float
        Magnitude threshold: entries with ``|w| <= tau`` are 0.
    lam : torch.Tensor or float
        Penalty weight of the prox (step 1), >= 0.
    penalty : str
        One of ``PENALTIES``.
    params : dict
        The penalty's parameters (``a`` for cel0, ``gamma`` for mcp / scad), over its
        defaults; ``{}`` for none.
    rescale : bool, default False
        Multiply by ST-3's per-channel ``gamma_c``.

    Returns
    -------
    torch.Tensor
        The thresholded weight, ``w``'s shape.

    Raises
    ------
    ValueError
        ``penalty`` is not a registered name.
    TypeError
        ``params`` names a parameter the penalty's prox does not take.

    Examples
    --------
    l1 at lam = tau is the soft threshold; l0 (hard threshold) keeps the survivors as they
    are:

    >>> from shrinkage.thresholds import lam_for_threshold
    >>> w = torch.tensor([0.3, -0.1, 0.2, 0.4])
    >>> prox_weight(w, 0.2, lam_for_threshold("l1", 0.2), "l1", {})
    tensor([0.1000, -0.0000, 0.0000, 0.2000])
    >>> prox_weight(w, 0.2, lam_for_threshold("l0", 0.2), "l0", {})
    tensor([0.3000, 0.0000, 0.0000, 0.4000])
    """
    mask = w.abs() > tau
    pen = get_penalty(penalty)
    out = pen.prox(w, lam, 1.0, **{**pen.params, **params}) * mask
    if rescale:
        out = out * channel_gamma(w, mask)
    return out
