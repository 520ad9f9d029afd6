"""Dictionary learning by alternating sparse coding and dictionary updates, data-parallel ready.

For each mini-batch: codes from :func:`encode` with D fixed, then one dictionary update

- ``"gradient"``: D <- D + lr_t mean_batch(r^T (x - r D)) (the averaged, not summed, gradient
  of the energy; Olshausen & Field 1997, Rentzeperis et al. 2023), lr_t = lr / (1 + t / decay);
- ``"bcd"``: one block-coordinate sweep on the running statistics A = sum r^T r,
  B = sum r^T x (online dictionary learning, Mairal et al. 2009),

then every atom is renormalised to unit norm. Under ``torch.distributed`` each process
encodes its own shard and the batch sums (gradient or A, B, counts) are all-reduced, so the
dictionary is the one a single process gets on the concatenated batches.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from .._checks import check_choice, check_int_at_least, check_nonnegative, check_positive
from ..thresholds import get_penalty
from . import _cd
from ._encode import (
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


@dataclass
class LearnState:
    """Everything needed to continue learning: the dictionary and the running statistics.

    While :func:`learn_dictionary` runs, ``epoch``, ``batch``, ``order`` and ``rng`` say
    where it is (the next batch, the epoch's sample order, the generator's state); a copy
    saved then (``on_batch``) continues batch for batch when given back as ``state``, and
    ends as the uninterrupted call would. A finished call clears them (``rng`` None): the
    state then starts a new pass (``partial_fit``)."""

    D: torch.Tensor
    step: int = 0  # dictionary updates done
    A: torch.Tensor | None = None
    B: torch.Tensor | None = None
    usage: torch.Tensor | None = None  # activations per atom since the last resampling
    seen: int = 0  # samples since the last resampling
    history: list = field(default_factory=list)  # mean energy per batch
    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None
    rng: torch.Tensor | None = None


def _dist():
    """(rank, world) of the default process group, or (0, 1) when not distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _allreduce(*tensors):
    _, world = _dist()
    if world > 1:
        for t in tensors:
            torch.distributed.all_reduce(t)
    return tensors


def _broadcast(t):
    _, world = _dist()
    if world > 1:
        torch.distributed.broadcast(t, src=0)
    return t


def init_dictionary(n_atoms, n_features, X=None, init="random", seed=0, dtype=torch.float64):
    """Unit-norm initial atoms: Gaussian (``"random"``) or random rows of X (``"data"``)."""
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


def _resample(D, X, R, usage, seen, min_usage, gen):
    """Replace atoms used in fewer than ``min_usage`` of the samples by the rows of X with
    the largest residuals (normalised). Returns the number replaced."""
    dead = torch.nonzero(usage < min_usage * max(seen, 1)).flatten()
    if len(dead) == 0 or len(X) == 0:
        return 0
    err = (R * R).sum(1)
    k = min(len(dead), len(X))
    top = torch.topk(err, k).indices
    new = R[top]
    new = new + 1e-3 * new.std().clamp_min(1e-12) * torch.randn(
        new.shape, generator=gen, dtype=new.dtype
    ).to(new.device)
    D[dead[:k]] = _normalise(new)
    return k


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
    forget: int = 10,
    gen: torch.Generator | None = None,
    encode_kw: dict | None = None,
) -> float:
    """One mini-batch: encode ``xb`` on the current D, update D in place; returns mean energy.

    Under torch.distributed, ``xb`` is this process's share of the global batch.
    """
    encode_kw = dict(encode_kw or {})
    D = state.D
    if encode_kw.get("step") is None and _needs_step(penalty, D, encode_kw):
        encode_kw["step"] = safe_step(D)
    with warnings.catch_warnings():
        # Each batch's codes stop at max_iter by design (the next batch refines them): not a
        # warning per batch; the learning itself is what reports on its convergence.
        warnings.simplefilter("ignore", ConvergenceWarning)
        Z = encode(xb, D, penalty, lam, **encode_kw)
    R = xb - Z @ D
    pen_kw = {k: v for k, v in encode_kw.items() if k in get_penalty(penalty).params}
    p = _penalty_params(penalty, D.norm(dim=1), pen_kw)
    energy = _energy(xb, R, Z, penalty, float(lam), p).sum()
    m = torch.tensor(float(len(xb)), dtype=D.dtype, device=D.device)
    used = (Z != 0).to(D.dtype).sum(0)
    if update == "gradient":
        G = Z.T @ R
        _allreduce(G, m, energy, used)
        lr_t = lr if not lr_decay else lr / (1.0 + state.step / lr_decay)
        D += (lr_t / m.clamp_min(1.0)) * G
    else:
        AZ = Z.T @ Z
        BZ = Z.T @ xb
        _allreduce(AZ, BZ, m, energy, used)
        mb = float(m)
        # Codes from an early dictionary mislead later sweeps: average the statistics over
        # the last ``forget`` batches or so (exponential window; Mairal et al. 2009, 3.4).
        beta = 1.0 - 1.0 / min(state.step + 1, forget)
        if state.A is None:
            state.A = torch.zeros_like(AZ)
            state.B = torch.zeros_like(BZ)
        state.A.mul_(beta).add_(AZ / mb)
        state.B.mul_(beta).add_(BZ / mb)
        _bcd_sweep(D, state.A, state.B)
    D.copy_(_normalise(D))
    state.usage = used if state.usage is None else state.usage + used
    state.seen += int(m)
    state.step += 1
    if resample_every and state.step % resample_every == 0:
        g = gen if gen is not None else torch.Generator().manual_seed(state.step)
        _resample(D, xb, R, state.usage, state.seen, min_usage, g)
        _broadcast(D)  # rank 0's choice of replacements wins
        state.usage = torch.zeros_like(state.usage)
        state.seen = 0
    mean_e = float(energy / m.clamp_min(1.0))
    state.history.append(mean_e)
    return mean_e


