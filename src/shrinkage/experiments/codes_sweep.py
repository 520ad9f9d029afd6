"""The overcompleteness sweep behind ``shrinkage codes sweep`` (Rentzeperis et al. 2023 at
its own scale): one dictionary per penalty, size and lam, learned on whitened patches
streamed from images (memory of one chunk), each run saved on its own so that an
interrupted sweep resumes where it stopped.

For every run ``(penalty, n_atoms, threshold)`` (lam from the common zeroing threshold, as
in ``shrinkage.experiments.codes.compare``): the dictionary is learned by
``partial_fit``-style passes over chunks of ``shrinkage.data.patch_stream`` until
``n_patches`` were seen or, with ``learn_tol > 0``, until the energy of a fixed monitor
batch stops improving; then held-out relative error, active fraction and non-zeros per
patch, and, on a random subset of ``analyse_max`` atoms, Gabor fits (Ringach's n_x, n_y,
spatial frequency, orientation) and atom types (``shrinkage.codes.v1.classify_atoms``).
Written to ``out/runs/<key>/`` (``D.npy``, ``result.json``, ``gabor.npz``) atomically; a
finished run is never redone.

Across runs (``summarise``): the trade-off per size, the error against the number of
atoms at fixed sparsity, (a) the number of atoms l1 needs to match another penalty's
held-out error at equal sparsity and its ratio to that penalty's size, (b) the error ratio
l1 / penalty at fixed sparsity and size, the non-zeros ratio at equal error, Gabor
parameter distributions and atom-type fractions against sparsity per penalty.

The recipe (``SweepRecipe``) holds the command line's defaults.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .._checks import check_choice, check_int_at_least
from .._io import atomic_path, check_writable_dir, read_json, save_figure, write_json
from ..codes import LearnState, init_dictionary, learn_dictionary, v1
from ..data import natural_images, patch_stream
from ..thresholds import PENALTIES
from .codes import (
    RELAXATIONS,
    _check_run_lists,
    _check_stopping,
    _curve,
    _error_levels,
    _matched,
    _plot_tradeoff,
    _recipe,
    _tradeoff_axes,
    _write_csv,
    evaluate,
    lam_from_threshold,
    refuse_other_output,
)
from .loop import num_threads
from .recipe import Recipe
from .recipe import option as _h

_SWEEP_TOL = (
    "stop a run once --max-no-improvement chunks in a row lowered the monitor's energy by at "
    "most this (relative); 0: all --patches"
)


@dataclass(frozen=True)
class SweepRecipe(Recipe):
    """An overcompleteness sweep on streamed patches (``sweep``)."""

    penalties: tuple[str, ...] = field(default=("l1", "l0", "l1/2", "cel0"))
    atoms: tuple[int, ...] = field(default=(64, 128, 256, 512, 1024), metadata=_h("sizes"))
    thresholds: tuple[float, ...] = field(
        default=(0.35, 0.5, 0.7, 1.0),
        metadata=_h("common zeroing thresholds; each penalty's lam follows from them"),
    )
    n_patches: int = field(
        default=200_000, metadata=_h("training patches per run", flag="--patches")
    )
    chunk: int = field(default=10_000, metadata=_h("patches per streamed chunk"))
    images: str | None = field(
        default=None, metadata=_h("folder or file of images (None: the bundled photos)")
    )
    n_test: int = field(default=2000, metadata=_h("held-out patches", flag="--test"))
    n_monitor: int = field(
        default=2000, metadata=_h("monitor patches (with --learn-tol)", flag="--monitor")
    )
    size: int = field(default=16, metadata=_h("patch side in pixels"))
    batch_size: int = 256
    seed: int = 0
    relax: bool = field(
        default=True,
        metadata=_h(
            "l0 codes by hard thresholding from zero, not from their CEL0 relaxation",
            flag="--no-relax",
        ),
    )
    learn_tol: float = field(default=0.0, metadata=_h(_SWEEP_TOL))
    max_no_improvement: int = field(default=3, metadata=_h("see --learn-tol"))
    analyse_max: int = field(default=64, metadata=_h("atoms per run given Gabor fits and types"))
    threads: int | None = field(default=None, metadata=_h("torch threads"))

    def check(self) -> SweepRecipe:
        if not self.penalties:
            raise ValueError("penalties is empty: name at least one penalty")
        for p in self.penalties:
            check_choice("penalty", p, PENALTIES)
        if not self.atoms:
            raise ValueError("atoms is empty: give at least one dictionary size")
        for k in self.atoms:
            check_int_at_least("atoms", k, 1)
        if not self.thresholds:
            raise ValueError("thresholds is empty: give at least one threshold")
        _check_run_lists(self)
        for name in ("n_patches", "chunk", "n_test", "batch_size"):
            check_int_at_least(name, getattr(self, name), 1)
        check_int_at_least("n_monitor", self.n_monitor, 0)
        check_int_at_least("size", self.size, 2)
        check_int_at_least("analyse_max", self.analyse_max, 0)
        _check_stopping(self)
        if self.images is not None and not Path(self.images).exists():
            raise FileNotFoundError(f"images={str(self.images)!r} does not exist")
        return self


# Fields that say which runs the sweep holds, not how each is made: a folder may grow by
# sizes, penalties or thresholds, but its runs all share the rest of the recipe.
_RUN_SET = ("penalties", "atoms", "thresholds", "threads")


def _key(pen, k, thr):
    return f"{pen.replace('/', '')}_{k}_{thr:g}"


def _source(images):
    return natural_images() if images is None else images


def held_out(images, size: int, n_test: int, n_monitor: int, seed: int):
    """A sweep's (test, monitor) patches: one draw of ``n_test + n_monitor`` patches apart
    from the training stream (float64 test patches, the monitor's as drawn). Benchmarks
    that re-read a sweep's dictionaries call it with the sweep's ``config.json``."""
    (held,) = patch_stream(
        _source(images), size=size, batch_size=n_test + n_monitor, n_batches=1, seed=seed
    )
    return held[:n_test].astype(np.float64), held[n_test:]


def run_one(out: Path, r: SweepRecipe, penalty: str, n_atoms: int, threshold: float, data):
    """One dictionary of the sweep; returns its result (read back when already done)."""
    folder = out / "runs" / _key(penalty, n_atoms, threshold)
    done = folder / "result.json"
    if done.exists():
        return _read_result(done)
    lam = float(lam_from_threshold(penalty, threshold))
    warm = {"relaxation": RELAXATIONS[penalty]} if r.relax and penalty in RELAXATIONS else {}
    Xte, M = data
    t0 = time.perf_counter()
    state, seen = _learn_streamed(r, penalty, n_atoms, lam, warm, M)
    seconds = time.perf_counter() - t0
    D = state.D.double().numpy()
    metrics = evaluate(Xte, D, penalty, lam, max_iter=1000, tol=1e-4, **warm)
    res = dict(
        metrics,
        penalty=penalty,
        n_atoms=n_atoms,
        threshold=threshold,
        lam=lam,
        patches_seen=seen,
        chunks=state.epochs,
        batches=state.step,
        converged=state.converged,
        resampled_atoms=state.n_resampled,
        learn_seconds=seconds,
        relaxed=bool(warm),
    )
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "D.npy") as tmp:
        np.save(tmp, D)
    if r.analyse_max:
        res.update(_analyse_subset(r, D, folder))
    write_json(done, res)
    return res


def _learn_streamed(r: SweepRecipe, penalty, n_atoms, lam, warm, M):
    """One dictionary learned by a pass over each streamed chunk (until ``n_patches`` were
    seen or, with ``learn_tol``, it converged on the monitor rows ``M``); returns its
    LearnState and the patches seen."""
    Mt = torch.as_tensor(M, dtype=torch.float32)
    n_chunks = max(1, math.ceil(r.n_patches / r.chunk))
    stream = patch_stream(
        _source(r.images), size=r.size, batch_size=r.chunk, n_batches=n_chunks, seed=r.seed + 1
    )
    state = None
    seen = 0
    for xb in stream:
        X = torch.as_tensor(xb, dtype=torch.float32)
        if state is None:
            state = LearnState(D=init_dictionary(n_atoms, X.shape[1], X, "data", r.seed, X.dtype))
        learn_dictionary(
            X,
            n_atoms,
            penalty,
            lam,
            n_epochs=1,
            batch_size=r.batch_size,
            init="data",
            learn_tol=r.learn_tol,
            max_no_improvement=r.max_no_improvement,
            monitor=Mt if r.n_monitor and r.learn_tol > 0 else None,
            state=state,
            warn=False,
            check_every=1,
            random_state=r.seed + seen,
            **warm,
        )
        seen += len(xb)
        if state.converged:
            break
    return state, seen


def _analyse_subset(r: SweepRecipe, D, folder) -> dict:
    """Gabor fits and atom types of at most ``analyse_max`` random atoms of D (written to
    ``folder/gabor.npz``); returns the result's entries about them."""
    n_atoms = len(D)
    rng = np.random.default_rng(r.seed)
    idx = np.sort(rng.permutation(n_atoms)[: min(r.analyse_max, n_atoms)])
    fits = v1.fit_gabors(D[idx])
    types = v1.classify_atoms(D[idx], fits=fits)
    with atomic_path(folder / "gabor.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, atoms=idx, types=types["type"], **fits)
    return dict(
        {f"type_{t}": v for t, v in types["fractions"].items()},
        gabor_fraction=float((fits["r2"] >= 0.8).mean()),
        analysed_atoms=len(idx),
    )


def sweep(
    out,
    recipe: SweepRecipe | None = None,
    *,
    progress: bool = False,
    plots: bool = True,
    **changes,
) -> dict:
    """Run (or resume) the sweep into ``out``; returns ``summarise``'s result.

    ``recipe`` (default ``SweepRecipe``) with ``changes`` to its fields as keywords.
    ``images``: a folder or file of images (van Hateren, PNG, ...) or None for the bundled
    photos; ``n_patches`` training patches per dictionary streamed in chunks of ``chunk``
    (the held-out and monitor patches come from a separate draw); ``learn_tol > 0`` stops a
    run once ``max_no_improvement`` chunks in a row did not lower the monitor's energy by
    more than that (relative). ``threads`` applies inside the call only.

    Raises
    ------
    ValueError
        A bad field (named) or an ``out`` that holds a sweep of another recipe (runs are
        never mixed), another command's output, or a damaged ``config.json`` or run
        ``result.json`` (named), before any work.
    FileNotFoundError
        ``images`` does not exist.
    """
    if "images" in changes and isinstance(changes["images"], Path):
        changes["images"] = str(changes["images"])
    r = _recipe(SweepRecipe, recipe, changes)
    out = Path(out)
    check_writable_dir(out)
    config = {k: v for k, v in r.to_dict().items() if k not in _RUN_SET}
    cfg_path = out / "config.json"
    # before any work: another command's folder, another sweep's, or a damaged run
    refuse_other_output(out)
    _refuse_other_sweep(out, config)
    for path in sorted((out / "runs").glob("*/result.json")):
        _read_result(path)
    with num_threads(r.threads):
        out.mkdir(parents=True, exist_ok=True)
        write_json(cfg_path, config)
        data = held_out(r.images, r.size, r.n_test, r.n_monitor, r.seed)
        todo = [(k, p, t) for k in r.atoms for p in r.penalties for t in r.thresholds]
        bar = tqdm(total=len(todo), desc="sweep", unit="dictionary") if progress else None
        for k, pen, thr in todo:
            res = run_one(out, r, pen, k, thr, data)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    run=_key(pen, k, thr),
                    err=f"{res['relative_error']:.3f}",
                    af=f"{res['active_fraction']:.4f}",
                )
        if bar is not None:
            bar.close()
        return summarise(out, plots=plots)


def _refuse_other_sweep(out: Path, config: dict) -> None:
    """ValueError when ``out/config.json`` is not this sweep's: damaged, another
    command's run, or a sweep of another configuration (the same one resumes)."""
    path = out / "config.json"
    if not path.is_file():
        return
    old = read_json(path, "remove it or choose another --out")
    other = sorted(set(old) - set(SweepRecipe().to_dict())) if isinstance(old, dict) else []
    if not isinstance(old, dict) or other:
        raise ValueError(
            f"{out} holds a run of another command ({', '.join(other[:4]) or 'not a recipe'} "
            "in its config.json); choose another --out (output folder) or remove that run"
        )
    diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
    if diff:
        raise ValueError(
            f"{out} holds a sweep with another configuration ({diff}, as (stored, asked));"
            " use another --out, or the same options to resume it"
        )


# What summarise reads from every run's result.json.
_RESULT_KEYS = ("penalty", "n_atoms", "threshold", "relative_error", "active_fraction")
_RESULT_KEYS += ("nonzeros_per_patch",)


def _read_result(path: Path) -> dict:
    """A finished run's result.json; ValueError naming it when it is damaged."""
    fix = (
        f"remove its run folder {str(path.parent)!r} (learned again if this sweep has that "
        "run) or choose another --out"
    )
    res = read_json(path, fix)
    what = "is not a run's result (not a JSON object)"
    missing = [k for k in _RESULT_KEYS if k not in res] if isinstance(res, dict) else []
    if missing:
        what = f"is not a run's result (it lacks {', '.join(missing)})"
    if not isinstance(res, dict) or missing:
        raise ValueError(f"{path} {what}; {fix}")
    return res


def _interp_log(xs, ys, x):
    """y at x by linear interpolation in (log x, y) along sorted points; None outside."""
    pts = sorted((a, b) for a, b in zip(xs, ys) if a > 0)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1 and x1 > x0:
            w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + w * (y1 - y0)
    return None


def error_at_sparsity(rows, penalty, n_atoms, nonzeros):
    """Held-out relative error of ``penalty`` with ``n_atoms`` atoms at ``nonzeros`` active
    coefficients per patch, interpolated along its lam sweep (log non-zeros); None when the
    sweep does not bracket it."""
    sel = _curve(rows, penalty, n_atoms)
    return _interp_log(
        [r["nonzeros_per_patch"] for r in sel], [r["relative_error"] for r in sel], nonzeros
    )


def atoms_to_match(rows, penalty, n_atoms, nonzeros, reference="l1"):
    """Paper claim (a): how many atoms ``reference`` needs to reach ``penalty``'s held-out
    error (with ``n_atoms`` atoms) at the same ``nonzeros`` per patch. Interpolates the
    reference's error at that sparsity across its sizes (log atoms). Returns ``(atoms,
    bound)``: ``bound`` is None when found, ``">"`` when even the largest reference size
    does not reach it (atoms is then that size), ``"<"`` when the smallest already does."""
    target = error_at_sparsity(rows, penalty, n_atoms, nonzeros)
    if target is None:
        return None, None
    sizes = sorted({r["n_atoms"] for r in rows if r["penalty"] == reference})
    errs = [(k, error_at_sparsity(rows, reference, k, nonzeros)) for k in sizes]
    errs = [(k, e) for k, e in errs if e is not None]
    if not errs:
        return None, None
    if errs[-1][1] > target and all(e > target for _, e in errs):
        return float(errs[-1][0]), ">"
    if errs[0][1] <= target:
        return float(errs[0][0]), "<"
    for (k0, e0), (k1, e1) in zip(errs, errs[1:]):
        if e0 > target >= e1:
            w = (e0 - target) / (e0 - e1)
            return float(math.exp(math.log(k0) + w * (math.log(k1) - math.log(k0)))), None
    return None, None


def summarise(out, plots: bool = True) -> dict:
    """Read every finished run of ``out`` and write ``sweep.csv``, ``sweep.json`` and (with
    ``plots``) the figures; returns ``{"rows", "matched", "units", "error_ratio"}``."""
    out = Path(out)
    rows = [_read_result(p) for p in sorted((out / "runs").glob("*/result.json"))]
    if not rows:
        raise ValueError(f"no finished runs under {out / 'runs'}")
    pens = sorted({r["penalty"] for r in rows}, key=lambda p: (p != "l1", p))
    sizes = sorted({r["n_atoms"] for r in rows})
    _write_csv(out / "sweep.csv", rows)
    # Sparsity levels every penalty's sweep covers at every size, where possible (none
    # when every code is zero: no comparison at fixed sparsity, the rest is written).
    nz = [r["nonzeros_per_patch"] for r in rows if r["nonzeros_per_patch"] > 0]
    levels = []
    if nz:
        levels = sorted({round(float(v), 2) for v in np.geomspace(min(nz), max(nz), 7)[1:-1]})
    units, ratio = _against_l1(rows, pens, sizes, levels)
    elevels = _error_levels(rows)
    result = {
        "rows": rows,
        "matched": _matched(rows, pens, sizes, elevels),
        "units": units,
        "error_ratio": ratio,
        "sparsity_levels": levels,
        "error_levels": elevels,
    }
    if not nz:
        result["note"] = (
            "no run has an active coefficient (every code is zero): no comparison at fixed "
            "sparsity; lower --thresholds (thresholds) to get some"
        )
    write_json(out / "sweep.json", result)
    if plots:
        _plots(out, rows, pens, sizes, levels, units)
    return result


def _against_l1(rows, pens, sizes, levels):
    """For each penalty but l1, size and sparsity level: the atoms l1 needs to match its
    error (``units``) and l1's error over its (``error_ratio``)."""
    units, ratio = [], []
    for pen in pens:
        if pen == "l1":
            continue
        for k in sizes:
            for s in levels:
                point = {"penalty": pen, "n_atoms": k, "nonzeros": s}
                need, bound = atoms_to_match(rows, pen, k, s)
                if need is not None:
                    units.append(dict(point, l1_atoms=need, bound=bound, units_ratio=need / k))
                e_pen = error_at_sparsity(rows, pen, k, s)
                e_l1 = error_at_sparsity(rows, "l1", k, s)
                if e_pen and e_l1:
                    ratio.append(dict(point, error_l1=e_l1, error=e_pen, l1_over=e_l1 / e_pen))
    return units, ratio


def _plots(out, rows, pens, sizes, levels, units):
    """The sweep's figures, through matplotlib's object API."""
    _plot_tradeoff_by_atoms(out, rows, pens, sizes)
    _plot_error_vs_atoms(out, rows, pens, sizes, levels)
    if units:
        _plot_units_ratio(out, units, levels)
    _plot_largest_size(out, rows, pens, max(sizes))


def _plot_tradeoff_by_atoms(out, rows, pens, sizes):
    n = len(sizes)
    fig = Figure(figsize=(3.6 * n, 3.2))
    axes = fig.subplots(1, n, squeeze=False, sharey=True)
    for ax, k in zip(axes.ravel(), sizes):
        for pen in pens:
            _plot_tradeoff(ax, rows, pen, k, label=pen)
        _tradeoff_axes(ax)
        ax.set_title(f"{k} atoms", fontsize=9)
    axes.ravel()[0].set_ylabel("held-out relative error")
    axes.ravel()[-1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "tradeoff_by_atoms.png", dpi=110)


def _plot_error_vs_atoms(out, rows, pens, sizes, levels):
    """The error against the size at the sparsity level that the most (penalty, size)
    sweeps cover."""

    def cover(s):
        return sum(error_at_sparsity(rows, p, k, s) is not None for p in pens for k in sizes)

    if not levels:
        return
    mid = max(levels, key=lambda s: (cover(s), -abs(s - levels[len(levels) // 2])))
    fig = Figure(figsize=(4.4, 3.4))
    ax = fig.subplots()
    for pen in pens:
        pts = [(k, error_at_sparsity(rows, pen, k, mid)) for k in sizes]
        pts = [(k, e) for k, e in pts if e is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=4, label=pen)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("atoms")
    ax.set_ylabel("held-out relative error")
    ax.set_title(f"at {mid:g} non-zeros per patch", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "error_vs_atoms.png", dpi=110)


def _plot_units_ratio(out, units, levels):
    fig = Figure(figsize=(4.6, 3.4))
    ax = fig.subplots()
    for pen in sorted({u["penalty"] for u in units}):
        for s in levels:
            us = [u for u in units if u["penalty"] == pen and u["nonzeros"] == s]
            if not us:
                continue
            xs = [u["n_atoms"] for u in us]
            ys = [u["units_ratio"] for u in us]
            line = ax.plot(xs, ys, "o-", ms=3, label=f"{pen}, {s:g} nz")[0]
            for u in us:
                if u["bound"] == ">":
                    ax.annotate(
                        "^",
                        (u["n_atoms"], u["units_ratio"]),
                        color=line.get_color(),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("atoms of the penalty's dictionary")
    ax.set_ylabel("atoms l1 needs / atoms (equal error)")
    ax.set_title("^: at least (l1's largest size is not enough)", fontsize=7)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "units_ratio.png", dpi=110)


def _plot_largest_size(out, rows, pens, k):
    """Gabor parameters and atom types of the largest size ``k``, from the analysed subsets."""
    fits_by_pen, types = {}, {}
    for pen in pens:
        sel = _curve(rows, pen, k)
        if not sel or "analysed_atoms" not in sel[0]:
            continue
        types[pen] = [
            (r["active_fraction"], {t: r.get(f"type_{t}", 0.0) for t in v1.ATOM_TYPES}) for r in sel
        ]
        thr = sorted(r["threshold"] for r in sel)[len(sel) // 2]
        z = np.load(out / "runs" / _key(pen, k, thr) / "gabor.npz")
        fits_by_pen[f"{pen} ({k}, t={thr:g})"] = {f: z[f] for f in ("r2", "f", "theta", "nx", "ny")}
    if fits_by_pen:
        v1.plot_gabor_params(fits_by_pen, out / "gabor_params.png")
        v1.plot_nxny(fits_by_pen, out / "nxny.png")
    if types:
        v1.plot_type_fractions(types, out / "atom_types.png")


__all__ = [
    "SweepRecipe",
    "sweep",
    "run_one",
    "summarise",
    "error_at_sparsity",
    "atoms_to_match",
]
