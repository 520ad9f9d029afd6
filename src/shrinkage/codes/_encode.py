"""Batched proximal-gradient sparse coding: the one core every estimator and CLI calls.

Energy of a row x (n_features) under a dictionary D (n_atoms, n_features)::

    E(r) = 1/2 ||x - r D||^2 + sum_i G(r_i)        (G from ``shrinkage.thresholds``)

Proximal gradient: r <- prox_{step G}(r + step (x - r D) D^T), step = 1/L, L = ||D||_2^2.
For l1 the default is exact coordinate descent in a compiled kernel (``_cd``), with the
torch working-set FISTA (``_fast``) where that kernel cannot run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from .._checks import (
    check_choice,
    check_int_at_least,
    check_nonnegative,
    check_positive,
    check_scalar,
)
from ..thresholds import PENALTIES, get_penalty, prox
from . import _cd
from ._docs import fill_doc
from ._fast import _retire, _times_gram, _worth_shrinking, solve_l1_working_set

SOLVERS = ("cd", "fista", "ista")
_HALF = (torch.float16, torch.bfloat16)
CONVEX = ("l1",)
_GRAM_MAX_ATOMS = 4096  # above this G = D D^T costs more memory than it saves time
_SAFETY = 1.01  # power iteration underestimates ||D||_2; keep step strictly below 1/L


# -- inputs -----------------------------------------------------------------------------
def _to_tensor(a, name, dtype=None, device=None):
    if isinstance(a, torch.Tensor):
        t = a
    elif isinstance(a, np.ndarray | list | tuple):
        arr = np.asarray(a)
        if not arr.flags.writeable:
            arr = arr.copy()
        if np.iscomplexobj(arr):
            raise ValueError(f"{name} must be real, got a complex array ({arr.dtype})")
        if not np.issubdtype(arr.dtype, np.floating):
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name} must hold numbers, got {arr.dtype}: {e}") from None
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")
    if t.is_complex():
        raise ValueError(f"{name} must be real, got a complex tensor ({t.dtype})")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t


def _check_finite(t, name):
    # A NaN or inf makes the sum non-finite: one reduction instead of a full mask when clean.
    if t.numel() and bool(torch.isfinite(t.sum())):
        return
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf value(s); clean the input first")


def check_dictionary(D, n_features: int | None = None):
    """Validate a dictionary: 2-D, finite, no zero atom, width ``n_features`` if given."""
    if D.ndim != 2:
        raise ValueError(f"D must be 2-D (n_atoms, n_features), got shape {tuple(D.shape)}")
    _check_finite(D, "D")
    norms = D.norm(dim=1)
    zero = torch.nonzero(norms == 0).flatten()
    if len(zero):
        raise ValueError(
            f"D has {len(zero)} zero atom(s) (rows {zero[:5].tolist()}...); every atom needs a "
            "non-zero norm (renormalise or re-initialise them)"
        )
    sq = norms * norms
    if not bool((sq > 0).all() and torch.isfinite(sq).all()):
        raise ValueError(
            f"D's atom norms run from {float(norms.min()):.3g} to {float(norms.max()):.3g}: "
            f"their squares under- or overflow {D.dtype}; rescale D (or use float64)"
        )
    if n_features is not None and D.shape[1] != n_features:
        raise ValueError(
            f"X has {n_features} features per row but D has {D.shape[1]} (D is "
            f"(n_atoms, n_features) = {tuple(D.shape)}; rows of X are samples)"
        )
    return norms


def _check_X(X, n_features):
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}")
    if X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features per row but D has {n_features} (D is (n_atoms, "
            "n_features); pass X as (n_samples, n_features))"
        )
    _check_finite(X, "X")


def lipschitz(D, n_iter: int = 100, seed: int = 0) -> float:
    """L = ||D||_2^2, the largest eigenvalue of D D^T, by power iteration on the smaller Gram.

    L is the Lipschitz constant of the gradient ``-(x - r D) D^T`` of the quadratic part of
    the sparse-coding energy, so ``1 / L`` is the largest safe step of proximal gradient
    (Beck & Teboulle 2009). Power iteration runs on ``D D^T`` or ``D^T D``, whichever is
    smaller, from a seeded random start, until the estimate changes by at most 1e-7
    relative; it approaches L from below, which is why ``encode`` steps by
    ``1 / (1.01 L)``.

    Parameters
    ----------
    D : torch.Tensor or numpy.ndarray
        (n_atoms, n_features) dictionary (any device and floating dtype).
    n_iter : int, default 100
        Largest number of power iterations.
    seed : int, default 0
        Seed of the random start (a CPU ``torch.Generator``): the same D gives the same L.

    Returns
    -------
    float
        The estimate of ``||D||_2^2`` (the squared largest singular value of D); 0.0 for a
        dictionary of zeros.

    Examples
    --------
    >>> round(lipschitz(torch.eye(3) * 2.0), 6)
    4.0
    >>> D = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> L = lipschitz(D)
    >>> abs(L - float(torch.linalg.matrix_norm(D, ord=2)) ** 2) < 1e-6 * L
    True
    """
    D = _to_tensor(D, "D")
    if D.dim() != 2:
        raise ValueError(f"D must be 2-D (n_atoms, n_features), got shape {tuple(D.shape)}")
    G = D @ D.T if D.shape[0] <= D.shape[1] else D.T @ D
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(G.shape[0], generator=gen, dtype=torch.float64).to(G)
    v = v / v.norm()
    lam = 0.0
    for _ in range(n_iter):
        w = G @ v
        lam_new = float(w.norm())
        if lam_new == 0:
            return 0.0
        v = w / lam_new
        if abs(lam_new - lam) <= 1e-7 * lam_new:
            lam = lam_new
            break
        lam = lam_new
    return lam


def _penalty_params(name, norms, params):
    p = {k: params.get(k, default) for k, default in get_penalty(name).params.items()}
    p.update(params)
    if name == "cel0" and "a" not in params:
        p["a"] = norms  # CEL0 is exact only with each atom's own norm
    for k, v in p.items():
        p[k] = _one_or_per_atom(name, k, v, norms)
    return p


def _one_or_per_atom(name, key, v, norms):
    """A penalty parameter as the prox reads it: a number, or (cel0's ``a`` only) one value
    per atom as a tensor like ``norms``; anything else a ValueError naming it."""
    if isinstance(v, int | float) or v is None:
        return v
    try:
        t = torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}'s {key} must be a number, got {v!r}") from None
    if t.numel() == 1:
        return v if isinstance(v, torch.Tensor) else float(t)
    if name != "cel0" or key != "a" or t.shape != norms.shape:
        what = f"one number or one value per atom (n_atoms={norms.shape[0]})"
        raise ValueError(
            f"{name}'s {key} must be {what if key == 'a' else 'one number'}, got shape "
            f"{tuple(t.shape)}"
        )
    return t.to(device=norms.device, dtype=norms.dtype)


def _pick_solver(penalty, solver, monotone, gram, working_set, n_atoms):
    """``solver=None``: ``"cd"`` for l1 unless a FISTA option (monotone=True, gram,
    working_set) is asked for or G = D D^T would be too large; ``"fista"`` otherwise."""
    if solver is not None:
        return solver
    if (
        penalty == "l1"
        and monotone is not True
        and gram is None
        and working_set is None
        and n_atoms <= _GRAM_MAX_ATOMS
    ):
        return "cd"
    return "fista"


def _needs_step(penalty, D, kw):
    """Whether encode(..., **kw) on D will run a proximal-gradient solver (which needs the
    step): everything but the compiled coordinate descent."""
    solver = _pick_solver(
        penalty,
        kw.get("solver"),
        kw.get("monotone"),
        kw.get("gram"),
        kw.get("working_set"),
        D.shape[0],
    )
    return solver != "cd" or not _cd.usable(D)


def safe_step(D) -> float:
    """The default step ``1 / (1.01 ||D||_2^2)``; ValueError when ``||D||_2^2`` is 0 or not
    finite in D's dtype (atoms too small or too large to be squared in it)."""
    L = lipschitz(D)
    if not (0.0 < L < math.inf):
        raise ValueError(
            f"||D||_2^2 = {L:g} in {D.dtype}: the atoms are too small or too large to square in "
            "this dtype; rescale D (its rows are normalised anyway) or use float64"
        )
    return 1.0 / (_SAFETY * L)


def _resolve_step(D, step):
    if step is None:
        return safe_step(D)
    check_positive("step", step)
    if not math.isfinite(float(step)):
        raise ValueError(f"step must be finite, got step={step!r}")
    return float(step)


# -- energy -----------------------------------------------------------------------------
def _energy(X, R, Z, name, lam, p):
    """Per-row energy from residual R = X - Z D and codes Z."""
    pen = get_penalty(name).value(Z, lam, **p).sum(dim=1)
    return 0.5 * (R * R).sum(dim=1) + pen


@fill_doc
def objective(X, D, codes, penalty: str = "l1", lam: float = 0.1, reduce: str = "mean", **params):
    """Energy 1/2 ||x - r D||^2 + sum_i G(r_i) of each row (``reduce="none"``) or their mean.

    CEL0 takes each atom's norm as ``a`` unless given.

    The energy that ``encode`` minimises row by row, with the penalty ``G`` of
    ``shrinkage.thresholds`` (weight ``lam`` included): use it to compare codes found by
    different solvers or penalties on the same data.

    Parameters
    ----------
    X : torch.Tensor or numpy.ndarray
        (n_samples, n_features) signals; numpy in, numpy out.
    D : torch.Tensor or numpy.ndarray
        (n_atoms, n_features) dictionary, one non-zero atom per row.
    %(codes, penalty, lam)s
    reduce : {"mean", "none", "sum"}, default "mean"
        Mean over the rows, each row's energy, or their sum.
    **params
        Penalty parameters (``gamma`` for mcp/scad; ``a`` for cel0, default each atom's
        norm).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The energy: a 0-d value for ``"mean"`` and ``"sum"``, shape (n_samples,) for
        ``"none"``; a numpy array when X is not a tensor, else a tensor in X's dtype.

    Raises
    ------
    ValueError
        When ``penalty`` or ``reduce`` is unknown, ``lam`` is negative, D is not 2-D or has
        a zero atom, NaN or inf values in D, widths of X and D differ, or ``codes`` is not
        (n_samples, n_atoms).
    TypeError
        When X, D or codes is not a tensor, an array or a (nested) list.

    Examples
    --------
    ``1/2 (1 - 0.5)^2 + 0.1 * 0.5 = 0.175``:

    >>> D = np.eye(2); X = np.array([[1.0, 0.0]])
    >>> float(objective(X, D, np.array([[0.5, 0.0]]), "l1", 0.1))
    0.175
    >>> objective(np.vstack([X, 2 * X]), D, np.zeros((2, 2)), reduce="none")
    array([0.5, 2. ])
    """
    check_choice("penalty", penalty, PENALTIES)
    check_nonnegative("lam", lam)
    check_scalar("lam", lam)  # one finite number, as encode takes
    check_choice("reduce", reduce, ("mean", "none", "sum"))
    was_numpy = not isinstance(X, torch.Tensor)
    Xt = _to_tensor(X, "X")
    Dt = _to_tensor(D, "D", dtype=Xt.dtype, device=Xt.device)
    Zt = _to_tensor(codes, "codes", dtype=Xt.dtype, device=Xt.device)
    norms = check_dictionary(Dt, Xt.shape[1])
    if Zt.shape != (Xt.shape[0], Dt.shape[0]):
        raise ValueError(
            f"codes must have shape (n_samples, n_atoms) = {(Xt.shape[0], Dt.shape[0])}, "
            f"got {tuple(Zt.shape)}"
        )
    p = _penalty_params(penalty, norms, params)
    e = _energy(Xt, Xt - Zt @ Dt, Zt, penalty, float(lam), p)
    out = {"mean": e.mean(), "sum": e.sum(), "none": e}[reduce]
    return out.detach().cpu().numpy() if was_numpy else out


# -- the solver -------------------------------------------------------------------------
def _form(X, D, G, name, lam, p):
    """(A, xx, state, energy, neg_grad): the Gram form when G is given, else the residual one."""
    return (_gram_form if G is not None else _residual_form)(X, D, G, name, lam, p)


def _gram_form(X, D, G, name, lam, p):
    def state(Zc, A):
        return _times_gram(Zc, G) - A

    def energy(S, Zc, A, xx):
        pen = get_penalty(name).value(Zc, lam, **p).sum(dim=1)
        return 0.5 * xx + 0.5 * (Zc * (S - A)).sum(1) + pen

    def neg_grad(S):
        return -S

    return X @ D.T, (X * X).sum(1), state, energy, neg_grad  # A = b = x D^T


def _residual_form(X, D, G, name, lam, p):
    def state(Zc, A):
        return A - Zc @ D

    def energy(S, Zc, A, xx):
        return _energy(A, S, Zc, name, lam, p)

    def neg_grad(S):
        return S @ D.T

    return X, X[:, :1], state, energy, neg_grad  # xx unused in this form


def _extrapolate(t, ok, Znew, Z, Rnew, R):
    """FISTA's momentum step on the codes and their state; rows whose step was rejected
    (``ok`` False) restart with no momentum."""
    tn = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
    beta = (t - 1.0) / tn
    if ok is not None:
        beta = torch.where(ok[:, None], beta, torch.zeros_like(beta))
        tn = torch.where(ok[:, None], tn, torch.ones_like(tn))
    return Znew + beta * (Znew - Z), Rnew + beta * (Rnew - R), tn


def _solve(X, D, name, lam, step, p, solver, monotone, max_iter, tol, Z0, G=None):
    """Proximal gradient on all rows of X; converged rows leave the working set.

    The gradient at a code y is -(x - y D) D^T. Two equivalent ways to carry it, both affine
    in the code so the FISTA extrapolation applies to them as to the codes:
    residual form S = x - z D (gradient S D^T), or, when ``G = D D^T`` is given, Gram form
    S = z G - x D^T (gradient S itself), where z G only touches z's non-zeros.
    Returns codes, per-row iteration counts and per-row convergence flags.
    """
    n = X.shape[0]
    prox_fn = get_penalty(name).prox
    out = torch.zeros(n, D.shape[0], dtype=X.dtype, device=X.device) if Z0 is None else Z0.clone()
    iters = torch.zeros(n, dtype=torch.long, device=X.device)
    conv = torch.zeros(n, dtype=torch.bool, device=X.device)
    if n == 0:
        return out, iters, conv
    gram = G is not None
    idx = torch.arange(n, device=X.device)
    Z = out.clone()  # accepted iterate x_k
    A, xx, state, energy, neg_grad = _form(X, D, G, name, lam, p)
    R = state(Z, A) if Z0 is not None else (-A.clone() if gram else A.clone())
    Y, RY = Z, R  # extrapolated point and its state
    t = torch.ones(n, 1, dtype=X.dtype, device=X.device)
    E = energy(R, Z, A, xx) if monotone else None
    accel = solver == "fista"
    pending = torch.zeros(n, dtype=torch.bool, device=X.device)  # converged, not yet removed
    k = 0
    for k in range(1, max_iter + 1):
        Zn = prox_fn(Y + step * neg_grad(RY), lam, step, **p)
        Rn = state(Zn, A)
        # Stationarity measure: length of the prox-gradient step, relative to the code.
        diff = (Zn - Y).norm(dim=1)
        done = diff <= tol * torch.clamp(Zn.norm(dim=1), min=1e-12)
        if monotone:
            En = energy(Rn, Zn, A, xx)
            ok = En <= E
            # A rejected momentum step restarts that row from its last accepted point.
            okc = ok[:, None]
            Znew = torch.where(okc, Zn, Z)
            Rnew = torch.where(okc, Rn, R)
            E = torch.where(ok, En, E)
            done = done & ok
        else:
            ok = None
            Znew, Rnew = Zn, Rn
        if accel:
            Y, RY, t = _extrapolate(t, ok, Znew, Z, Rnew, R)
        else:
            Y, RY = Znew, Rnew
        Z, R = Znew, Rnew
        first = done & ~pending
        if bool(first.any()):
            # A row's result is fixed when it converges, so it never depends on the others.
            _retire(first, idx, Z, k, out, iters)
            conv[idx[first]] = True
            pending |= done
            if _worth_shrinking(int(pending.sum()), len(idx), share=8):
                keep = ~pending
                if not bool(keep.any()):
                    return out, iters, conv
                idx, A, xx, Z, R, Y, RY, t = (a[keep] for a in (idx, A, xx, Z, R, Y, RY, t))
                if E is not None:
                    E = E[keep]
                pending = pending[keep]
    rest = idx[~pending]
    out[rest] = Z[~pending]
    iters[rest] = k
    return out, iters, conv


def _check_cd(penalty, monotone, gram, working_set, n_atoms):
    if penalty != "l1" or monotone is True:
        raise ValueError(
            "solver='cd' needs penalty='l1' and monotone not True, got "
            f"penalty={penalty!r}, monotone={monotone!r}"
        )
    if gram or working_set:
        raise ValueError(
            "gram=True and working_set=True are FISTA options; pass solver='fista' with them "
            f"(got solver='cd', gram={gram!r}, working_set={working_set!r})"
        )
    if n_atoms > _GRAM_MAX_ATOMS:
        raise ValueError(
            f"solver='cd' needs n_atoms <= {_GRAM_MAX_ATOMS} (G = D D^T is n_atoms^2), "
            f"got {n_atoms}"
        )


@dataclass(frozen=True)
class EncodePlan:
    """What ``encode`` resolved from its arguments before any work: the solver that runs
    (``"cd"`` only where the compiled kernel does), the step, the penalty's parameters, the
    safeguards and the lam stages. ``plan_encode`` makes one; ``run_plan`` runs it."""

    penalty: str
    lam: float
    solver: str  # "cd", "fista" or "ista"
    step: float | None  # None for CD
    params: dict
    monotone: bool
    working_set: bool
    gram: bool
    lams: tuple[float, ...]  # the lam of each stage, the last one ``lam``
    relaxation: str | None
    continuation: int
    max_iter: int
    tol: float
    batch_size: int | None


def _check_options(penalty, lam, solver, max_iter, tol, continuation, relaxation, init, bs):
    check_choice("penalty", penalty, PENALTIES)
    if solver is not None:
        check_choice("solver", solver, SOLVERS)
    check_nonnegative("lam", lam)
    check_scalar("lam", lam)
    check_nonnegative("tol", tol)
    if relaxation is not None:
        check_choice("relaxation", relaxation, PENALTIES)
        if init is not None:
            raise ValueError("give init (an array) or relaxation (a penalty name), not both")
    return (
        check_int_at_least("max_iter", max_iter, 1),
        check_int_at_least("continuation", continuation, 0),
        None if bs is None else check_int_at_least("batch_size", bs, 1),
    )


def _working_set(working_set, penalty, solver, monotone, gram, shape) -> bool:
    """The working-set FISTA: on by default for l1 FISTA on a 2x overcomplete dictionary."""
    n_atoms, n_features = shape
    if working_set is None:
        return (
            penalty == "l1"
            and solver == "fista"
            and not monotone
            and gram is None
            # Measured: 3x faster with 1024 atoms on 256 features, but 1.4x slower inside
            # dictionary learning with 256 atoms on 256 features (denser, smaller batches).
            and n_atoms >= 2 * n_features
            and n_atoms <= _GRAM_MAX_ATOMS
        )
    if working_set and (penalty != "l1" or solver != "fista" or monotone):
        raise ValueError(
            "working_set=True needs penalty='l1', solver='fista' and monotone not True, got "
            f"penalty={penalty!r}, solver={solver!r}, monotone={monotone!r}"
        )
    if working_set and n_atoms > _GRAM_MAX_ATOMS:
        raise ValueError(
            f"working_set=True needs n_atoms <= {_GRAM_MAX_ATOMS} (G = D D^T is n_atoms^2), "
            f"got {n_atoms}"
        )
    return bool(working_set)


def _gram(gram, n_atoms) -> bool:
    if gram and n_atoms > _GRAM_MAX_ATOMS:
        raise ValueError(
            f"gram=True needs n_atoms <= {_GRAM_MAX_ATOMS} (G = D D^T is n_atoms^2), got {n_atoms}"
        )
    return bool(gram)  # default off: measured slower on CPU, where elementwise passes dominate


def plan_encode(
    X,
    D,
    norms,
    penalty,
    lam,
    *,
    solver=None,
    step=None,
    monotone=None,
    gram=None,
    working_set=None,
    continuation=0,
    relaxation=None,
    max_iter=1000,
    tol=1e-4,
    batch_size=None,
    params=None,
) -> EncodePlan:
    """Resolve ``encode``'s options for the checked tensors ``X`` and ``D`` (atom norms
    ``norms``): every error is raised here, before any work."""
    solver = _pick_solver(penalty, solver, monotone, gram, working_set, D.shape[0])
    use_cd = False
    if solver == "cd":
        _check_cd(penalty, monotone, gram, working_set, D.shape[0])
        # The compiled kernel, or the FISTA path (same minimiser) where it cannot run.
        use_cd = _cd.usable(X) and _cd.load() is not None
        solver = "cd" if use_cd else "fista"
    if use_cd:
        if step is not None:
            check_positive("step", step)
    else:
        step = _resolve_step(D, step)
        _warn_spread(norms, penalty)
    p = _penalty_params(penalty, norms, params or {})
    # Validate the penalty parameters with this step once (cel0: a^2 step < 1), then use
    # the registry's prox (the same single definition) inside the loop without re-checking.
    prox(penalty, torch.zeros(1, D.shape[0], dtype=X.dtype, device=X.device), lam, step or 1.0, **p)
    p = {k: (v.to(X) if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
    if monotone is None:
        monotone = penalty not in CONVEX
    stages = [float(lam) * 30.0 ** (1.0 - s / continuation) for s in range(continuation)]
    return EncodePlan(
        penalty=penalty,
        lam=float(lam),
        solver=solver,
        step=step,
        params=p,
        monotone=bool(monotone),
        working_set=False
        if use_cd
        else _working_set(working_set, penalty, solver, monotone, gram, tuple(D.shape)),
        gram=_gram(gram, D.shape[0]),
        lams=(float(lam),) if relaxation is not None else (*stages, float(lam)),
        relaxation=relaxation,
        continuation=continuation,
        max_iter=max_iter,
        tol=tol,
        batch_size=batch_size,
    )


def _warn_spread(norms, penalty) -> None:
    """A UserWarning when the atoms' norms spread over more than 30x on a proximal-gradient
    path: its step follows the largest atom, the small ones barely move, and the stopping
    rule (a small relative change) can fire far from the minimum (1.75x the optimum's
    energy at 100x, measured with l1), reported converged."""
    lo, hi = float(norms.min()), float(norms.max())
    if hi > 30 * lo:
        better = "solver='cd'" if penalty == "l1" else "unit-norm atoms where the penalty allows"
        warnings.warn(
            f"encode: atom norms from {lo:.3g} to {hi:.3g} ({hi / lo:.0f}x): proximal "
            f"gradient may stop far from the minimum (its step follows the largest atom); "
            f"use {better}",
            UserWarning,
            stacklevel=4,
        )


@fill_doc
def encode(
    X,
    D,
    penalty: str = "l1",
    lam: float = 0.1,
    *,
    solver: str | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    step: float | None = None,
    init=None,
    relaxation: str | None = None,
    return_info: bool = False,
    monotone: bool | None = None,
    continuation: int = 0,
    batch_size: int | None = None,
    gram: bool | None = None,
    working_set: bool | None = None,
    **params,
):
    """Sparse codes of the rows of X against D (coordinate descent or proximal gradient).

    Minimises, row by row, ``1/2 ||x - r D||^2 + sum_i G(r_i)`` with G from
    ``shrinkage.thresholds.penalty`` (``lam`` included). ``solver="cd"`` (l1 only, the
    default for l1): covariance coordinate descent on a working set per row with ``G = D D^T``
    and ``b = x D^T`` (Friedman, Hastie & Tibshirani 2010), then an exact solve on the
    support and signs found, checked against every atom: the codes are the lasso solution
    itself (where a support has more non-zeros than features, its Gram block is singular and
    that solve cannot take it: CD goes on to finer tolerances until the support is
    stationary, or reports the row not converged at ``max_iter``). It runs in a C kernel
    compiled at first use (CPU, float32 / float64, ``torch.get_num_threads()`` threads); on
    other devices or dtypes, or without a C compiler (``SHRINKAGE_NO_COMPILE=1``), the FISTA
    path below runs instead (same minimiser). ``solver="fista"``: FISTA (Beck & Teboulle
    2009) with the step ``1/L``, ``L = ||D||_2^2`` by power iteration unless ``step`` is
    given; for the non-convex penalties a monotone FISTA that rejects a momentum step
    raising a row's energy and restarts that row, so the energy never increases. ``"ista"``:
    plain proximal gradient (monotone for every penalty). ``cel0`` takes each atom's norm as
    its ``a`` (Soubies et al. 2015).

    Parameters
    ----------
    X : torch.Tensor or numpy.ndarray
        (n_samples, n_features) signals, one per row (numpy in, numpy out). A list is
        taken as an array; integer data as float64.
    D : torch.Tensor or numpy.ndarray
        (n_atoms, n_features) dictionary, rows are atoms (scikit-learn orientation); cast
        to X's dtype and device. Atoms need not be unit-norm but none may be zero.
    %(penalty)s
    lam : float, default 0.1
        Penalty weight >= 0. Same scale as scikit-learn's ``sparse_encode(alpha=lam)``
        for l1 (which runs ``Lasso(alpha=lam / n_features)``).
    solver : {"cd", "fista", "ista"}, optional
        Default (None): ``"cd"`` for l1 (unless ``monotone=True``, ``gram`` or
        ``working_set`` is given, or n_atoms > 4096), ``"fista"`` otherwise.
    max_iter : int, default 1000
        FISTA / ISTA: stop a row after max_iter iterations (>= 1). CD: max_iter bounds a
        row's sweeps plus optimality scans.
    tol : float, default 1e-4
        FISTA / ISTA: stop a row when ``||r_new - y|| <= tol ||r_new||`` (>= 0). CD: a zero
        coefficient is optimal when ``|c_j| <= lam (1 + min(tol, 1e-3))`` (rounding
        aside), and tol is the relative change at which CD stops when the exact solve on
        the support is refused (nearly collinear atoms in it).
    step : float, optional
        Gradient step, > 0 and finite; default ``1 / (1.01 ||D||_2^2)`` (not used by CD).
    init : torch.Tensor or numpy.ndarray, optional
        (n_samples, n_atoms) warm start (default zeros).
    relaxation : str, optional
        Name of a penalty whose codes at the same ``lam`` start the iterations
        (instead of ``init``). ``penalty="l0", relaxation="cel0"`` solves the l0 energy from
        its exact continuous relaxation CEL0 (same global minimisers, Soubies et al. 2015):
        the monotone solver then only lowers the l0 energy of the CEL0 codes, which on
        natural-image patches is about half the energy hard thresholding reaches from
        zero. ``continuation`` then applies to the relaxation stage only.
    return_info : bool, default False
        Also return the solver's report (see Returns).
    monotone : bool, optional
        Force (True) or forbid (False) the monotone safeguard; default: on for
        non-convex penalties.
    continuation : int, default 0
        Number of extra stages solved first with lam geometrically decreasing
        from ``30 lam`` (warm-starting each from the previous): can help l0 escape the poor
        local minima that hard thresholding from zero gets stuck in (``relaxation="cel0"``
        does so far more reliably).
    batch_size : int, optional
        Encode this many rows at a time (memory bounded by the batch); default: all rows
        at once.
    gram : bool, optional
        Carry the gradient through G = D D^T, touching only the codes' non-zeros
        (n_atoms <= 4096); default False: through the residual x - r D.
    working_set : bool, optional
        l1 FISTA only: iterate FISTA on a small per-row working set of atoms (support
        plus the worst KKT violators) against Gram blocks of G = D D^T, re-checking every
        atom's optimality after each round, and solve each row exactly on its support and
        signs once FISTA has found them (``shrinkage.codes._fast``). The subproblems are
        solved to ``min(tol, 3e-4)``. Default: on for ``l1`` with ``solver="fista"`` (also
        where CD falls back to FISTA) when neither ``gram`` nor ``monotone=True`` is asked
        for and the dictionary is at least 2x overcomplete with n_atoms <= 4096.
    **params
        Penalty parameters (``gamma`` for mcp/scad; ``a`` overrides the atom norms).

    Returns
    -------
    codes : numpy.ndarray or torch.Tensor
        (n_samples, n_atoms), numpy when X is numpy, in X's dtype (float16 and
        bfloat16 are solved in float32).
    info : dict
        Only with ``return_info`` (the result is then the pair ``(codes, info)``):
        ``n_iter`` (largest over rows), ``n_iter_per_sample``, ``objective`` (mean
        energy), ``converged`` (all rows), ``converged_fraction`` and ``step`` (None for
        CD).

    Raises
    ------
    ValueError
        On a bad argument (unknown penalty or solver, negative lam or tol, max_iter or
        batch_size below 1, shapes that do not match, a zero atom, NaN or inf in X, D or
        init, both ``init`` and ``relaxation``, options that do not go together such as
        ``solver="cd"`` with a penalty other than l1, or penalty parameters out of range),
        before any work; when a row's energy ends non-finite (a ``step`` above
        ``1/||D||_2^2``, or X and D out of range) instead of returning it; when the codes
        overflow X's half-precision dtype.
    TypeError
        When X, D or init is not a tensor, an array or a (nested) list.

    Warns
    -----
    ConvergenceWarning
        scikit-learn's, when rows stopped at ``max_iter`` before ``tol``.

    Examples
    --------
    With orthonormal atoms the l1 codes are the soft thresholding of ``x D^T`` at ``lam``:

    >>> D = np.eye(3); X = np.array([[2.0, -0.5, 1.0]])
    >>> np.round(encode(X, D, "l1", lam=1.0, tol=1e-10), 6) + 0.0
    array([[1., 0., 0.]])

    l0 keeps the coefficients above its threshold unshrunk and zeroes the others: the
    prox's ``sqrt(2 step lam)`` on ``step x D^T``, so ``sqrt(2 lam / (step L))`` on ``x D^T``,
    ``sqrt(2.02 lam)`` at the default step ``1 / (1.01 L)`` (a coefficient in ``(sqrt(2 lam),
    sqrt(2.02 lam)]`` is zeroed although keeping it would lower the energy: proximal gradient
    stops at such points; ``relaxation="cel0"`` starts from the exact relaxation's codes). The
    report's objective is the energy of the codes, ``1/2 0.5^2 + 0.2 * 2 = 0.525``, as
    ``objective`` computes it:

    >>> codes, info = encode(X, D, "l0", lam=0.2, return_info=True)
    >>> np.round(codes, 4) + 0.0, info["converged"], round(info["objective"], 6)
    (array([[2., 0., 1.]]), True, 0.525)
    >>> bool(np.isclose(info["objective"], objective(X, D, codes, "l0", 0.2)))
    True
    """
    max_iter, continuation, batch_size = _check_options(
        penalty, lam, solver, max_iter, tol, continuation, relaxation, init, batch_size
    )
    was_numpy = not isinstance(X, torch.Tensor)
    Xt = _to_tensor(X, "X")
    out_dtype = Xt.dtype
    if Xt.dtype in _HALF:  # the solvers work in float32; the codes come back in X's dtype
        Xt = Xt.float()
    Dt = _to_tensor(D, "D", dtype=Xt.dtype, device=Xt.device)
    norms = check_dictionary(Dt)
    _check_X(Xt, Dt.shape[1])
    plan = plan_encode(
        Xt,
        Dt,
        norms,
        penalty,
        lam,
        solver=solver,
        step=step,
        monotone=monotone,
        gram=gram,
        working_set=working_set,
        continuation=continuation,
        relaxation=relaxation,
        max_iter=max_iter,
        tol=tol,
        batch_size=batch_size,
        params=params,
    )
    Z0 = _check_init(init, Xt, Dt)
    codes, info = run_plan(plan, Xt, Dt, Z0, return_info)
    if codes.dtype != out_dtype:
        codes = codes.to(out_dtype)
        if not bool(torch.isfinite(codes).all()):
            raise ValueError(
                f"the codes exceed the range of {out_dtype} (X's dtype); encode X in float32"
            )
    out = codes.cpu().numpy() if was_numpy else codes
    if not return_info:
        return out
    if was_numpy:
        info["n_iter_per_sample"] = info["n_iter_per_sample"].cpu().numpy()
    return out, info


def _check_init(init, X, D):
    if init is None:
        return None
    Z0 = _to_tensor(init, "init", dtype=X.dtype, device=X.device)
    if Z0.shape != (X.shape[0], D.shape[0]):
        raise ValueError(
            f"init must have shape (n_samples, n_atoms) = {(X.shape[0], D.shape[0])}, "
            f"got {tuple(Z0.shape)}"
        )
    _check_finite(Z0, "init")
    return Z0


def run_plan(plan: EncodePlan, X, D, Z0=None, return_info: bool = False):
    """Codes of the rows of the checked tensor ``X`` under ``plan`` (from ``plan_encode``),
    warm-started at ``Z0`` or at the relaxation's codes; returns (codes, info or None)."""
    n = X.shape[0]
    iters = torch.zeros(n, dtype=torch.long, device=X.device)
    if plan.relaxation is not None:
        Z0, winfo = encode(
            X,
            D,
            plan.relaxation,
            plan.lam,
            max_iter=plan.max_iter,
            tol=plan.tol,
            step=plan.step,  # the step found for the plan: no second power iteration
            continuation=plan.continuation,
            batch_size=plan.batch_size,
            return_info=True,
        )
        iters += winfo["n_iter_per_sample"]
    use_cd = plan.solver == "cd"
    # CD returns each row's energy on the way: no second pass over the codes for the info.
    energies = torch.empty(n, dtype=torch.float64) if use_cd else None
    codes, conv = _run_batches(plan, X, D, Z0, iters, energies)
    if energies is None:
        with torch.no_grad():
            energies = _energy(X, X - codes @ D, codes, plan.penalty, plan.lam, plan.params)
    _check_outcome(plan, D, codes, energies, conv)
    if not return_info:
        return codes, None
    return codes, {
        "n_iter": int(iters.max()) if n else 0,
        "n_iter_per_sample": iters,
        "objective": float(energies.mean()) if n else 0.0,
        "converged": bool(conv.all()),
        "converged_fraction": float(conv.double().mean()) if n else 1.0,
        "step": plan.step,
    }


def _check_outcome(plan: EncodePlan, D, codes, energies, conv) -> None:
    """Nothing silent: a row whose energy is not finite diverged (ValueError, with the step);
    rows that stopped at max_iter give a ConvergenceWarning."""
    # two reductions when all is finite (the usual case), a mask per row only otherwise
    clean = bool(torch.isfinite(energies.sum())) and bool(torch.isfinite(codes.sum()))
    finite = None if clean else torch.isfinite(energies).to(conv.device)
    if finite is not None:
        finite = finite & torch.isfinite(codes).all(dim=1)
    if finite is not None and not bool(finite.all()):
        bad = int((~finite).sum())
        L = lipschitz(D)
        safe = 1.0 / (_SAFETY * L) if 0.0 < L < math.inf else float("nan")
        step = "coordinate descent" if plan.step is None else f"step={plan.step:.4g}"
        raise ValueError(
            f"encode diverged: {bad} of {len(finite)} row(s) ended with a non-finite energy "
            f"({step}; the default step 1/(1.01 ||D||_2^2) is {safe:.4g}); take a step "
            "<= 1/||D||_2^2 (step=None), or rescale X and D"
        )
    if not bool(conv.all()):
        left = int((~conv).sum())
        warnings.warn(
            f"encode: {left} of {len(conv)} row(s) did not converge in max_iter="
            f"{plan.max_iter} iterations (tol={plan.tol:g}); raise max_iter or tol",
            ConvergenceWarning,
            stacklevel=4,
        )


def _run_batches(plan: EncodePlan, X, D, Z0, iters, energies):
    """Every batch through every lam stage; ``iters`` and ``energies`` filled in place."""
    n = X.shape[0]
    bs = max(n, 1) if plan.batch_size is None else plan.batch_size
    codes = torch.empty(n, D.shape[0], dtype=X.dtype, device=X.device)
    conv = torch.zeros(n, dtype=torch.bool, device=X.device)
    with torch.no_grad():
        G = D @ D.T if plan.gram or plan.working_set or plan.solver == "cd" else None
        for s in range(0, max(n, 1), bs):
            xb = X[s : s + bs]
            zb = None if Z0 is None else Z0[s : s + bs]
            for lam_s in plan.lams:
                zb, it, cv = _stage(plan, xb, D, G, lam_s, zb, energies, s)
                iters[s : s + bs] += it
            if bs >= n:
                codes = zb  # one batch: no copy
            else:
                codes[s : s + bs] = zb
            conv[s : s + bs] = cv
    return codes, conv


def _stage(plan: EncodePlan, xb, D, G, lam, zb, energies, start):
    """One lam stage on one batch with the plan's solver; returns codes, iterations, flags."""
    if plan.solver == "cd":
        res = _cd.solve_l1_cd(xb, D, G, lam, plan.tol, plan.max_iter, zb, energy=True)
        if energies is not None:
            energies[start : start + len(xb)] = res[3]  # the last stage's (lam's) stays
        return res[:3]
    if plan.working_set:
        return solve_l1_working_set(xb, D, G, lam, plan.step, plan.tol, plan.max_iter, zb)
    return _solve(
        xb,
        D,
        plan.penalty,
        lam,
        plan.step,
        plan.params,
        plan.solver,
        plan.monotone,
        plan.max_iter,
        plan.tol,
        zb,
        G,
    )


@fill_doc
def encode_batches(batches: Iterable, D, penalty: str = "l1", lam: float = 0.1, **kw) -> Iterator:
    """Encode a stream of (batch, n_features) arrays one at a time; yields each batch's codes.

    Memory is bounded by one batch whatever the stream's length: nothing is accumulated.
    The step (power iteration) is computed once for the whole stream, where one is needed.

    Each batch's codes are those ``encode`` gives for it with the same arguments, so
    the concatenated stream equals ``encode`` on the concatenated batches (up to the
    step, shared here). Nothing runs until the first batch is asked for: the dictionary
    is checked then.

    Parameters
    ----------
    batches : iterable of torch.Tensor or numpy.ndarray
        (batch, n_features) arrays, e.g. ``shrinkage.data.patch_stream``.
    D : torch.Tensor or numpy.ndarray
        (n_atoms, n_features) dictionary.
    %(penalty, lam)s
    **kw
        Further options of ``encode`` (``solver``, ``max_iter``, ``tol``, ``step``,
        ``return_info``, ...).

    Yields
    ------
    numpy.ndarray or torch.Tensor
        The (batch, n_atoms) codes of each batch, as ``encode`` returns them (a pair
        ``(codes, info)`` with ``return_info=True``).

    Raises
    ------
    ValueError
        When D is not a valid dictionary (not 2-D, a zero atom, NaN or inf), or as
        ``encode`` for a batch; raised when the first batch is asked for.
    TypeError
        When D or a batch is not a tensor, an array or a (nested) list.

    Examples
    --------
    >>> D = np.eye(3)
    >>> stream = encode_batches([np.ones((2, 3)), 3 * np.ones((1, 3))], D, "l1", lam=1.0)
    >>> [codes.tolist() for codes in stream]
    [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[2.0, 2.0, 2.0]]]
    """
    Dt = _to_tensor(D, "D")
    check_dictionary(Dt)
    if kw.get("step") is None and _needs_step(penalty, Dt, kw):
        kw["step"] = safe_step(Dt)
    for xb in batches:
        yield encode(xb, D, penalty, lam, **kw)