def _checked_X(X):
    Xt = _to_tensor(X, "X")
    if Xt.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(Xt.shape)}")
    _check_X(Xt, Xt.shape[1])
    return Xt


def _initial(Xt, n_atoms, init, random_state):
    """The starting dictionary: ``init`` by name, or the given array normalised."""
    if isinstance(init, str):
        D = init_dictionary(n_atoms, Xt.shape[1], Xt, init, random_state, Xt.dtype)
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


def learn_dictionary(
    X,
    n_atoms: int,
    penalty: str = "l1",
    lam: float = 0.1,
    *,
    n_epochs: int = 1,
    batch_size: int = 256,
    lr: float = 1.0,
    lr_decay: float | None = None,
    update: str = "bcd",
    init="random",
    resample_every: int = 0,
    min_usage: float = 1e-3,
    shuffle: bool = True,
    random_state: int = 0,
    max_iter: int = 200,
    tol: float = 1e-3,
    progress: bool = False,
    state: LearnState | None = None,
    on_batch=None,
    **encode_kw,
):
    """Learn a (n_atoms, n_features) unit-norm dictionary for the rows of X.

    ``n_epochs`` passes in mini-batches of ``batch_size`` (per process under
    torch.distributed; each process passes its own shard and every process ends with the
    same dictionary). ``init``: ``"random"``, ``"data"`` or an (n_atoms, n_features) array.
    ``resample_every``: every that many batches, atoms active in fewer than ``min_usage`` of
    the samples are re-initialised from the batch's highest-residual samples.
    ``on_batch(state)``, if given, is called after every batch (a checkpoint hook: a copy
    of that state, given back as ``state``, resumes the call where it was).
    Returns a :class:`LearnState` (``.D``, ``.step``, ``.history``).

    >>> X = torch.randn(64, 8, dtype=torch.float64)
    >>> learn_dictionary(X, 4, "l1", 0.1, batch_size=32).D.shape
    torch.Size([4, 8])
    """
    check_choice("update", update, UPDATES)
    n_atoms = check_int_at_least("n_atoms", n_atoms, 1)
    n_epochs = check_int_at_least("n_epochs", n_epochs, 1)
    batch_size = check_int_at_least("batch_size", batch_size, 1)
    check_positive("lr", lr)
    check_nonnegative("lam", lam)
    Xt = _checked_X(X)
    rank, _ = _dist()
    if state is None:
        state = LearnState(D=_broadcast(_initial(Xt, n_atoms, init, random_state)))
    check_dictionary(state.D, Xt.shape[1])
    n = Xt.shape[0]
    n_batches = _batches_per_epoch(n, batch_size)
    gen = torch.Generator().manual_seed(int(random_state) + 7919 * rank)
    resuming = state.rng is not None  # a state saved within a call: go on from there
    if resuming:
        gen.set_state(state.rng)
    bar = None
    if progress and rank == 0:
        done = state.epoch * n_batches + state.batch if resuming else 0
        bar = tqdm(total=n_epochs * n_batches, initial=done, desc=f"learn {penalty}", unit="batch")
    step_kw = dict(
        update=update,
        lr=lr,
        lr_decay=lr_decay,
        resample_every=resample_every,
        min_usage=min_usage,
        gen=gen,
        encode_kw={"max_iter": max_iter, "tol": tol, **encode_kw},
    )
    with torch.no_grad():
        for epoch in range(state.epoch if resuming else 0, n_epochs):
            if resuming and state.order is not None:  # the epoch that was in progress
                order, start = state.order, state.batch
            else:
                order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
                start = 0
            resuming = False
            for b in range(start, n_batches):
                rows = order[b * batch_size : (b + 1) * batch_size].to(Xt.device)
                e = learn_step(state, Xt[rows], penalty, lam, **step_kw)
                state.epoch, state.batch, state.order = epoch, b + 1, order
                state.rng = gen.get_state()
                if on_batch is not None:
                    on_batch(state)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(energy=f"{e:.4g}")
    if bar is not None:
        bar.close()
    state.epoch, state.batch, state.order, state.rng = 0, 0, None, None  # finished
    return state


__all__ = ["learn_dictionary", "learn_step", "init_dictionary", "LearnState", "UPDATES"]
