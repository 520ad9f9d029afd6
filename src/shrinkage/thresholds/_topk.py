"""Top-k projection: the operator behind matching pursuit and magnitude pruning."""

from __future__ import annotations

import torch

from .._checks import check_int_at_least
from ._array import as_tensor, back


def top_k(x, k: int, dim: int = -1):
    """Keep the ``k`` largest magnitudes along ``dim``, zero the rest (ties: lowest index kept).

    The projection onto {u : ||u||_0 <= k} along each slice.

    >>> top_k(torch.tensor([[0.1, -3.0, 2.0]]), 1)
    tensor([[ 0., -3.,  0.]])
    """
    t, was_numpy = as_tensor(x)
    n = t.shape[dim] if t.ndim else 1
    k = check_int_at_least("k", k, 0)
    if k > n:
        raise ValueError(f"k must be <= the size of dim {dim} ({n}), got k={k}")
    if k == n:
        return back(t.clone(), was_numpy)
    idx = t.abs().topk(k, dim=dim).indices
    out = torch.zeros_like(t).scatter(dim, idx, t.gather(dim, idx))
    return back(out, was_numpy)
