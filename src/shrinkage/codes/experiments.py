"""Reusable experiments behind ``shrinkage codes learn|compare`` (small sizes run in seconds).

- :func:`load_patches` -- whitened natural-image patches, train and held-out split;
- :func:`learn` -- one dictionary, its held-out metrics, Gabor fits and grating tuning;
- :func:`compare` -- for each penalty and dictionary size a sweep of lam, one dictionary per
  point; relative error vs active fraction on held-out patches and, at matched error levels,
  the active fraction each penalty needs.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from .._checks import check_choice, check_int_at_least
from .._io import atomic_path, save_figure, write_json
from ..thresholds import PENALTIES, lam_for_threshold
from ._encode import encode
from ._learn import learn_dictionary
from .metrics import active_fraction, atom_usage, relative_error, snr_db

# Penalties whose codes are computed from those of an exact relaxation (same global
# minimisers): plain hard thresholding from zero stops in poor local minima of the l0 energy.
RELAXATIONS = {"l0": "cel0"}


def load_patches(n_train, n_test=2000, size=16, seed=0, images=None):
    """(train, test) float64 patches from the bundled natural images (Olshausen whitening)."""
    from ..data import natural_images, patches

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


def learn(
    penalty="cel0",
    lam=0.27,
    n_atoms=256,
    n_patches=20000,
    n_test=2000,
    size=16,
    n_epochs=1,
    batch_size=256,
    lr=1.0,
    update="bcd",
    seed=0,
    max_iter=200,
    tol=1e-3,
    analyse=True,
    progress=False,
    data=None,
    dtype=torch.float32,
    threads=None,
    continuation=0,
    relax=True,
    learn_tol=0.0,
    max_no_improvement=3,
    monitor=0,
) -> dict:
    """Learn one dictionary on whitened patches; returns ``{"D", "metrics", "fits", "tuning",
    "summary"}`` (``fits``/``tuning`` only with ``analyse``). ``data``: optional (train, test).
    ``relax``: every l0 encoding (learning, held-out codes, tuning) starts from the codes of
    its exact relaxation CEL0 (:data:`RELAXATIONS`) instead of from zero.
    ``learn_tol > 0``: stop before ``n_epochs`` once converged (:func:`learn_dictionary`),
    judged on the first ``monitor`` training patches when ``monitor > 0``; 0: exactly
    ``n_epochs`` passes.
    """
    check_choice("penalty", penalty, PENALTIES)
    if threads:
        torch.set_num_threads(threads)
    Xtr, Xte = data if data is not None else load_patches(n_patches, n_test, size, seed)
    Xtr_t = torch.as_tensor(np.asarray(Xtr), dtype=dtype)
    warm = {"relaxation": RELAXATIONS[penalty]} if relax and penalty in RELAXATIONS else {}
    st = learn_dictionary(
        Xtr_t,
        n_atoms,
        penalty,
        lam,
        n_epochs=n_epochs,
        batch_size=batch_size,
        lr=lr,
        update=update,
        init="data",
        resample_every=50,
        random_state=seed,
        max_iter=max_iter,
        tol=tol,
        progress=progress,
        learn_tol=learn_tol,
        max_no_improvement=max_no_improvement,
        monitor=Xtr_t[:monitor] if monitor else None,
        **warm,
    )
    D = st.D.double().numpy()
    metrics = evaluate(
        np.asarray(Xte, dtype=np.float64),
        D,
        penalty,
        lam,
        max_iter=1000,
        tol=1e-4,
        continuation=continuation,
        **warm,
    )
    metrics.update(
        penalty=penalty,
        lam=lam,
        n_atoms=n_atoms,
        n_patches=len(Xtr),
        n_epochs=n_epochs,
        continuation=continuation,
        relaxed=bool(warm),
        batches=st.step,
        epochs_run=st.epochs,
        converged=st.converged,
        resampled_atoms=st.n_resampled,
        train_energy_last=st.history[-1],
    )
    out = {"D": D, "metrics": metrics, "history": st.history}
    if analyse:
        from . import v1

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
    penalties=("l1", "l0", "l1/2", "cel0"),
    atoms=(256,),
    thresholds=(0.2, 0.35, 0.5, 0.7, 1.0),
    n_patches=20000,
    n_test=2000,
    size=16,
    n_epochs=1,
    batch_size=256,
    update="bcd",
    seed=0,
    error_levels=None,
    analyse=True,
    progress=False,
    out=None,
    continuation=0,
    relax=True,
    learn_tol=0.0,
    max_no_improvement=3,
    monitor=0,
) -> dict:
    """For each penalty and dictionary size, one dictionary per lam of a sweep (lam from a
    common zeroing ``threshold``, see :func:`lam_from_threshold`); returns rows of held-out
    metrics and, for each error level, each penalty's interpolated active fraction and its
    ratio to l1. Writes CSV, JSON and PNGs under ``out`` when given.

    >>> res = compare(("l1", "cel0"), atoms=(16,), thresholds=(0.3, 0.8), n_patches=300,
    ...               n_test=100, size=8, analyse=False)  # doctest: +SKIP
    """
    for p in penalties:
        check_choice("penalty", p, PENALTIES)
    Xtr, Xte = load_patches(n_patches, n_test, size, seed)
    rows, dicts, analyses = [], {}, {}
    total = len(penalties) * len(atoms) * len(thresholds)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="compare", unit="dictionary")
    for k in atoms:
        for pen in penalties:
            for thr in thresholds:
                lam = float(lam_from_threshold(pen, thr))
                res = learn(
                    pen,
                    lam,
                    k,
                    n_epochs=n_epochs,
                    batch_size=batch_size,
                    update=update,
                    seed=seed,
                    analyse=False,
                    data=(Xtr, Xte),
                    continuation=continuation,
                    relax=relax,
                    learn_tol=learn_tol,
                    max_no_improvement=max_no_improvement,
                    monitor=monitor,
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
    if error_levels is None:
        errs = [r["relative_error"] for r in rows]
        lo, hi = np.percentile(errs, 25), np.percentile(errs, 75)
        error_levels = sorted({round(float(v), 3) for v in np.linspace(lo, hi, 3)})
    matched = []
    for k in atoms:
        for e in error_levels:
            entry = {"n_atoms": k, "relative_error": e}
            for pen in penalties:
                curve = [r for r in rows if r["penalty"] == pen and r["n_atoms"] == k]
                entry[pen] = _interp_af(curve, e)
            base = entry.get("l1")
            for pen in penalties:
                if pen != "l1" and base and entry.get(pen):
                    entry[f"l1_over_{pen}"] = base / entry[pen]
            matched.append(entry)
    if analyse:
        # V1 analyses on one dictionary per (penalty, size): the one nearest the middle error.
        from . import v1

        mid = error_levels[len(error_levels) // 2]
        norm = float(np.linalg.norm(Xte, axis=1).mean())
        for k in atoms:
            for pen in penalties:
                cand = [r for r in rows if r["penalty"] == pen and r["n_atoms"] == k]
                r = min(cand, key=lambda r: abs(r["relative_error"] - mid))
                D = dicts[(pen, k, r["threshold"])]
                fits = v1.fit_gabors(D, progress=progress)
                warm = {"relaxation": RELAXATIONS[pen]} if relax and pen in RELAXATIONS else {}
                tuning = v1.orientation_tuning(
                    D, pen, r["lam"], norm=norm, max_iter=300, tol=1e-3, **warm
                )
                summ = v1.summary(fits, tuning)
                types = v1.classify_atoms(D, fits=fits)["fractions"]
                r.update({f"v1_{a}": b for a, b in summ.items()})
                r.update({f"type_{a}": b for a, b in types.items()})
                analyses[(pen, k, r["threshold"])] = (fits, tuning)
    result = {
        "rows": rows,
        "matched": matched,
        "error_levels": list(error_levels),
        "config": dict(
            penalties=list(penalties),
            atoms=list(atoms),
            thresholds=list(thresholds),
            n_patches=n_patches,
            n_test=n_test,
            size=size,
            n_epochs=n_epochs,
            batch_size=batch_size,
            update=update,
            seed=seed,
            continuation=continuation,
            relax=relax,
            learn_tol=learn_tol,
            max_no_improvement=max_no_improvement,
        ),
    }
    if out is not None:
        write_outputs(result, dicts, analyses, Path(out))
    result["dictionaries"] = dicts
    return result


def write_outputs(result, dicts, analyses, out: Path):
    """CSV and JSON of the sweep, the error-vs-sparsity PNG, the best dictionaries' atom
    grids, Ringach scatter and orientation histogram."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    keys = sorted({k for r in rows for k in r})
    with atomic_path(out / "compare.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    write_json(out / "compare.json", {k: v for k, v in result.items() if k != "dictionaries"})
    plot_tradeoff(rows, out / "tradeoff.png")
    for (pen, k, thr), D in dicts.items():
        np.save(out / f"D_{pen.replace('/', '')}_{k}_{thr}.npy", D)
    if analyses:
        from . import v1

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


def plot_tradeoff(rows, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for pen, k in sorted({(r["penalty"], r["n_atoms"]) for r in rows}):
        pts = sorted(
            (r["active_fraction"], r["relative_error"])
            for r in rows
            if r["penalty"] == pen and r["n_atoms"] == k
        )
        ax.plot([p[0] * 100 for p in pts], [p[1] for p in pts], "o-", ms=3, label=f"{pen}, {k}")
    ax.set_xscale("log")
    ax.set_xlabel("active fraction (%)")
    ax.set_ylabel("held-out relative error")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


__all__ = [
    "load_patches",
    "lam_from_threshold",
    "evaluate",
    "learn",
    "compare",
    "write_outputs",
    "plot_tradeoff",
]
