"""Reusable experiments behind ``shrinkage codes learn|compare`` (small sizes run in seconds).

- ``load_patches`` -- whitened natural-image patches, train and held-out split;
- ``learn`` -- one dictionary, its held-out metrics, Gabor fits and grating tuning
  (recipe ``LearnRecipe``); ``n_epochs`` passes, or with ``learn_tol > 0`` until
  converged (``n_epochs`` the cap; ``shrinkage.codes.learn_dictionary``);
- ``compare`` -- for each penalty and dictionary size a sweep of lam, one dictionary per
  point; relative error vs active fraction on held-out patches and, at matched error levels,
  the active fraction each penalty needs, and each analysed dictionary's atom types (recipe
  ``CompareRecipe``).

The overcompleteness sweep on streamed patches is ``shrinkage.experiments.codes_sweep``.
The recipes' defaults are the command line's (``shrinkage codes learn|compare``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .._checks import check_choice, check_distinct, check_int_at_least, check_nonnegative
from .._io import atomic_path, check_writable_dir, save_figure, write_json
from ..codes import (
    LearnState,
    active_fraction,
    atom_usage,
    encode,
    learn_dictionary,
    relative_error,
    snr_db,
    v1,
)
from ..data import natural_images, patches
from ..thresholds import PENALTIES, lam_for_threshold
from .checkpoint import Checkpoint, CheckpointError, interrupt_guard
from .loop import num_threads
from .recipe import Recipe
from .recipe import option as _h

__all__ = [
    "LearnRecipe",
    "CompareRecipe",
    "load_patches",
    "lam_from_threshold",
    "evaluate",
    "learn",
    "refuse_other_output",
    "compare",
    "write_outputs",
    "plot_tradeoff",
]

# Penalties whose codes are computed from those of an exact relaxation (same global
# minimisers): plain hard thresholding from zero stops in poor local minima of the l0 energy.
RELAXATIONS = {"l0": "cel0"}


def load_patches(n_train, n_test=2000, size=16, seed=0, images=None):
    """(train, test) float64 patches from the bundled natural images (Olshausen whitening)."""
    n_train = check_int_at_least("n_train", n_train, 1)
    n_test = check_int_at_least("n_test", n_test, 1)
    imgs = natural_images(images)
    X = patches(imgs, size=size, n=n_train + n_test, whiten="olshausen", seed=seed)
    return X[:n_train], X[n_train:]


def lam_from_threshold(penalty, thr):
    """lam whose exact-solution zeroing threshold (unit-norm atoms, step 1) is ``thr``.

    l1: thr; l0 and CEL0 (same global minimisers as l0): thr^2 / 2; l1/2: from Xu's threshold.
    Puts every penalty's sweep on a common axis.
    """
    if penalty == "cel0":
        return lam_for_threshold("l0", thr, 1.0)
    return lam_for_threshold(penalty, thr, 1.0)


def evaluate(X, D, penalty, lam, **encode_kw):
    """Held-out metrics of a dictionary: relative error, SNR, active fraction, dead atoms."""
    Z, info = encode(X, D, penalty, lam, return_info=True, **encode_kw)
    usage = atom_usage(Z)
    return {
        "relative_error": relative_error(X, D, Z),
        "snr_db": snr_db(X, D, Z),
        "active_fraction": active_fraction(Z),
        "nonzeros_per_patch": active_fraction(Z) * D.shape[0],
        "dead_atoms": int((usage == 0).sum()),
        "objective": info["objective"],
        "encode_converged_fraction": info["converged_fraction"],
    }


_NO_RELAX = "l0 codes by hard thresholding from zero, not from their CEL0 relaxation"


def _check_common(r) -> None:
    check_choice("update", r.update, ("bcd", "gradient"))
    for name in ("n_patches", "n_test", "size", "n_epochs", "batch_size"):
        check_int_at_least(name, getattr(r, name), 1)
    check_int_at_least("continuation", r.continuation, 0)
    check_int_at_least("monitor", r.monitor, 0)
    _check_monitor(r.monitor, r.n_patches)
    _check_stopping(r)


def _check_monitor(monitor: int, n_patches: int) -> None:
    """More monitor patches than training patches would silently monitor fewer: refused."""
    if monitor > n_patches:
        raise ValueError(
            f"monitor (--monitor) must be at most the {n_patches:,} training patches "
            f"(--patches), got monitor={monitor!r}"
        )


def _check_stopping(r) -> None:
    """A recipe's stopping rule (``learn_tol``, ``max_no_improvement``) and ``threads``."""
    check_nonnegative("learn_tol", r.learn_tol)
    check_int_at_least("max_no_improvement", r.max_no_improvement, 1)
    if r.threads is not None:
        check_int_at_least("threads", r.threads, 1)


