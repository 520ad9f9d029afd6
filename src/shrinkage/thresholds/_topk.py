"""Top-k projection: the operator behind matching pursuit and magnitude pruning."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_int_at_least
from ._array import as_tensor, back
from ._docs import fill_doc


@fill_doc
def top_k(x, k: int, dim: int = -1):
    """Keep the ``k`` largest magnitudes along ``dim``, zero the rest (ties: lowest index kept).

    The projection onto {u : ||u||_0 <= k} along each slice: the l0-constrained
    counterpart of the l0 prox (a fixed count instead of a fixed threshold).

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        Input; a tensor keeps its dtype and device, a numpy array gives a numpy array back.
    k : int
        How many entries to keep per slice, ``0 <= k <= x.shape[dim]``.
    dim : int, optional
        The dimension along which to select. Default -1 (the last).

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Same shape and type as ``x``: the ``k`` entries of largest magnitude in each slice
        along ``dim``, their values unchanged, every other entry 0 (a copy of ``x`` when ``k``
        is the full size).

    Raises
    ------
    ValueError
        If ``k`` is not an integer >= 0, or is larger than ``x.shape[dim]``.
    %(raises_x)s

    Examples
    --------
    >>> top_k(torch.tensor([[0.1, -3.0, 2.0]]), 1)
    tensor([[ 0., -3.,  0.]])

    Along columns, one entry kept in each:

    >>> top_k(torch.tensor([[1.0, 4.0], [-2.0, 3.0]]), 1, dim=0)
    tensor([[ 0.,  4.],
            [-2.,  0.]])
    """
    t, was_numpy = as_tensor(x)
    nd = max(t.ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not -nd <= dim < nd:
        raise ValueError(
            f"dim must be an integer in [{-nd}, {nd - 1}] for x of {t.ndim} dims, got {dim!r}"
        )
    n = t.shape[dim] if t.ndim else 1
    k = check_int_at_least("k", k, 0)
    if k > n:
        raise ValueError(f"k must be <= the size of dim {dim} ({n}), got k={k}")
    if k == n:
        return back(t.clone(), was_numpy)
    if k == 0:  # zeros that keep x's graph (gradient 0), as top_k(x, n) keeps it
        return back(_zero_like_graph(t) if t.requires_grad else torch.zeros_like(t), was_numpy)
    # a stable sort: of equal magnitudes the lowest indices come first (topk picks any)
    idx = torch.sort(t.abs(), dim=dim, descending=True, stable=True).indices.narrow(dim, 0, k)
    out = torch.zeros_like(t).scatter(dim, idx, t.gather(dim, idx))
    return back(out, was_numpy)


def _zero_like_graph(t):
    """Zeros shaped like ``t`` on its autograd graph, gradient 0 (inf and NaN entries too)."""
    return t.nan_to_num(0.0, 0.0, 0.0) * 0.0
