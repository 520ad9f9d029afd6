"""RigL's pure pieces: layer densities (ERK, uniform), its drop fraction, one drop/grow update.

RigL (Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All Tickets Winners",
ICML 2020) trains at a fixed sparsity from the first step. Every ``update_every`` steps until
``update_end``, each layer drops the ``k = floor(f(t) * n_active)`` active connections of
smallest magnitude and grows the ``k`` inactive ones (just-dropped ones included) of largest
dense-gradient magnitude, ``f(t) = alpha / 2 * (1 + cos(pi * t / update_end))``. Newly grown
connections start at zero. The ``Sparsifier`` calls these functions.

RigL masks a dense initialisation, so a unit keeping a fraction d of its inputs starts with
sqrt(d) of the dense pre-activation scale; at very high sparsity the signal and its gradient
vanish before training starts. ``sparse_init_scale`` gives the factors of the sparse-aware
initialisation (Evci, Ioannou, Keskin & Dauphin, "Gradient Flow in Sparse Neural Networks and
How Lottery Tickets Win", AAAI 2022): each unit's kept weights multiplied by
sqrt(fan_in / kept fan_in), so that its pre-activation keeps the dense variance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from .._checks import check_choice, check_int_at_least, check_open_unit
from ._ops import n_pruned

__all__ = [
    "layer_densities",
    "layer_counts",
    "drop_fraction",
    "drop_grow",
    "check_rigl_params",
    "sparse_init_scale",
    "DISTRIBUTIONS",
    "INITS",
]

DISTRIBUTIONS = ("erk", "uniform")
"""How RigL spreads a total density over layers."""

INITS = ("dense", "sparse")
"""RigL's starting weights: the dense initialisation masked (the paper), or rescaled per unit
to its kept fan-in (``sparse_init_scale``)."""


def _erk_score(shape: Sequence[int]) -> float:
    """Erdos-Renyi-Kernel: sum of the weight's dims over their product (a Linear: ER)."""
    return sum(shape) / math.prod(shape)


def check_rigl_params(p: dict) -> dict:
    """``method_params`` of rigl, checked (ValueError naming the key, the value, what is
    allowed)."""
    if p["update_end"] is None:
        raise ValueError(
            "method='rigl' needs method_params['update_end'], the step from which the mask is "
            "frozen (RigL stops updating at 75 % of training)"
        )
    out = dict(p)
    for key, low in (("update_end", 1), ("update_every", 1), ("seed", 0)):
        out[key] = check_int_at_least(f"method_params['{key}']", p[key], low)
    if out["seed"] >= 2**63:
        raise ValueError(f"method_params['seed'] must be below 2**63, got {out['seed']}")
    if out["update_every"] >= out["update_end"]:
        # updates happen at multiples of update_every below update_end: none will (a short
        # smoke run may want that; a real one would be static sparse training, not RigL)
        warnings.warn(
            f"method_params['update_every']={out['update_every']} is not below "
            f"update_end={out['update_end']}: the mask will never be updated (static random "
            "sparse training, not RigL); lower update_every or raise update_end",
            UserWarning,
            stacklevel=5,
        )
    a = p["drop_fraction"]
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0 < a <= 1:
        raise ValueError(f"method_params['drop_fraction'] must be in (0, 1], got {a!r}")
    out["drop_fraction"] = float(a)
    check_choice("method_params['distribution']", p["distribution"], DISTRIBUTIONS)
    check_choice("method_params['init']", p["init"], INITS)
    return out


def layer_densities(shapes, density: float, distribution: str = "erk") -> list[float]:
    """Per-layer densities whose weighted mean (by size) is ``density``.

    ``"uniform"``: every layer at ``density``. ``"erk"`` (Erdos-Renyi-Kernel, Evci et al. 2020):
    ``d_l = eps * sum(shape_l) / prod(shape_l)``, with eps set by the total; a layer whose
    ``d_l`` would exceed 1 is made dense and eps recomputed over the others, until none does.
    ``Sparsifier(method="rigl")`` keeps these densities (counts rounded so that the total is
    exact, ``layer_counts``).

    Parameters
    ----------
    shapes : sequence of tuple of int
        The weight shapes, e.g. ``[m.weight.shape for m in layers]``.
    density : float
        The overall fraction of weights kept, in (0, 1].
    distribution : {"erk", "uniform"}, default "erk"
        How the kept weights are spread over the layers.

    Returns
    -------
    list of float
        One density in (0, 1] per shape.

    Raises
    ------
    ValueError
        An unknown distribution or a density outside (0, 1].

    Examples
    --------
    LeNet-300-100 at 10 % density: ERK keeps the small output layer dense and the large
    first layer sparsest, with the size-weighted mean exactly 0.1:

    >>> shapes = [(300, 784), (100, 300), (10, 100)]
    >>> d = layer_densities(shapes, 0.1)
    >>> [round(x, 4) for x in d]
    [0.0796, 0.2302, 1.0]
    >>> sizes = [a * b for a, b in shapes]
    >>> round(sum(x * n for x, n in zip(d, sizes)) / sum(sizes), 12)
    0.1
    """
    check_choice("distribution", distribution, DISTRIBUTIONS)
    density = float(density)
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got density={density!r}")
    for s in shapes:
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in s):
            raise ValueError(f"shapes must hold weight shapes of positive integers, got {tuple(s)}")
    sizes = [math.prod(s) for s in shapes]
    if distribution == "uniform":
        return [density] * len(sizes)
    scores = [_erk_score(s) for s in shapes]
    dense: set[int] = set()
    budget = density * sum(sizes)
    while True:
        rest = [i for i in range(len(sizes)) if i not in dense]
        if not rest:
            return [1.0] * len(sizes)
        eps = (budget - sum(sizes[i] for i in dense)) / sum(sizes[i] * scores[i] for i in rest)
        over = [i for i in rest if eps * scores[i] > 1.0]
        if not over:
            return [1.0 if i in dense else eps * scores[i] for i in range(len(sizes))]
        dense.update(over)  # eps only grows as dense layers leave the pool