@dataclass(frozen=True)
class _PatchRecipe(Recipe):
    """The fields that every natural-image recipe shares, defined once: the held-out patches,
    the stopping rule of the learning, the update, the held-out codes and the analyses."""

    n_test: int = field(default=2000, metadata=_h("held-out patches", flag="--test"))
    size: int = field(default=16, metadata=_h("patch side in pixels"))
    n_epochs: int = field(
        default=1,
        metadata=_h("passes over the patches (the cap with --learn-tol)", flag="--epochs"),
    )
    learn_tol: float = field(
        default=0.0,
        metadata=_h(
            "stop before --epochs once --max-no-improvement passes in a row lowered the "
            "objective by at most this (relative); 0: exactly --epochs passes"
        ),
    )
    max_no_improvement: int = field(default=3, metadata=_h("see --learn-tol"))
    monitor: int = field(
        default=0,
        metadata=_h(
            "judge convergence on the energy of this many fixed training patches (0: each "
            "pass's mean energy)"
        ),
    )
    batch_size: int = 256
    update: str = field(default="bcd", metadata=_h("bcd | gradient"))
    seed: int = 0
    continuation: int = field(default=0, metadata=_h("lam-continuation stages for held-out codes"))
    relax: bool = field(default=True, metadata=_h(_NO_RELAX, flag="--no-relax"))
    analyse: bool = field(
        default=True, metadata=_h("skip Gabor fits and tuning", flag="--no-analysis")
    )
    threads: int | None = field(default=None, metadata=_h("torch threads"))


@dataclass(frozen=True)
class LearnRecipe(_PatchRecipe):
    """One dictionary on whitened natural-image patches (``learn``)."""

    penalty: str = field(default="cel0", metadata=_h("l1, l0, l1/2, cel0, ..."))
    lam: float = field(default=0.27, metadata=_h("penalty weight"))
    n_atoms: int = field(default=512, metadata=_h("dictionary size", flag="--atoms"))
    n_patches: int = field(default=100_000, metadata=_h("training patches", flag="--patches"))
    lr: float = field(default=1.0, metadata=_h("gradient-update step"))
    max_iter: int = field(default=200, metadata=_h("encoder iterations while learning"))
    tol: float = field(default=1e-3, metadata=_h("encoder tolerance while learning"))

    def check(self) -> LearnRecipe:
        check_choice("penalty", self.penalty, PENALTIES)
        check_int_at_least("n_atoms", self.n_atoms, 1)
        _check_common(self)
        return self


