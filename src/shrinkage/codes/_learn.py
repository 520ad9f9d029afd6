"""Dictionary learning by alternating sparse coding and dictionary updates, data-parallel ready.

For each mini-batch: codes from ``encode`` with D fixed, then one dictionary update

- ``"gradient"``: D <- D + lr_t mean_batch(r^T (x - r D)) (the averaged, not summed, gradient
  of the energy; Olshausen & Field 1997, Rentzeperis et al. 2023), lr_t = lr / (1 + t / decay);
- ``"bcd"``: one block-coordinate sweep on the running statistics A = mean r^T r,
  B = mean r^T x, averaged over a window of recent batches (online dictionary learning,
  Mairal et al. 2009),

then every atom is renormalised to unit norm. Under ``torch.distributed`` each process
encodes its own shard and the batch sums (gradient or A, B, counts) are all-reduced, so the
dictionary is the one a single process gets on the concatenated batches.

The window of the ``"bcd"`` statistics adapts by Kesten's rule (Kesten 1958, "Accelerated
stochastic approximation"): it holds ``W = 1 + c`` batches (c at most 9; ``forget=k`` fixes
it at k instead), where c counts how often the dictionary's displacement over a block of 5
updates pointed against that over the previous block (``<dD_b, dD_{b-1}> < 0``). While the
atoms travel, successive displacements agree and the statistics stay fresh (codes of an
older dictionary would hold the atoms back); once the atoms only jitter, the window grows
and averages the jitter away. When the batches that hold about 80 uses of the mean atom are more
than 10, the window is never shorter than they are (at most 100): with many atoms or very
sparse codes an atom appears in few samples of a batch, and a shorter window leaves its
statistics to noise.

Stopping, checked after each pass over an array (after as many passes as make 10 updates
on a small one), or after each ``partial_fit`` of a stream: the objective is the mean
energy of the samples since the last check (each taken when its batch was encoded), or of
a fixed ``monitor`` batch; learning has converged when for ``max_no_improvement`` checks in
a row it did not fall below its best by more than ``learn_tol`` (relative), or when the
dictionary moved by at most ``dict_tol`` (relative Frobenius norm) since the last check.
``n_epochs`` caps the passes; reaching the cap first raises sklearn's ``ConvergenceWarning``.

Dead atoms (used by fewer than ``min_usage`` of the samples since the last resampling) and
near-duplicates (``|cos| >= 0.95`` to a more used atom) are replaced, every
``resample_every`` batches, by the residuals of the worst reconstructed samples of the
batch (normalised), and their statistics are cleared.

Everything the loop needs to go on lives in ``LearnState`` (position, sample order and
generator included), so a copy taken after any batch (``on_batch``) and given back as
``state`` ends bitwise as the uninterrupted call would.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from .._checks import (
    check_choice,
    check_int_at_least,
    check_nonnegative,
    check_positive,
    check_scalar,
)
from ..thresholds import PENALTIES, get_penalty, threshold
from . import _cd
from ._encode import (
    _GRAM_MAX_ATOMS,
    _check_X,
    _energy,
    _needs_step,
    _penalty_params,
    _to_tensor,
    check_dictionary,
    encode,
    safe_step,
)

UPDATES = ("gradient", "bcd")
_BLOCK = 5  # dictionary updates per displacement compared by Kesten's rule
_MAX_FORGET = 10  # default longest window of the bcd statistics, in batches
# the window holds at least this many uses of the mean atom (measured on whitened 16 x 16
# patches, one pass, l1 at lam 0.5: 1024 atoms then get about 22 batches and a dictionary
# 0.5 % better than SPAMS trainDL's at equal sparsity, not 1.7 % worse; 256 atoms would get
# 7, under Kesten's longest, and keep its window), at most _MAX_MIN_WINDOW batches
_ATOM_USES = 80
_MAX_MIN_WINDOW = 100
_DUPLICATE_COS = 0.95  # |cos| at which the less used of two atoms is resampled
_AUTO_RESAMPLE = 50  # batches between resamplings when an epoch is longer
_MIN_CHECK_STEPS = 10  # fewest dictionary updates between two convergence checks


@dataclass
class LearnState:
    """Everything needed to continue learning: the dictionary, the running statistics and
    the convergence bookkeeping.

    While ``learn_dictionary`` runs, ``stage``, ``epoch``, ``batch``, ``order`` and
    ``rng`` say where it is (the l1 stage of ``init="l1"`` or not, the pass of the stage, the
    next batch, the pass's sample order, the generator's state); a copy saved then
    (``on_batch``) continues batch for batch when given back as ``state``, and ends as the
    uninterrupted call would. A finished call clears them (``rng`` None): the state then
    starts a new pass (``partial_fit``). ``epochs`` counts the passes completed in all.

    Made by ``learn_dictionary`` (which returns it); build one yourself only to start
    from a given dictionary, ``LearnState(D=D0)``, every other field at its default.

    Parameters
    ----------
    D : torch.Tensor
        (n_atoms, n_features) dictionary, unit-norm rows, updated in place.
    step : int, default 0
        Dictionary updates done (one per batch).
    A, B : torch.Tensor, optional
        ``"bcd"`` running statistics: A = mean r^T r (n_atoms, n_atoms), B = mean r^T x
        (n_atoms, n_features), over the current window of batches.
    usage : torch.Tensor, optional
        Activations per atom since the last resampling.
    seen : int, default 0
        Samples since the last resampling.
    since_resample : int, default 0
        Batches since the last resampling.
    history : list of float
        Mean energy of each batch, in order.
    kesten : int, default 0
        Sign-change count of Kesten's rule; the window of the statistics is
        ``max(1 + kesten, min_window)`` batches.
    min_window : int, default 1
        The window's floor at the last update: the batches that hold about 80 uses of the
        mean atom when that is over 10, else 1.
    last_delta, block_start : torch.Tensor, optional
        Displacement of the previous block of updates, and the dictionary at the start of
        the current block (for Kesten's rule).
    block_len : int, default 0
        Updates in the current block.
    n_resampled : int, default 0
        Atoms resampled so far (dead or duplicate).
    window_energy : float, default 0.0
        Energy summed over the samples encoded since the last check.
    window_count : int, default 0
        Samples encoded since the last check.
    epochs : int, default 0
        Completed passes (or stream checks), all stages together.
    best : float, optional
        Lowest objective seen at a check.
    no_improvement : int, default 0
        Checks in a row without improvement.
    check_D : torch.Tensor, optional
        Dictionary at the last check (for ``dict_tol``).
    checks : list of dict
        One dict per check: ``objective``, ``dict_change``, ``steps``, ``resampled``,
        ``window`` (and ``stage="l1"`` for the checks of the l1 stage).
    converged : bool, default False
        Whether the stopping rule held at the last check.
    stage : str, optional
        ``"l1"`` during the l1 stage of ``init="l1"``, else None.
    epoch, batch : int, default 0
        Pass of the current stage in progress, and batches of that pass done.
    order : torch.Tensor, optional
        That pass's sample order.
    rng : torch.Tensor, optional
        The generator's state after the last batch; None once a call has finished.

    Examples
    --------
    A copy saved after any batch resumes the call, bitwise:

    >>> import copy
    >>> X = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> saved = []
    >>> def keep(state):
    ...     saved.append(copy.deepcopy(state))
    >>> kw = dict(batch_size=16, n_epochs=3, learn_tol=0)  # 3 passes of 4 batches
    >>> full = learn_dictionary(X, 4, on_batch=keep, **kw)
    >>> saved[5].epoch, saved[5].batch, full.step, full.epochs
    (1, 2, 12, 3)
    >>> resumed = learn_dictionary(X, 4, state=saved[5], **kw)
    >>> torch.equal(resumed.D, full.D), resumed.history == full.history
    (True, True)
    """

    D: torch.Tensor
    step: int = 0  # dictionary updates done
    A: torch.Tensor | None = None
    B: torch.Tensor | None = None
    usage: torch.Tensor | None = None  # activations per atom since the last resampling
    seen: int = 0  # samples since the last resampling
    since_resample: int = 0  # batches since the last resampling
    history: list = field(default_factory=list)  # mean energy per batch
    kesten: int = 0  # sign-change count that sets the window of the statistics
    min_window: int = 1  # the window's floor at the last update (see _min_window)
    last_delta: torch.Tensor | None = None  # previous block's displacement (for kesten)
    block_start: torch.Tensor | None = None  # dictionary at the start of this block
    block_len: int = 0  # updates in this block
    n_resampled: int = 0  # atoms resampled so far
    window_energy: float = 0.0  # energy summed since the last check
    window_count: int = 0  # samples since the last check
    epochs: int = 0  # completed passes (or stream checks)
    best: float | None = None  # lowest objective seen at a check
    no_improvement: int = 0  # checks in a row without improvement
    check_D: torch.Tensor | None = None  # dictionary at the last check
    checks: list = field(default_factory=list)  # one dict per check
    converged: bool = False
    stage: str | None = None  # "l1" during the l1 stage of init="l1"
    epoch: int = 0  # pass of the current stage in progress
    batch: int = 0  # batches of that pass done
    order: torch.Tensor | None = None  # that pass's sample order
    rng: torch.Tensor | None = None  # the generator's state after the last batch


# learn_dictionary(distributed=False): this process alone, whatever process group exists
_LOCAL = contextvars.ContextVar("shrinkage_learn_local", default=False)


def _dist():
    """(rank, world) of the default process group, or (0, 1) when not distributed (or the
    call was asked to learn alone)."""
    if _LOCAL.get():
        return 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@contextlib.contextmanager
def _scope(distributed):
    """``distributed``: None (the default process group when there is one), True (it must
    exist) or False (this process alone)."""
    if distributed not in (None, True, False):
        raise ValueError(f"distributed must be None, True or False, got {distributed!r}")
    ready = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed is True and not ready:
        raise ValueError("distributed=True needs an initialised torch.distributed process group")
    token = _LOCAL.set(distributed is False)
    try:
        yield
    finally:
        _LOCAL.reset(token)


class _RanksAgree:
    """The ranks of a data-parallel call check their arguments together, before any other
    collective: a rank whose arguments fail its own checks, or whose shapes and options
    differ from rank 0's, would leave the others waiting in a collective until the group's
    timeout (or abort gloo on mismatched sizes). Every rank raises instead, naming the rank
    and what differs. ``signature`` (set inside the block) holds what must agree."""

    def __init__(self):
        self.signature: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        rank, world = _dist()
        if world == 1 or (kind is not None and not issubclass(kind, ValueError | TypeError)):
            return False
        mine = {"error": f"{kind.__name__}: {err}"} if kind is not None else self.signature
        every = [None] * world
        torch.distributed.all_gather_object(every, mine)
        if kind is not None:
            return False  # this rank's own error; the others name it
        bad = next((r for r, s in enumerate(every) if "error" in s), None)
        if bad is not None:
            raise ValueError(
                f"rank {bad} of the process group refused its arguments: {every[bad]['error']}"
            )
        diff = [k for k in mine if any(s.get(k) != every[0].get(k) for s in every)]
        if diff:
            k = diff[0]
            raise ValueError(
                f"every rank must call learn_dictionary alike (shards of the same data): {k} is "
                f"{[s.get(k) for s in every]} on ranks 0..{world - 1}"
                + (f" (and {', '.join(diff[1:4])} differ)" if len(diff) > 1 else "")
                + "; pass distributed=False to learn on each process alone"
            )
        return False


def _allreduce(*tensors):
    _, world = _dist()
    if world > 1:
        for t in tensors:
            torch.distributed.all_reduce(t)
    return tensors


def _min_over_ranks(n: int) -> int:
    _, world = _dist()
    if world == 1:
        return n
    t = torch.tensor([n])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t)


def _broadcast(t):
    _, world = _dist()
    if world > 1:
        torch.distributed.broadcast(t, src=0)
    return t


def init_dictionary(n_atoms, n_features, X=None, init="random", seed=0, dtype=torch.float64):
    """Unit-norm initial atoms: Gaussian (``"random"``) or random rows of X (``"data"``).

    ``"data"`` draws ``n_atoms`` rows of X uniformly with replacement and adds Gaussian
    jitter of 1% of X's standard deviation, so that a row drawn twice gives two distinct
    atoms; it falls back to ``"random"`` when X is None or empty. Every row is then
    normalised; a zero row is drawn again from the Gaussian.

    Parameters
    ----------
    n_atoms : int
        Number of atoms (rows).
    n_features : int
        Dimension of the atoms; with ``"data"`` it must be X's width.
    X : torch.Tensor, optional
        (n_samples, n_features) data for ``"data"``.
    init : {"random", "data"}, default "random"
        Where the atoms come from.
    seed : int, default 0
        Seed of the ``torch.Generator`` used: the same seed gives the same atoms.
    dtype : torch.dtype, default torch.float64
        Dtype of the atoms.

    Returns
    -------
    torch.Tensor
        (n_atoms, n_features) dictionary on the CPU, unit-norm rows.

    Raises
    ------
    ValueError
        When ``init`` is neither ``"random"`` nor ``"data"``.

    Examples
    --------
    >>> D = init_dictionary(6, 4)
    >>> D.shape, torch.allclose(D.norm(dim=1), torch.ones(6, dtype=torch.float64))
    (torch.Size([6, 4]), True)

    From data, each atom points (almost) along a row of X:

    >>> X = torch.randn(10, 4, dtype=torch.float64)
    >>> D = init_dictionary(3, 4, X, init="data")
    >>> cos = (D @ (X / X.norm(dim=1, keepdim=True)).T).abs().max(dim=1).values
    >>> bool((cos > 0.99).all())
    True
    """
    check_choice("init", init, ("random", "data"))
    gen = torch.Generator().manual_seed(int(seed))
    if init == "data" and X is not None and len(X) >= 1:
        rows = torch.randint(0, len(X), (n_atoms,), generator=gen)
        D = X[rows].detach().cpu().to(dtype).clone()
        D += 0.01 * D.std() * torch.randn(D.shape, generator=gen, dtype=dtype)
    else:
        D = torch.randn(n_atoms, n_features, generator=gen, dtype=dtype)
    norms = D.norm(dim=1, keepdim=True)
    bad = norms.flatten() == 0
    if bool(bad.any()):
        D[bad] = torch.randn(int(bad.sum()), n_features, generator=gen, dtype=dtype)
        norms = D.norm(dim=1, keepdim=True)
    return D / norms


def _normalise(D):
    return D / D.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _bcd_sweep(D, A, B):
    """One pass of exact per-atom minimisation of tr(D^T A D)/2 - tr(D^T B), unit-norm atoms:
    ``d_j <- d_j + (B_j - A_j D) / A_jj``, ``d_j <- d_j / ||d_j||`` (Mairal et al. 2009).
    In the compiled kernel on CPU (a Python loop over the atoms costs 30x more)."""
    if _cd.bcd_sweep(D, A, B):
        return D
    for j in range(D.shape[0]):
        ajj = A[j, j]
        if ajj > 1e-10:
            D[j] += (B[j] - A[j] @ D) / ajj
            n = D[j].norm()
            if n > 0:
                D[j] /= n
    return D


def _duplicates(D, usage):
    """Indices of atoms with ``|cos| >= _DUPLICATE_COS`` to an atom used at least as often
    (ties: the higher index goes)."""
    C = (D @ D.T).abs()
    C.fill_diagonal_(0.0)
    close = C >= _DUPLICATE_COS
    if not bool(close.any()):
        return torch.zeros(0, dtype=torch.long, device=D.device)
    u = usage.to(D.dtype)
    idx = torch.arange(len(D), device=D.device)
    # j goes when some i close to it is used more, or as much with a lower index.
    beats = (u[:, None] > u[None, :]) | ((u[:, None] == u[None, :]) & (idx[:, None] < idx[None, :]))
    return torch.nonzero((close & beats).any(0)).flatten()


def _resample(D, X, R, usage, seen, min_usage, gen, duplicates=True, rows=None):
    """Replace dead atoms (used in fewer than ``min_usage`` of ``seen`` samples) and, with
    ``duplicates``, the less used atom of every near-duplicate pair by the residuals of the
    rows of X reconstructed worst (normalised, slightly jittered); at most ``rows`` atoms
    (default ``len(X)``: under torch.distributed the fewest rows of any process, so that
    every process replaces the same atoms). Returns the indices replaced."""
    rows = len(X) if rows is None else min(rows, len(X))
    dead = torch.nonzero(usage < min_usage * max(seen, 1)).flatten()
    if duplicates:
        dead = torch.unique(torch.cat([dead, _duplicates(D, usage)]))
    if len(dead) == 0 or rows == 0:
        return dead[:0]
    err = (R * R).sum(1)
    k = min(len(dead), rows)
    top = torch.topk(err, k).indices
    new = R[top]
    flat = ~(new.norm(dim=1) > 1e-6 * float(X.norm(dim=1).max()))
    new = new + 1e-3 * new.std().clamp_min(1e-12) * torch.randn(
        new.shape, generator=gen, dtype=new.dtype
    ).to(new.device)
    # A residual of (almost) nothing, data reconstructed exactly or all zero, has no
    # direction: a random one instead (its jitter alone normalised to atoms of norm 1e-3).
    if bool(flat.any()):
        rand = torch.randn((int(flat.sum()), new.shape[1]), generator=gen, dtype=new.dtype)
        new[flat] = rand.to(new.device)
    D[dead[:k]] = _normalise(new)
    return dead[:k]


def learn_step(
    state: LearnState,
    xb: torch.Tensor,
    penalty: str,
    lam: float,
    *,
    update: str = "bcd",
    lr: float = 1.0,
    lr_decay: float | None = None,
    resample_every: int = 0,
    min_usage: float = 0.0,
    forget: int | None = None,
    gen: torch.Generator | None = None,
    encode_kw: dict | None = None,
) -> float:
    """One mini-batch: encode ``xb`` on the current D, update D in place; returns mean energy.

    ``forget`` (``"bcd"``): the statistics cover the last ``forget`` batches or so
    (exponential window); None: the adaptive window of the module docstring, at most
    ``_MAX_FORGET`` batches. Every ``resample_every`` batches dead and duplicate atoms are
    resampled (their indices counted in ``state.n_resampled``). Under torch.distributed,
    ``xb`` is this process's share of the global batch.
    """
    encode_kw = dict(encode_kw or {})
    D = state.D
    if encode_kw.get("step") is None and _needs_step(penalty, D, encode_kw):
        encode_kw["step"] = safe_step(D)
    Z, energies = _batch_codes(xb, D, penalty, lam, encode_kw)
    # bcd's statistics from the codes' non-zeros (a few percent of them) on CPU
    stats = _cd.code_stats(Z, xb, D) if update == "bcd" else None
    R = xb - Z @ D if stats is None else stats[0]
    if energies is None:
        pen_kw = {k: v for k, v in encode_kw.items() if k in get_penalty(penalty).params}
        p = _penalty_params(penalty, D.norm(dim=1), pen_kw)
        energies = _energy(xb, R, Z, penalty, float(lam), p)
    energy = energies.sum().to(D.dtype)
    m = torch.tensor(float(len(xb)), dtype=D.dtype, device=D.device)
    used = (Z != 0).to(D.dtype).sum(0)
    if update == "gradient":
        G = Z.T @ R
        _allreduce(G, m, energy, used)
        lr_t = lr if not lr_decay else lr / (1.0 + state.step / lr_decay)
        D += (lr_t / m.clamp_min(1.0)) * G
    else:
        AZ, BZ = (Z.T @ Z, Z.T @ xb) if stats is None else stats[1:]
        _allreduce(AZ, BZ, m, energy, used)
        mb = float(m)
        # Codes from an early dictionary mislead later sweeps: average the statistics over
        # a window of recent batches only (exponential; Mairal et al. 2009, 3.4).
        if forget is None:
            state.min_window = _min_window(used)
        window = forget or max(1 + state.kesten, state.min_window)
        beta = 1.0 - 1.0 / min(state.step + 1, window)
        if state.A is None:
            state.A = torch.zeros_like(AZ)
            state.B = torch.zeros_like(BZ)
        state.A.mul_(beta).add_(AZ / mb)
        state.B.mul_(beta).add_(BZ / mb)
        _bcd_sweep(D, state.A, state.B)
    D.copy_(_normalise(D))
    if update == "bcd" and forget is None:
        _kesten(state, D)
    state.usage = used if state.usage is None else state.usage + used
    state.seen += int(m)
    state.step += 1
    state.since_resample += 1
    if resample_every and state.since_resample >= resample_every:
        g = gen if gen is not None else torch.Generator().manual_seed(state.step)
        rows = _min_over_ranks(len(xb))  # every process replaces as many atoms
        idx = _resample(D, xb, R, state.usage, state.seen, min_usage, g, rows=rows)
        _broadcast(D)  # rank 0's choice of replacements wins
        state.n_resampled += len(idx)  # usage is all-reduced: every rank picks the same atoms
        if len(idx) and state.A is not None:
            # The statistics of a replaced atom belong to the old one.
            state.A[idx] = 0.0
            state.A[:, idx] = 0.0
            state.B[idx] = 0.0
        state.usage = torch.zeros_like(state.usage)
        state.seen = 0
        state.since_resample = 0
    mean_e = float(energy / m.clamp_min(1.0))
    state.window_energy += float(energy)
    state.window_count += int(m)
    state.history.append(mean_e)
    return mean_e


def _batch_codes(xb, D, penalty, lam, encode_kw):
    """(codes, per-row energies or None) of a batch on the learner's dictionary.

    l1 with only max_iter and tol set (what learn_dictionary passes) calls the compiled CD
    directly, as ``encode`` would, without its per-call checks and planning (half a
    millisecond a batch, a tenth of a 256-atom step): X was checked once by the caller, D
    is the learner's own, renormalised each step; the kernel's energies come with the codes.
    Anything else, or a D or codes that are not clean (a zero atom, a non-finite energy),
    goes through ``encode``, which names the problem."""
    if (
        penalty == "l1"
        and set(encode_kw) == {"max_iter", "tol"}
        and _cd.usable(xb)
        and _cd.load() is not None
        and D.dtype == xb.dtype
        and D.device == xb.device
        and D.shape[0] <= _GRAM_MAX_ATOMS
    ):
        G = D @ D.T
        if bool(torch.diagonal(G).min() > 0):
            tol, max_iter = float(encode_kw["tol"]), int(encode_kw["max_iter"])
            Z, _, _, E = _cd.solve_l1_cd(xb, D, G, float(lam), tol, max_iter, energy=True)
            if bool(torch.isfinite(E.sum())) and bool(torch.isfinite(Z.sum())):
                return Z, E
    with warnings.catch_warnings():
        # Each batch's codes stop at max_iter by design (the next batch refines them): not a
        # warning per batch; the learning itself is what reports on its convergence.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return encode(xb, D, penalty, lam, **encode_kw), None


def _min_window(used: torch.Tensor) -> int:
    """The floor of the window: the batches that hold about _ATOM_USES uses of the mean atom
    (``used``: this batch's uses per atom) when that is longer than Kesten's longest window,
    else 1: with many atoms, or very sparse codes, each atom appears in few samples of a
    batch, and a short window leaves its row of A to noise."""
    per_batch = float(used.sum()) / max(len(used), 1)
    w = math.ceil(_ATOM_USES / max(per_batch, 1e-9))
    return min(_MAX_MIN_WINDOW, w) if w > _MAX_FORGET else 1  # else Kesten's window is enough


def _kesten(state, D):
    """Kesten's rule on the displacements of blocks of _BLOCK updates: single updates flip
    direction by noise alone long before the atoms have arrived."""
    if state.block_start is None:
        state.block_start = D.clone()
    state.block_len += 1
    if state.block_len >= _BLOCK:
        delta = D - state.block_start
        if state.last_delta is not None:
            against = float((delta * state.last_delta).sum()) < 0
            state.kesten = min(state.kesten + against, _MAX_FORGET - 1)
        state.last_delta = delta
        state.block_start = D.clone()
        state.block_len = 0


def monitor_objective(state, monitor, penalty, lam, encode_kw) -> float:
    """Mean energy of the ``monitor`` rows on the current dictionary (all processes' rows
    under torch.distributed)."""
    encode_kw = dict(encode_kw or {})
    D = state.D
    if encode_kw.get("step") is None and _needs_step(penalty, D, encode_kw):
        encode_kw["step"] = safe_step(D)
    with warnings.catch_warnings():  # the learning's encoder settings, as in learn_step
        warnings.simplefilter("ignore", ConvergenceWarning)
        Z = encode(monitor, D, penalty, lam, **encode_kw)
    pen_kw = {k: v for k, v in encode_kw.items() if k in get_penalty(penalty).params}
    p = _penalty_params(penalty, D.norm(dim=1), pen_kw)
    e = _energy(monitor, monitor - Z @ D, Z, penalty, float(lam), p).sum().reshape(1)
    m = torch.tensor([float(len(monitor))], dtype=e.dtype, device=e.device)
    _allreduce(e, m)
    return float(e / m.clamp_min(1.0))


def check_convergence(
    state: LearnState,
    objective: float | None = None,
    *,
    learn_tol: float = 1e-3,
    dict_tol: float = 0.0,
    max_no_improvement: int = 3,
) -> bool:
    """One convergence check; sets and returns ``state.converged``.

    ``objective``: the value to test (default: mean energy of the samples encoded since the
    last check). Improvement means ``best - objective > learn_tol * |objective|`` with
    ``best`` the lowest value of the earlier checks; converged after ``max_no_improvement``
    checks in a row without one (``learn_tol > 0``), or when
    ``||D - D_last||_F / ||D_last||_F <= dict_tol`` (``dict_tol > 0``).
    """
    if objective is None:
        objective = state.window_energy / max(state.window_count, 1)
    D = state.D
    change = None
    if state.check_D is not None:
        change = float((D - state.check_D).norm() / state.check_D.norm().clamp_min(1e-12))
    if state.best is None or state.best - objective > learn_tol * abs(objective):
        state.no_improvement = 0
    else:
        state.no_improvement += 1
    state.best = objective if state.best is None else min(state.best, objective)
    state.check_D = D.detach().clone()
    state.converged = bool(
        (learn_tol > 0 and state.no_improvement >= max_no_improvement)
        or (dict_tol > 0 and change is not None and change <= dict_tol)
    )
    state.checks.append(
        {
            "objective": float(objective),
            "dict_change": change,
            "steps": state.step,
            "resampled": state.n_resampled,
            "window": max(1 + state.kesten, state.min_window),
        }
    )
    state.window_energy, state.window_count = 0.0, 0
    return state.converged


def _step_options(update, lr, lr_decay, resample_every, min_usage, forget) -> dict:
    """``learn_step``'s options for every update of a call, checked."""
    check_choice("update", update, UPDATES)
    check_positive("lr", lr)
    check_scalar("lr", lr)
    if lr_decay is not None:
        check_positive("lr_decay", lr_decay)
        check_scalar("lr_decay", lr_decay)
    _check_resampling(resample_every, min_usage)
    if forget is not None:
        forget = check_int_at_least("forget", forget, 1)
    return dict(
        update=update,
        lr=lr,
        lr_decay=lr_decay,
        resample_every=resample_every,
        min_usage=min_usage,
        forget=forget,
    )


def _check_stopping(learn_tol, dict_tol, max_no_improvement):
    check_nonnegative("learn_tol", learn_tol)
    check_nonnegative("dict_tol", dict_tol)
    return check_int_at_least("max_no_improvement", max_no_improvement, 1)


def _check_resampling(resample_every, min_usage):
    if resample_every is not None:
        check_int_at_least("resample_every", resample_every, 0)
    check_nonnegative("min_usage", min_usage)
    if not min_usage < 1:
        raise ValueError(f"min_usage must be in [0, 1), got min_usage={min_usage!r}")


INITS = ("data", "random", "l1")


def _l1_lam(penalty, lam, encode_kw):
    """l1 weight with the same zeroing threshold as ``penalty`` at ``lam`` (unit atoms)."""
    params = {k: v for k, v in encode_kw.items() if k in get_penalty(penalty).params}
    params.pop("a", None)
    name = "l0" if penalty == "cel0" else penalty  # CEL0 with a = 1 zeroes as l0 does
    return float(threshold(name, lam, 1.0, **params))


def _checked_X(X):
    Xt = _to_tensor(X, "X")
    if Xt.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(Xt.shape)}")
    if Xt.shape[0] == 0:
        raise ValueError("X has no rows: dictionary learning needs at least one sample")
    _check_X(Xt, Xt.shape[1])
    return Xt


def _check_state(state, Xt, n_atoms: int) -> None:
    """A given ``state`` must fit this call: its dictionary (atoms, features, dtype, device),
    its statistics' shapes, and the sample order of a pass in progress (X's rows)."""
    if not isinstance(state, LearnState):
        raise TypeError(f"state must be a LearnState, got {type(state).__name__}")
    D = state.D
    if not isinstance(D, torch.Tensor):
        raise TypeError(f"state.D must be a torch.Tensor, got {type(D).__name__}")
    check_dictionary(D, Xt.shape[1])
    k, p = D.shape
    if k != n_atoms:
        raise ValueError(f"state.D holds {k} atoms but n_atoms={n_atoms}; pass n_atoms={k}")
    if D.dtype != Xt.dtype or D.device != Xt.device:
        raise ValueError(
            f"state.D is {D.dtype} on {D.device} but X is {Xt.dtype} on {Xt.device}; convert "
            "X (or every tensor of the state) to one dtype and device"
        )
    for name, want in (("A", (k, k)), ("B", (k, p)), ("usage", (k,))):
        t = getattr(state, name)
        if t is not None and (tuple(t.shape) != want or t.dtype != D.dtype):
            raise ValueError(
                f"state.{name} has shape {tuple(t.shape)} and dtype {t.dtype}; this "
                f"dictionary needs {want} in {D.dtype}"
            )
    if state.order is not None and state.rng is not None and len(state.order) != len(Xt):
        raise ValueError(
            f"state was saved during a pass over {len(state.order)} rows, but X has "
            f"{len(Xt)}: resume on the same X"
        )


def _dry_run(Xt, D, penalty, lam, encode_kw) -> None:
    """Encode one row with the penalty's own options, so that a bad option is refused
    before the l1 stage of init="l1" has run (that stage drops the penalty's options)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        encode(Xt[:1], D, penalty, lam, **encode_kw)


def _checked_monitor(monitor, Xt):
    if monitor is None:
        return None
    monitor = _to_tensor(monitor, "monitor", dtype=Xt.dtype, device=Xt.device)
    if monitor.ndim != 2 or monitor.shape[0] < 1 or monitor.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"monitor must be 2-D (n_rows >= 1, n_features = {Xt.shape[1]}) like X, got "
            f"shape {tuple(monitor.shape)}"
        )
    _check_X(monitor, Xt.shape[1])
    return monitor


def _initial(Xt, n_atoms, init, random_state):
    """The starting dictionary: ``init`` by name (``"l1"`` starts as ``"data"``), or the
    given array normalised."""
    if isinstance(init, str):
        first = "data" if init == "l1" else init
        D = init_dictionary(n_atoms, Xt.shape[1], Xt, first, random_state, Xt.dtype)
    else:
        D = _normalise(_to_tensor(init, "init", dtype=Xt.dtype).clone())
        if D.shape != (n_atoms, Xt.shape[1]):
            raise ValueError(
                f"init must have shape (n_atoms, n_features) = {(n_atoms, Xt.shape[1])}, "
                f"got {tuple(D.shape)}"
            )
    return D.to(Xt.device)


def _batches_per_epoch(n, batch_size) -> int:
    """Full batches per epoch, the fewest over the processes (every one takes as many steps)."""
    nb = torch.tensor(max(n // batch_size, 1) if n >= batch_size else 1)
    if _dist()[1] > 1:
        torch.distributed.all_reduce(nb, op=torch.distributed.ReduceOp.MIN)
    return int(nb)


def checks_per_pass(n_batches: int, check_every: int | None = None) -> int:
    """Passes between two convergence checks: ``check_every``, or as many as make
    ``_MIN_CHECK_STEPS`` updates (on a small data set a single pass is too short for the
    objective to move by more than its noise)."""
    return check_every or max(1, -(-_MIN_CHECK_STEPS // n_batches))


def learn_dictionary(
    X,
    n_atoms: int,
    penalty: str = "l1",
    lam: float = 0.1,
    *,
    n_epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1.0,
    lr_decay: float | None = None,
    update: str = "bcd",
    init="l1",
    learn_tol: float = 1e-3,
    dict_tol: float = 0.0,
    max_no_improvement: int = 3,
    monitor=None,
    resample_every: int | None = None,
    min_usage: float = 1e-3,
    forget: int | None = None,
    shuffle: bool = True,
    random_state: int = 0,
    max_iter: int = 200,
    tol: float = 1e-3,
    progress: bool = False,
    state: LearnState | None = None,
    on_batch=None,
    warn: bool = True,
    init_epochs: int | None = None,
    check_every: int | None = None,
    distributed: bool | None = None,
    **encode_kw,
):
    """Learn a (n_atoms, n_features) unit-norm dictionary for the rows of X, stopping when
    it has converged.

    Passes over X in shuffled mini-batches of ``batch_size`` (per process under
    torch.distributed; each process passes its own shard and every process ends with the
    same dictionary) until the convergence rule of the module docstring holds after a pass,
    at most ``n_epochs`` passes.

    Each batch is encoded on the current dictionary (``encode``), then the dictionary
    is updated (``"bcd"``: a block-coordinate sweep on the running statistics, Mairal et
    al. 2009; ``"gradient"``: an averaged gradient step, Olshausen & Field 1997) and its
    atoms renormalised; the module docstring of ``shrinkage.codes._learn`` gives the
    update rules, the adaptive window (Kesten 1958), the stopping rule and the resampling
    of dead atoms in full.

    Parameters
    ----------
    X : torch.Tensor or numpy.ndarray
        (n_samples, n_features) training rows.
    n_atoms : int
        Dictionary size, >= 1.
    penalty : str, default "l1"
        One of ``shrinkage.thresholds.PENALTIES`` (as in ``encode``).
    lam : float, default 0.1
        Penalty weight, >= 0 (as in ``encode``).
    n_epochs : int, default 100
        Cap on the passes over X (per stage, see ``init``); reaching it before
        convergence warns (``ConvergenceWarning``) unless ``learn_tol`` and ``dict_tol`` are
        both 0 (then exactly ``n_epochs`` passes are run).
    batch_size : int, default 256
        Rows per dictionary update (per process under torch.distributed).
    lr : float, default 1.0
        ``"gradient"``: step of the averaged gradient, > 0.
    lr_decay : float, optional
        ``"gradient"``: the step after t updates is ``lr / (1 + t / lr_decay)`` (> 0);
        None: constant.
    update : {"bcd", "gradient"}, default "bcd"
        ``"bcd"`` (block-coordinate sweeps on windowed statistics) or ``"gradient"``
        (averaged gradient step ``lr``, decayed by ``lr_decay``).
    init : {"l1", "data", "random"} or array_like, default "l1"
        ``"l1"`` (default): for a penalty other than l1, first learn with l1 codes at the
        same zeroing threshold (a convex coding problem: fast, and far less prone to poor
        local minima, where one atom covers two true ones) from random rows of X, until
        converged, then go on with the penalty; for l1 the same as ``"data"``.
        ``"data"``: random rows of X; ``"random"``: Gaussian; or an (n_atoms, n_features)
        array (normalised).
    learn_tol : float, default 1e-3
        Converged when ``max_no_improvement`` passes in a row did not lower the best
        objective by more than ``learn_tol`` (relative), >= 0; 0: not used. The objective
        is the pass's mean energy, or that of ``monitor`` when given.
    dict_tol : float, default 0.0
        Converged when a pass moved the dictionary by at most this much (relative
        Frobenius norm), >= 0; 0: not used.
    max_no_improvement : int, default 3
        Checks in a row without improvement that end learning, >= 1.
    monitor : torch.Tensor or numpy.ndarray, optional
        (m, n_features) rows whose energy is the objective (noise-free).
    resample_every : int, optional
        Batches between resamplings of dead and duplicate atoms; None: once per pass or
        every 50 batches, whichever comes first; 0: never.
    min_usage : float, default 1e-3
        An atom used by fewer than this fraction of the samples since the last
        resampling is dead; in [0, 1).
    forget : int, optional
        ``"bcd"`` window in batches (>= 1); None: adaptive (module docstring: Kesten's
        rule, with a floor when an atom appears in few samples of a batch).
    shuffle : bool, default True
        Draw each pass's batches in a new random order (else in the order of X).
    random_state : int, default 0
        Seed (>= 0) of the initial atoms, the batch order and the resampling (an int, so
        that every process of a distributed run draws the same; ``SparseCoding`` also
        takes None or a ``RandomState``).
    max_iter : int, default 200
        Encoder iterations per batch while learning (``encode``).
    tol : float, default 1e-3
        Encoder tolerance while learning (``encode``).
    progress : bool, default False
        Show a tqdm progress bar (rank 0 only).
    state : LearnState, optional
        A ``LearnState`` to continue from (its convergence bookkeeping too); one
        saved within a call (by ``on_batch``) resumes that call where it was.
    on_batch : callable, optional
        Called with the state after every batch (a checkpoint hook: a copy of that
        state, given back as ``state`` with the same arguments, ends bitwise as this call).
    warn : bool, default True
        Warn when the cap is reached first.
    init_epochs : int, optional
        Cap on the passes of the l1 stage of ``init="l1"`` (default ``n_epochs``).
    check_every : int, optional
        Passes between two convergence checks; None: 1, or as many as make 10 updates
        when a pass makes fewer.
    distributed : bool, optional
        None: data-parallel over the default ``torch.distributed`` process group when one
        is initialised (every rank must call with its shard and the same options: checked
        first, every rank raises on a difference); False: this process alone, whatever
        group exists; True: the group must exist.
    **encode_kw
        Further encoder settings while learning (options of ``encode``: ``solver``,
        ``relaxation``, penalty parameters, ...).

    Returns
    -------
    LearnState
        ``.D``, ``.step`` (updates), ``.epochs`` (passes), ``.converged``,
        ``.n_resampled``, ``.history`` (energy per batch), ``.checks`` (one dict per check).

    Raises
    ------
    ValueError
        For a bad option (named), before any work: unknown penalty, update or init, an
        integer option below its minimum, ``lr`` or ``lr_decay`` not > 0, a negative
        ``lam``, ``learn_tol`` or ``dict_tol``, ``min_usage`` outside [0, 1), X or
        ``monitor`` not 2-D or holding NaN or inf, ``monitor`` or an ``init`` array of the
        wrong shape, a ``state`` whose dictionary does not fit X.
    TypeError
        When X (or ``monitor``, or an ``init`` array) is not a tensor, an array or a
        (nested) list.

    Warns
    -----
    ConvergenceWarning
        When ``n_epochs`` passes ended learning before the stopping rule.

    Examples
    --------
    >>> X = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> st = learn_dictionary(X, 4, "l1", 0.1, batch_size=16)
    >>> st.D.shape, st.converged
    (torch.Size([4, 8]), True)
    >>> torch.allclose(st.D.norm(dim=1), torch.ones(4, dtype=torch.float64))
    True

    With both tolerances at 0 exactly ``n_epochs`` passes run (here of 4 batches each),
    without a warning:

    >>> st = learn_dictionary(X, 4, "l1", 0.1, batch_size=16, n_epochs=2, learn_tol=0)
    >>> st.epochs, st.step, st.converged
    (2, 8, False)
    """
    args = dict(locals())  # every argument as given, to check and run in one scope
    args.update(args.pop("encode_kw"))
    with _scope(args.pop("distributed")):
        with _RanksAgree() as agree:
            a = _checked_args(**args)
            agree.signature = _signature(a)
        return _learn_checked(a)


def _checked_args(X, n_atoms, penalty, lam, *, n_epochs, batch_size, lr, lr_decay, update,
                  init, learn_tol, dict_tol, max_no_improvement, monitor, resample_every,
                  min_usage, forget, shuffle, random_state, max_iter, tol, progress, state,
                  on_batch, warn, init_epochs, check_every, **encode_kw) -> dict:  # fmt: skip
    """``learn_dictionary``'s arguments checked (ValueError / TypeError naming the first bad
    one), as a dict: ``Xt`` and ``monitor`` as tensors, ``step`` the options of
    ``learn_step``."""
    check_choice("penalty", penalty, PENALTIES)
    # What each dictionary update does (learn_step), then how the passes run (_run).
    step = _step_options(update, lr, lr_decay, resample_every, min_usage, forget)
    n_atoms = check_int_at_least("n_atoms", n_atoms, 1)
    n_epochs = check_int_at_least("n_epochs", n_epochs, 1)
    batch_size = check_int_at_least("batch_size", batch_size, 1)
    # an int seed: every DDP rank must draw the same atoms and batch order
    random_state = check_int_at_least("random_state", random_state, 0)
    check_nonnegative("lam", lam)
    check_scalar("lam", lam)
    max_iter = check_int_at_least("max_iter", max_iter, 1)
    check_nonnegative("tol", tol)
    check_scalar("tol", tol)
    max_no_improvement = _check_stopping(learn_tol, dict_tol, max_no_improvement)
    if init_epochs is not None:
        init_epochs = check_int_at_least("init_epochs", init_epochs, 1)
    if check_every is not None:
        check_every = check_int_at_least("check_every", check_every, 1)
    if isinstance(init, str):
        check_choice("init", init, INITS)
    Xt = _checked_X(X)
    monitor = _checked_monitor(monitor, Xt)
    encode_kw.setdefault("max_iter", max_iter)
    encode_kw.setdefault("tol", tol)
    return dict(locals(), X=None)


def _signature(a: dict) -> dict:
    """What every rank of a data-parallel call must share: shapes, dtype and options."""
    init = a["init"] if isinstance(a["init"], str) else "array"
    state = a["state"]
    return {
        "n_features": a["Xt"].shape[1],
        "dtype": str(a["Xt"].dtype),
        "monitor given": a["monitor"] is not None,
        "state step": None if state is None else int(getattr(state, "step", -1)),
        "init": init,
        "encoder options": repr(sorted(a["encode_kw"].items())),
        "step options": repr(sorted(a["step"].items())),
        **{
            k: a[k]
            for k in (
                "n_atoms",
                "penalty",
                "lam",
                "n_epochs",
                "batch_size",
                "learn_tol",
                "dict_tol",
                "max_no_improvement",
                "shuffle",
                "random_state",
                "init_epochs",
                "check_every",
            )
        },  # fmt: skip
    }


def _learn_checked(a: dict) -> LearnState:
    """``learn_dictionary`` on checked arguments (``_checked_args``)."""
    Xt, state, penalty, lam, encode_kw = a["Xt"], a["state"], a["penalty"], a["lam"], a["encode_kw"]
    rank, _ = _dist()
    run = dict(
        progress=a["progress"] and rank == 0,
        step=a["step"],
        **{
            k: a[k]
            for k in (
                "n_epochs",
                "batch_size",
                "learn_tol",
                "dict_tol",
                "max_no_improvement",
                "monitor",
                "shuffle",
                "check_every",
                "on_batch",
            )
        },  # fmt: skip
    )
    if state is None:
        staged = isinstance(a["init"], str) and a["init"] == "l1" and penalty != "l1"
        D = _initial(Xt, a["n_atoms"], a["init"], a["random_state"])
        state = LearnState(D=_broadcast(D), stage="l1" if staged else None)
    _check_state(state, Xt, a["n_atoms"])
    # A state saved within the l1 stage of init="l1" goes on with that stage.
    if state.stage == "l1":
        _dry_run(Xt, state.D, penalty, lam, encode_kw)
        first = dict(run, n_epochs=a["init_epochs"] or a["n_epochs"])
        _l1_stage(Xt, state, penalty, lam, a["random_state"], encode_kw, first)
    _run(Xt, state, penalty, lam, a["random_state"], encode_kw, **run)
    if a["warn"]:
        warn_if_capped(state, a["n_epochs"], a["learn_tol"], a["dict_tol"],
                       a["max_no_improvement"], stacklevel=3)  # fmt: skip
    return state


def warn_if_capped(state, n_epochs, learn_tol, dict_tol, max_no_improvement, stacklevel=2):
    """sklearn's ``ConvergenceWarning`` when the cap, not the stopping rule, ended learning
    (nothing when both tolerances are 0: a fixed number of passes was asked for)."""
    if (learn_tol > 0 or dict_tol > 0) and not state.converged:
        warnings.warn(
            f"dictionary learning stopped at the cap n_epochs={n_epochs} before converging "
            f"(learn_tol={learn_tol:g}, dict_tol={dict_tol:g}, max_no_improvement="
            f"{max_no_improvement}); raise n_epochs or loosen the tolerance",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )


def _l1_stage(Xt, state, penalty, lam, random_state, encode_kw, run):
    """The first stage of ``init="l1"``: learn with l1 codes at the zeroing threshold of
    ``penalty`` at ``lam`` (``run``: ``_run``'s options), then start the penalty's stage."""
    kw1 = {
        k: v
        for k, v in encode_kw.items()
        if k != "relaxation" and k not in get_penalty(penalty).params
    }
    if kw1.get("solver") == "cd":
        kw1.pop("solver")
    _run(Xt, state, "l1", _l1_lam(penalty, lam, encode_kw), random_state + 1, kw1, **run)
    for c in state.checks:
        c["stage"] = "l1"
    _new_stage(state)


def _new_stage(state):
    """Keep D and the counts; forget what belonged to the codes of the previous penalty."""
    state.A = state.B = state.last_delta = state.check_D = state.best = None
    state.block_start, state.block_len = None, 0
    state.kesten = state.no_improvement = 0
    state.window_energy, state.window_count = 0.0, 0
    state.converged = False
    state.stage = None


def _run(
    Xt,
    state,
    penalty,
    lam,
    seed,
    encode_kw,
    *,
    n_epochs,
    batch_size,
    learn_tol,
    dict_tol,
    max_no_improvement,
    monitor,
    shuffle,
    progress,
    check_every,
    on_batch,
    step,
):
    """Passes over Xt until converged or ``n_epochs`` passes; updates ``state`` in place
    (from the position it holds when it was saved within a call). ``step``: the options of
    ``learn_step`` (``resample_every`` None: once per pass, at most every 50 batches)."""
    rank, _ = _dist()
    n = Xt.shape[0]
    n_batches = _batches_per_epoch(n, batch_size)
    if step["resample_every"] is None:
        step = dict(step, resample_every=min(n_batches, _AUTO_RESAMPLE))
    gen = torch.Generator().manual_seed(int(seed) + 7919 * rank)
    resuming = state.rng is not None  # a state saved within a call: go on from there
    if resuming:
        gen.set_state(state.rng)
    else:
        state.converged = False
    bar = None
    if progress:
        done = state.epoch * n_batches + state.batch if resuming else 0
        bar = tqdm(total=n_epochs * n_batches, initial=done, desc=f"learn {penalty}", unit="batch")
    per_check = checks_per_pass(n_batches, check_every)
    step_kw = dict(step, gen=gen, encode_kw=encode_kw)
    with torch.no_grad():
        for epoch in range(state.epoch if resuming else 0, n_epochs):
            if resuming and state.order is not None:  # the pass that was in progress
                order, start = state.order, state.batch
            else:
                order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
                start = 0
            resuming = False
            for b in range(start, n_batches):
                rows = order[b * batch_size : (b + 1) * batch_size].to(Xt.device)
                e = learn_step(state, Xt.index_select(0, rows), penalty, lam, **step_kw)
                state.epoch, state.batch, state.order = epoch, b + 1, order
                state.rng = gen.get_state()
                if on_batch is not None:
                    on_batch(state)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(energy=f"{e:.4g}", resampled=state.n_resampled)
            state.epochs += 1
            if (epoch + 1) % per_check:
                continue
            obj = None
            if monitor is not None:
                obj = monitor_objective(state, monitor, penalty, lam, encode_kw)
            check_convergence(
                state,
                obj,
                learn_tol=learn_tol,
                dict_tol=dict_tol,
                max_no_improvement=max_no_improvement,
            )
            if state.converged:
                break
    if bar is not None:
        bar.close()
    state.epoch, state.batch, state.order, state.rng = 0, 0, None, None  # finished
    return state


__all__ = [
    "learn_dictionary",
    "learn_step",
    "check_convergence",
    "monitor_objective",
    "init_dictionary",
    "LearnState",
    "UPDATES",
    "INITS",
]