def layer_counts(shapes, sparsity: float, distribution: str = "erk") -> list[int]:
    """Weights each layer keeps: the densities of ``layer_densities`` at ``1 - sparsity``,
    rounded so that exactly ``floor(sparsity * N)`` of all N weights are pruned (floors first,
    the remaining units to the largest fractional parts, ties to the earlier layer).

    Examples
    --------
    >>> layer_counts([(4, 10), (2, 4)], 0.5, "uniform")
    [20, 4]
    """
    check_open_unit("sparsity", sparsity, closed_low=True)
    for s in shapes:
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in s):
            raise ValueError(f"shapes must hold weight shapes of positive integers, got {tuple(s)}")
    sizes = [math.prod(s) for s in shapes]
    total = sum(sizes)
    keep = total - n_pruned(sparsity, total)
    if keep == total:
        return sizes
    exact = [d * n for d, n in zip(layer_densities(shapes, keep / total, distribution), sizes)]
    counts = [min(n, math.floor(c + 1e-9)) for c, n in zip(exact, sizes)]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - counts[i]), i))
    missing = keep - sum(counts)
    while missing > 0:  # a pass can skip full layers; the total always fits
        for i in order:
            if missing and counts[i] < sizes[i]:
                counts[i] += 1
                missing -= 1
    return counts


def sparse_init_scale(mask: torch.Tensor) -> torch.Tensor:
    """Per-unit factors of the sparse-aware initialisation: ``sqrt(fan_in / kept)``, ``kept``
    the unit's kept inputs (1 where it keeps none), shaped to broadcast over the weight.

    A unit's pre-activation variance under a zero-mean initialisation is proportional to the
    number of its inputs; masking keeps ``kept`` of ``fan_in``, and the factor restores the
    dense variance (Evci et al., AAAI 2022). Dim 0 indexes the units (Linear and Conv
    weights); the fan-in is the product of the other dims.

    Parameters
    ----------
    mask : torch.Tensor
        Bool mask of one weight, at least 2-D, units along dim 0.

    Returns
    -------
    torch.Tensor
        Shape ``(units, 1, ..., 1)``, the mask's device, float32.

    Examples
    --------
    >>> m = torch.tensor([[True, True, True, True], [True, False, False, False]])
    >>> sparse_init_scale(m).flatten().tolist()
    [1.0, 2.0]
    """
    if mask.dim() < 2:
        raise ValueError(
            f"mask must be at least 2-D (units along dim 0), got shape {tuple(mask.shape)}"
        )
    fan_in = math.prod(mask.shape[1:])
    kept = mask.reshape(mask.shape[0], -1).sum(dim=1).clamp(min=1).to(torch.float32)
    return (fan_in / kept).sqrt().reshape(-1, *([1] * (mask.dim() - 1)))


def drop_fraction(step: int, alpha: float, end: int) -> float:
    """RigL's cosine-decayed fraction ``alpha / 2 * (1 + cos(pi * step / end))``; 0 from ``end``.

    Examples
    --------
    >>> [round(drop_fraction(t, 0.3, 100), 6) for t in (0, 50, 100)]
    [0.3, 0.15, 0.0]
    """
    if step >= end:
        return 0.0
    return alpha / 2.0 * (1.0 + math.cos(math.pi * step / end))


@torch.no_grad()
def drop_grow(weight: torch.Tensor, mask: torch.Tensor, grad: torch.Tensor, k: int):
    """One RigL update of one layer, in place; returns ``(dropped, grown)`` bool masks.

    Drops the ``k`` active entries of smallest ``|weight|`` and grows the ``k`` entries of
    largest ``|grad|`` among those not still active (the just-dropped ones included); ties go
    to the lower flat index. A grown entry that was inactive starts at 0; one dropped and
    regrown keeps its value. Entries outside the new mask are set to 0.
    """
    flat_w, flat_m, flat_g = weight.reshape(-1), mask.reshape(-1), grad.reshape(-1)
    dropped = torch.zeros_like(flat_m)
    grown = torch.zeros_like(flat_m)
    if k > 0:
        inf = torch.full_like(flat_w, math.inf)
        drop_scores = torch.where(flat_m, flat_w.abs(), inf)
        order = torch.sort(drop_scores, stable=True).indices[:k]
        dropped[order] = True
        kept = flat_m & ~dropped
        grow_scores = torch.where(kept, -inf, flat_g.abs().to(flat_w.dtype))
        order = torch.sort(grow_scores, descending=True, stable=True).indices[:k]
        grown[order] = True
        flat_w.masked_fill_(grown & ~flat_m, 0.0)  # new connections start at zero
        flat_m.copy_(kept | grown)
    flat_w.masked_fill_(~flat_m, 0.0)
    return dropped.reshape(mask.shape), grown.reshape(mask.shape)