@dataclass(frozen=True)
class CompareRecipe(_PatchRecipe):
    """A lam sweep per penalty and dictionary size (``compare``)."""

    penalties: tuple[str, ...] = field(default=("l1", "l0", "l1/2", "cel0"))
    atoms: tuple[int, ...] = field(default=(256,), metadata=_h("dictionary sizes"))
    thresholds: tuple[float, ...] = field(
        default=(0.2, 0.35, 0.5, 0.7, 1.0),
        metadata=_h("common zeroing thresholds; each penalty's lam follows from them"),
    )
    n_patches: int = field(default=20000, metadata=_h("training patches", flag="--patches"))

    def check(self) -> CompareRecipe:
        for name in ("penalties", "atoms", "thresholds"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: give at least one")
        for p in self.penalties:
            check_choice("penalty", p, PENALTIES)
        for k in self.atoms:
            check_int_at_least("atoms", k, 1)
        _check_run_lists(self)
        _check_common(self)
        return self


def _check_run_lists(r) -> None:
    """A sweep's thresholds (finite, >= 0) and its lists of runs, each run named once (two
    thresholds printed alike would share a run folder, named by f"{t:g}")."""
    for t in r.thresholds:
        check_nonnegative("thresholds", t)
        if not math.isfinite(float(t)):
            raise ValueError(f"thresholds must be finite, got thresholds={t!r}")
    check_distinct("penalties", r.penalties)
    check_distinct("atoms", r.atoms)
    check_distinct("thresholds", r.thresholds, key=lambda t: f"{t:g}")


def _recipe(cls, recipe, changes):
    """``recipe`` (None: ``cls()``) with ``changes`` to its fields, checked."""
    if recipe is None:
        recipe = cls()
    if not isinstance(recipe, cls):
        raise ValueError(
            f"recipe must be a {cls.__name__} (pass its fields as keywords), got {recipe!r}"
        )
    return recipe.replace(**changes).check()


def learn(
    recipe: LearnRecipe | None = None,
    *,
    data=None,
    progress: bool = False,
    dtype=torch.float32,
    out=None,
    resume: bool | None = None,
    on_done=None,
    **changes,
) -> dict:
    """Learn one dictionary on whitened patches; returns ``{"D", "metrics", "fits", "tuning",
    "summary"}`` (``fits``/``tuning`` only with ``analyse``).

    ``recipe`` (default ``LearnRecipe``) with ``changes`` to its fields given as keywords
    (``learn(penalty="l1", lam=0.1, n_atoms=64)``). ``data``: optional (train, test) patches.
    ``relax``: every l0 encoding (learning, held-out codes, tuning) starts from the codes of
    its exact relaxation CEL0 (``RELAXATIONS``) instead of from zero. ``threads``
    applies inside the call only. ``learn_tol > 0``: stop before ``n_epochs`` once converged
    (``learn_dictionary``), judged on the first ``monitor`` training
    patches when ``monitor > 0``; 0 (the default): exactly ``n_epochs`` passes. The metrics
    say how many passes ran (``epochs_run``), whether the stopping rule ended them
    (``converged``) and how many atoms were resampled (``resampled_atoms``).

    With ``out``, ``out/checkpoint.pt`` keeps the learning as it goes (every
    ``EVERY_SECONDS``, and when learning ends; removed
    when the call returns); ``resume`` says whether to continue the run found there (see
    ``Checkpoint``): the resumed dictionary is
    bitwise the uninterrupted one. The first Ctrl-C stops after the current batch.
    ``on_done(result)``, when given, is called before the checkpoint is removed: a caller
    that writes the results there (the command) loses nothing when it is interrupted (the
    checkpoint stays, ``resume`` picks it up). An ``out`` whose ``config.json`` is another
    run's (another recipe, or another command's), or that holds another command's output
    (``refuse_other_output``), is refused before any work (ValueError): the command would
    write its results over it.
    """
    r = _recipe(LearnRecipe, recipe, changes)
    ckpt = None
    if out is not None:
        check_writable_dir(out)
        # the command writes config.json and the results there: another run's stay
        refuse_other_output(out)
        r.refuse_other_run(out)
        key = {**r.to_dict(), "dtype": str(dtype), "own_data": data is not None}
        ckpt = Checkpoint(out, {k: v for k, v in key.items() if k not in _NOT_LEARNING}, resume)
    with num_threads(r.threads):
        res = _learn(r, data, progress, dtype, ckpt)
    if on_done is not None:
        on_done(res)
    if ckpt is not None:  # only once every result is written
        ckpt.remove()
    return res


def refuse_other_output(out) -> None:
    """ValueError when the folder ``out`` holds the output of a command that keeps no
    ``config.json`` at its top: a ``codes compare`` (its ``compare.json`` or
    ``compare.csv``) or a ``weights sweep`` (run folders ``<run>/config.json`` or
    ``<run>/result.json``, or a ``sweep.csv`` beside no ``config.json``). ``codes learn``
    and ``codes sweep`` would replace its figures or its table."""
    out = Path(out)
    held = next((f"its {n}" for n in ("compare.json", "compare.csv") if (out / n).is_file()), "")
    if held:
        held = f"a comparison of `codes compare`: {held}"
    else:
        runs = sorted(p.relative_to(out) for p in out.glob("*/*.json") if p.name in _RUN_FILES)
        if runs:
            held = f"the runs of a `weights sweep`: {runs[0]}"
        elif (out / "sweep.csv").is_file() and not (out / "config.json").is_file():
            held = "the sweep.csv of a `weights sweep`"
    if held:
        raise ValueError(
            f"{out} holds the output of another command ({held}); choose another --out "
            "(output folder) or remove it"
        )


_RUN_FILES = ("config.json", "result.json")


# Recipe fields that do not change the learned dictionary (not in the checkpoint's key).
_NOT_LEARNING = ("analyse", "threads", "continuation")


def _learn_state(saved, n: int, n_features: int, r: LearnRecipe, path) -> LearnState:
    """The LearnState of a checkpoint, checked against this run (CheckpointError if not).

    The run is one ``learn_dictionary`` call from scratch (``init="data"``, adaptive
    window, resampling every ``_RESAMPLE_EVERY`` batches), so its position fixes the
    counts: passes done, updates, samples since the last resampling and since the last
    convergence check, the Kesten block, and which tensors exist yet."""
    try:
        st = _saved_state(saved)
        _check_scalars(st, r, n, n_features)
        _check_tensors(st, r, n_features)
        _check_position(st, r, n)
        torch.Generator().set_state(st.rng)
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this run: {type(e).__name__}: {e}"
        ) from None
    return st


def _saved_state(saved) -> LearnState:
    """The LearnState of a saved dict that has exactly its fields."""
    if not isinstance(saved, dict) or set(saved) != _STATE_FIELDS:
        have = set(saved) if isinstance(saved, dict) else set()
        raise ValueError(
            f"the state's entries differ (missing {sorted(_STATE_FIELDS - have)}, "
            f"unknown {sorted(have - _STATE_FIELDS)})"
        )
    return LearnState(**saved)


def _check_scalars(st: LearnState, r: LearnRecipe, n: int, n_features: int) -> None:
    """The dictionary, the counts, the flags, the generator and the sample order."""
    D = st.D
    if not isinstance(D, torch.Tensor) or D.shape != (r.n_atoms, n_features):
        raise ValueError(f"D must be ({r.n_atoms}, {n_features})")
    if not bool(torch.isfinite(D).all()):
        raise ValueError("D is not finite")
    for name in _INT_FIELDS:
        v = getattr(st, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if not isinstance(st.converged, bool) or st.stage is not None:
        raise ValueError("converged must be a bool and stage None (no l1 stage here)")
    if not isinstance(st.window_energy, float) or not math.isfinite(st.window_energy):
        raise ValueError("window_energy must be a finite float")
    if not isinstance(st.rng, torch.Tensor) or st.rng.dtype != torch.uint8 or st.epoch > r.n_epochs:
        raise ValueError("no position to resume from")
    if st.order is not None and (
        st.order.dtype != torch.int64
        or st.order.shape != (n,)
        or not torch.equal(st.order.sort().values, torch.arange(n))
    ):
        raise ValueError(f"order must be a permutation of the {n} training rows")


def _check_tensors(st: LearnState, r: LearnRecipe, n_features: int) -> None:
    """The running statistics that exist at this position (finite, shaped like D), and
    the energy history."""
    D = st.D
    bcd = r.update == "bcd"
    k = r.n_atoms
    for name, shape, there in (
        ("A", (k, k), bcd and st.step > 0),
        ("B", (k, n_features), bcd and st.step > 0),
        ("usage", (k,), st.step > 0),
        ("block_start", (k, n_features), bcd and st.step > 0),
        ("last_delta", (k, n_features), bcd and st.step >= _BLOCK),
        ("check_D", (k, n_features), bool(st.checks)),
    ):
        t = getattr(st, name)
        if not there:
            if t is not None:
                raise ValueError(f"{name} must be None at this position")
            continue
        if not isinstance(t, torch.Tensor) or t.shape != shape or t.dtype != D.dtype:
            raise ValueError(f"{name} must be a {D.dtype} tensor of shape {shape}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} is not finite")
    hist = st.history
    if not isinstance(hist, list) or len(hist) != st.step:
        raise ValueError("history must hold one energy per dictionary update")
    if not all(isinstance(e, float) and math.isfinite(e) for e in hist):
        raise ValueError("history must hold finite energies")


def _check_position(st: LearnState, r: LearnRecipe, n: int) -> None:
    """The counts that the position (pass, batch) fixes: updates, checks, samples since
    the last check and resampling, resampled atoms, the Kesten block."""
    n_batches = max(n // r.batch_size, 1)
    rows = min(r.batch_size, n)
    if st.order is None:  # learning finished (the state kept while evaluating)
        if st.batch or st.epoch != r.n_epochs or st.epochs > r.n_epochs:
            raise ValueError("a finished state has no batch position")
        if not (st.converged or st.epochs == r.n_epochs):
            raise ValueError("learning ended before the cap without converging")
        passes_done = st.epochs
        if st.step != st.epochs * n_batches:
            raise ValueError(f"step must be {st.epochs} x {n_batches} batches")
    else:
        if not 1 <= st.batch <= n_batches or st.epochs != st.epoch or st.converged:
            raise ValueError(f"batch {st.batch} of pass {st.epoch} is not a position")
        passes_done = st.epoch
        if st.step != st.epoch * n_batches + st.batch:
            raise ValueError(f"step must be {st.epoch} x {n_batches} + {st.batch}")
    _check_checks(st, passes_done, n_batches)
    last = st.checks[-1]["steps"] if st.checks else 0
    if st.window_count != (st.step - last) * rows:
        raise ValueError("window_count must count the samples since the last check")
    if st.since_resample != st.step % _RESAMPLE_EVERY or st.seen != st.since_resample * rows:
        raise ValueError("since_resample and seen must count since the last resampling")
    if st.n_resampled > (st.step // _RESAMPLE_EVERY) * r.n_atoms:
        raise ValueError("n_resampled exceeds the atoms that could have been resampled")
    bcd = r.update == "bcd"
    blocks = st.step // _BLOCK if bcd else 0
    kesten_max = min(max(blocks - 1, 0), _MAX_WINDOW - 1)
    if st.block_len != (st.step % _BLOCK if bcd else 0) or st.kesten > kesten_max:
        raise ValueError("block_len and kesten must follow the updates made")


def _check_checks(st: LearnState, passes_done: int, n_batches: int) -> None:
    """The convergence checks so far: one record per check, at the end of a pass."""
    if not isinstance(st.checks, list) or len(st.checks) > passes_done:
        raise ValueError("checks must be a list of at most one record per pass done")
    steps = 0
    for i, c in enumerate(st.checks):
        if not isinstance(c, dict) or set(c) != _CHECK_KEYS:
            raise ValueError(f"checks[{i}] must have the entries {sorted(_CHECK_KEYS)}")
        obj, change = c["objective"], c["dict_change"]
        if not isinstance(obj, float) or not math.isfinite(obj):
            raise ValueError(f"checks[{i}]: objective must be a finite float")
        if (change is None) != (i == 0) or not (
            change is None or (isinstance(change, float) and 0 <= change < math.inf)
        ):
            raise ValueError(f"checks[{i}]: dict_change must be a float >= 0 (None first)")
        for name in ("steps", "resampled", "window"):
            if isinstance(c[name], bool) or not isinstance(c[name], int) or c[name] < 0:
                raise ValueError(f"checks[{i}]: {name} must be an integer >= 0")
        if c["steps"] <= steps or c["steps"] % n_batches or c["steps"] > st.step:
            raise ValueError(f"checks[{i}]: steps must grow by whole passes")
        steps = c["steps"]
    has = bool(st.checks)
    if (st.best is not None) != has or st.no_improvement > len(st.checks):
        raise ValueError("best and no_improvement must follow the checks made")
    if has and (not isinstance(st.best, float) or not math.isfinite(st.best)):
        raise ValueError("best must be a finite float")


_STATE_FIELDS = {f.name for f in dataclasses.fields(LearnState)}
_INT_FIELDS = (
    "step",
    "seen",
    "since_resample",
    "epoch",
    "batch",
    "epochs",
    "kesten",
    "block_len",
    "n_resampled",
    "window_count",
    "no_improvement",
)
_CHECK_KEYS = {"objective", "dict_change", "steps", "resampled", "window"}
_RESAMPLE_EVERY = 50  # batches between resamplings of dead and duplicate atoms
# The adaptive window of shrinkage.codes.learn_dictionary: blocks of 5 updates, at most 10
# batches.
_BLOCK, _MAX_WINDOW = 5, 10

_FINISHED = torch.Generator().get_state()  # a position after the last batch


# recipe fields that learn_dictionary takes under the same names (max_iter and tol: the
# encoder's budget while learning)
_LEARNING = ("n_epochs", "learn_tol", "max_no_improvement", "batch_size", "lr", "update")
_LEARNING += ("max_iter", "tol")


def _learn_dictionary(r: LearnRecipe, Xtr_t, warm, progress, state, on_batch):
    options = {k: getattr(r, k) for k in _LEARNING}
    options.update(
        monitor=Xtr_t[: r.monitor] if r.monitor else None,
        init="data",
        resample_every=_RESAMPLE_EVERY,
        random_state=r.seed,
    )
    return learn_dictionary(
        Xtr_t,
        r.n_atoms,
        r.penalty,
        r.lam,
        progress=progress,
        state=state,
        on_batch=on_batch,
        **options,
        **warm,
    )


def _learn(r: LearnRecipe, data, progress, dtype, ckpt=None) -> dict:
    penalty, lam = r.penalty, r.lam
    Xtr, Xte = data if data is not None else load_patches(r.n_patches, r.n_test, r.size, r.seed)
    Xtr_t = torch.as_tensor(np.asarray(Xtr), dtype=dtype)
    _check_monitor(r.monitor, len(Xtr_t))  # own data may hold fewer rows than n_patches
    warm = {"relaxation": RELAXATIONS[penalty]} if r.relax and penalty in RELAXATIONS else {}
    saved = ckpt.load() if ckpt is not None else None
    state = None if saved is None else _learn_state(saved, *Xtr_t.shape, r, ckpt.path)
    with interrupt_guard(enabled=ckpt is not None) as guard:

        def on_batch(st):
            if ckpt is not None and (ckpt.due() or guard.requested):
                ckpt.save(dataclasses.asdict(st))
            if guard.requested:
                raise KeyboardInterrupt(
                    f"checkpoint {str(ckpt.path)!r} keeps {st.step} dictionary updates; rerun "
                    "with --resume (resume=True) to continue"
                )

        st = _learn_dictionary(r, Xtr_t, warm, progress, state, on_batch)
    if ckpt is not None:  # the learning is kept while the evaluation runs
        ckpt.save(dataclasses.asdict(st) | {"epoch": r.n_epochs, "rng": _FINISHED})
    D = st.D.double().numpy()
    metrics = evaluate(
        np.asarray(Xte, dtype=np.float64),
        D,
        penalty,
        lam,
        max_iter=1000,
        tol=1e-4,
        continuation=r.continuation,
        **warm,
    )
    metrics.update(
        penalty=penalty,
        lam=lam,
        n_atoms=r.n_atoms,
        n_patches=len(Xtr),
        n_epochs=r.n_epochs,
        continuation=r.continuation,
        relaxed=bool(warm),
        batches=st.step,
        epochs_run=st.epochs,
        converged=st.converged,
        resampled_atoms=st.n_resampled,
        train_energy_last=st.history[-1],
    )
    out = {"D": D, "metrics": metrics, "history": st.history}
    if r.analyse:
        fits = v1.fit_gabors(D, progress=progress)
        norm = float(np.linalg.norm(Xte, axis=1).mean())
        tuning = v1.orientation_tuning(D, penalty, lam, norm=norm, max_iter=300, tol=1e-3, **warm)
        out.update(fits=fits, tuning=tuning, summary=v1.summary(fits, tuning))
    return out


def _interp_af(curve, target):
    """Active fraction at relative error ``target`` by log-linear interpolation along a
    (relative_error, active_fraction) curve; None when the curve does not bracket it."""
    pts = sorted(
        (r["relative_error"], r["active_fraction"]) for r in curve if r["active_fraction"] > 0
    )
    for (e0, a0), (e1, a1) in zip(pts, pts[1:]):
        if min(e0, e1) <= target <= max(e0, e1) and e1 != e0:
            w = (target - e0) / (e1 - e0)
            return float(math.exp((1 - w) * math.log(a0) + w * math.log(a1)))
    return None


def compare(
    recipe: CompareRecipe | None = None,
    *,
    error_levels=None,
    progress: bool = False,
    out=None,
    **changes,
) -> dict:
    """For each penalty and dictionary size, one dictionary per lam of a sweep (lam from a
    common zeroing ``threshold``, see ``lam_from_threshold``); returns rows of held-out
    metrics and, for each error level, each penalty's interpolated active fraction and its
    ratio to l1. Writes CSV, JSON and PNGs under ``out`` when given.

    ``recipe`` (default ``CompareRecipe``) with ``changes`` to its fields as keywords.

    Examples
    --------
    >>> res = compare(penalties=("l1", "cel0"), atoms=(16,), thresholds=(0.3, 0.8),
    ...               n_patches=300, n_test=100, size=8, analyse=False)  # doctest: +SKIP
    """
    r = _recipe(CompareRecipe, recipe, changes)
    config = {k: v for k, v in r.to_dict().items() if k not in ("analyse", "threads")}
    if out is not None:
        check_writable_dir(out)  # before the sweep, not after it
        _refuse_other_compare(Path(out), config)
    with num_threads(r.threads):
        Xtr, Xte = load_patches(r.n_patches, r.n_test, r.size, r.seed)
        rows, dicts = _sweep(r, Xtr, Xte, progress)
        if error_levels is None:
            error_levels = _error_levels(rows)
        matched = _matched(rows, r.penalties, r.atoms, error_levels)
        analyses = _analyse(r, rows, dicts, Xte, error_levels, progress) if r.analyse else {}
    result = {
        "rows": rows,
        "matched": matched,
        "error_levels": list(error_levels),
        "config": config,
    }
    if out is not None:
        write_outputs(result, dicts, analyses, Path(out))
    result["dictionaries"] = dicts
    return result


def _refuse_other_compare(out: Path, config: dict) -> None:
    """ValueError when ``out`` holds another command's run (a config.json) or a comparison
    of another recipe (its compare.json): writing there replaced its tables and figures and
    left its dictionaries among the new ones. The same recipe may run again."""
    if (out / "config.json").is_file():
        raise ValueError(
            f"{out} holds a run of another command (its config.json); choose another output "
            "folder or remove that run"
        )
    if not (out / "compare.json").is_file() and not (out / "compare.csv").is_file():
        refuse_other_output(out)  # a weights sweep's runs and sweep.csv (no config.json)
    path = out / "compare.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text()).get("config")
    except (ValueError, AttributeError):
        raise ValueError(f"{path} is not a comparison's JSON; remove the folder") from None
    mine = json.loads(json.dumps(config))  # tuples as the saved lists
    diff = [k for k in mine if not isinstance(saved, dict) or saved.get(k) != mine[k]]
    if diff:
        shown = ", ".join(f"{k} {mine[k]!r} here, {(saved or {}).get(k)!r} there" for k in diff[:4])
        raise ValueError(
            f"{out} holds a comparison of another recipe ({shown}); choose another output "
            "folder or remove it"
        )


# The fields of a CompareRecipe that each of its points passes on to its LearnRecipe (the
# others: the point itself, the data and the analyses).
_PASSED_ON = (
    "n_epochs",
    "learn_tol",
    "max_no_improvement",
    "monitor",
    "batch_size",
    "update",
    "seed",
    "continuation",
    "relax",
)


def _sweep(r: CompareRecipe, Xtr, Xte, progress):
    """One dictionary per (size, penalty, threshold): held-out rows and the dictionaries."""
    rows, dicts = [], {}
    total = len(r.penalties) * len(r.atoms) * len(r.thresholds)
    bar = tqdm(total=total, desc="compare", unit="dictionary") if progress else None
    for k in r.atoms:
        for pen in r.penalties:
            for thr in r.thresholds:
                res = learn(
                    penalty=pen,
                    lam=float(lam_from_threshold(pen, thr)),
                    n_atoms=k,
                    analyse=False,
                    data=(Xtr, Xte),
                    **{name: getattr(r, name) for name in _PASSED_ON},
                )
                rows.append(dict(res["metrics"], threshold=thr))
                dicts[(pen, k, thr)] = res["D"]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        pen=pen,
                        err=f"{rows[-1]['relative_error']:.3f}",
                        af=f"{rows[-1]['active_fraction']:.4f}",
                    )
    if bar is not None:
        bar.close()
    return rows, dicts


def _curve(rows, penalty, n_atoms) -> list[dict]:
    """The rows of one penalty and dictionary size (its lam sweep)."""
    return [row for row in rows if row["penalty"] == penalty and row["n_atoms"] == n_atoms]


def _error_levels(rows) -> list[float]:
    """Three relative errors from the first to the third quartile of the rows'."""
    errs = [row["relative_error"] for row in rows]
    lo, hi = np.percentile(errs, 25), np.percentile(errs, 75)
    return sorted({round(float(v), 3) for v in np.linspace(lo, hi, 3)})


def _matched(rows, penalties, sizes, error_levels) -> list[dict]:
    """Each penalty's active fraction at each error level and size, and l1's over it."""
    matched = []
    for k in sizes:
        for e in error_levels:
            entry = {"n_atoms": k, "relative_error": e}
            for pen in penalties:
                entry[pen] = _interp_af(_curve(rows, pen, k), e)
            base = entry.get("l1")
            for pen in penalties:
                if pen != "l1" and base and entry.get(pen):
                    entry[f"l1_over_{pen}"] = base / entry[pen]
            matched.append(entry)
    return matched


def _analyse(r: CompareRecipe, rows, dicts, Xte, error_levels, progress) -> dict:
    """V1 analyses on one dictionary per (penalty, size): the one nearest the middle error
    (its row gains the ``v1_*`` summary and the ``type_*`` fractions of
    ``classify_atoms``)."""
    analyses = {}
    mid = error_levels[len(error_levels) // 2]
    norm = float(np.linalg.norm(Xte, axis=1).mean())
    for k in r.atoms:
        for pen in r.penalties:
            row = min(_curve(rows, pen, k), key=lambda c: abs(c["relative_error"] - mid))
            D = dicts[(pen, k, row["threshold"])]
            fits = v1.fit_gabors(D, progress=progress)
            warm = {"relaxation": RELAXATIONS[pen]} if r.relax and pen in RELAXATIONS else {}
            tuning = v1.orientation_tuning(
                D, pen, row["lam"], norm=norm, max_iter=300, tol=1e-3, **warm
            )
            summ = v1.summary(fits, tuning)
            types = v1.classify_atoms(D, fits=fits)["fractions"]
            row.update({f"v1_{a}": b for a, b in summ.items()})
            row.update({f"type_{a}": b for a, b in types.items()})
            analyses[(pen, k, row["threshold"])] = (fits, tuning)
    return analyses


def write_outputs(result, dicts, analyses, out: Path):
    """CSV and JSON of the sweep, the error-vs-sparsity PNG, the best dictionaries' atom
    grids, Ringach scatter and orientation histogram. Every file is written atomically
    (complete under its name, or not there), ``compare.json`` last."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    _write_csv(out / "compare.csv", rows)
    for (pen, k, thr), D in dicts.items():
        with atomic_path(out / f"D_{pen.replace('/', '')}_{k}_{thr}.npy") as tmp:
            np.save(tmp, D)
    plot_tradeoff(rows, out / "tradeoff.png")
    if analyses:
        chosen = {}
        for (pen, k, thr), (fits, tuning) in analyses.items():
            chosen[f"{pen} ({k})"] = fits
            tag = f"{pen.replace('/', '')}_{k}"
            v1.plot_atoms(
                dicts[(pen, k, thr)],
                out / f"atoms_{tag}.png",
                title=f"{pen}, {k} atoms, threshold {thr}",
            )
            v1.plot_tuning(tuning, out / f"tuning_{tag}.png")
        v1.plot_nxny(chosen, out / "nxny.png")
        v1.plot_orientation_hist(chosen, out / "orientations.png")
        v1.plot_gabor_params(chosen, out / "gabor_params.png")
    # last: the marker of a finished comparison (an interrupted one has none)
    write_json(out / "compare.json", {k: v for k, v in result.items() if k != "dictionaries"})


def _write_csv(path, rows) -> None:
    """The rows as CSV, one column per key any row has (sorted)."""
    keys = sorted({k for r in rows for k in r})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _plot_tradeoff(ax, rows, penalty, n_atoms, label) -> None:
    """One lam sweep's held-out relative error against its active fraction (%), on a log
    axis: the points with all-zero codes are left out (they cannot be drawn there)."""
    pts = sorted(
        (r["active_fraction"], r["relative_error"])
        for r in _curve(rows, penalty, n_atoms)
        if r["active_fraction"] > 0
    )
    ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=label)


def _tradeoff_axes(ax) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("active fraction (%)")
    ax.grid(alpha=0.3)


def plot_tradeoff(rows, path):
    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    for pen, k in sorted({(r["penalty"], r["n_atoms"]) for r in rows}):
        _plot_tradeoff(ax, rows, pen, k, label=f"{pen}, {k}")
    _tradeoff_axes(ax)
    ax.set_ylabel("held-out relative error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path
