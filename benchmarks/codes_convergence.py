"""Dictionary learning with the estimator's defaults on the planted problem, against
scikit-learn, in one run.

The problem (issue 14): 40 unit atoms in 16 dimensions, 3,000 signals of 3 atoms each
(random sign, magnitude uniform in [1, 2]), Gaussian noise 0.01 (``planted_problem``).
For each seed and penalty: ``SparseCoding(40, penalty=p, random_state=seed)`` with every
other option at its default (lam = 0.1), the fraction of planted atoms found at |cos| >=
0.95, passes, whether the stopping rule (not the cap) ended it, atoms resampled, and the
time. The anchor, timed in the same round just before: scikit-learn's
``MiniBatchDictionaryLearning(40, alpha=lam)`` with its own defaults (LARS, batch 256, its
own stopping rule), the same l1 energy (alpha = lam); the printed ratio is our time over its
time to reach its own result. ``--dl-seeds k`` also runs ``DictionaryLearning(40,
alpha=lam, fit_algorithm="cd")`` (the batch reference; slow) on the first k seeds.

``--natural``: instead, the adaptive window of the statistics against the fixed 10-batch
window it replaces, on natural images (256 atoms, 20,000 whitened 16x16 patches, one pass,
``init="data"``, resampling every 50 batches, as ``codes compare`` learns): held-out
energy, relative error and active fraction for l1 and CEL0.

    python benchmarks/codes_convergence.py --out runs/codes/convergence.json
    python benchmarks/codes_convergence.py --quick      # smoke test, about half a minute
    python benchmarks/codes_convergence.py --natural --out runs/codes/window.json
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch
from sklearn.decomposition import DictionaryLearning, MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from shrinkage._io import write_json
from shrinkage.codes import (
    SparseCoding,
    atom_recovery,
    encode,
    learn_dictionary,
    objective,
    planted_problem,
)
from shrinkage.experiments.codes import evaluate, lam_from_threshold, load_patches


def _fit_timed(est, X):
    t = time.perf_counter()
    est.fit(X)
    return est, time.perf_counter() - t


def _energy(X, D, lam):
    return float(objective(X, D, encode(X, D, "l1", lam, tol=1e-8), "l1", lam))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--penalties", default="l1,l0,l1/2,cel0")
    ap.add_argument("--lam", type=float, default=None, help="default: the estimator's (0.1)")
    ap.add_argument("--n", type=int, default=3000, help="signals")
    ap.add_argument("--atoms", type=int, default=40)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--dl-seeds", type=int, default=0, help="seeds also run by DictionaryLearning")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 seed, l1 and cel0, 1,500 signals")
    ap.add_argument("--natural", action="store_true", help="the window check on natural images")
    ap.add_argument("--out", default=None, help="JSON file for the numbers")
    args = ap.parse_args(argv)
    if args.natural:
        return natural(args)
    if args.quick:
        args.seeds, args.penalties, args.n, args.atoms = 1, "l1,cel0", 1500, 24

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    penalties = [p.strip() for p in args.penalties.split(",") if p.strip()]
    lam = SparseCoding().lam if args.lam is None else args.lam
    k = args.atoms
    rows = []
    print(
        f"planted problem: {k} atoms in {args.features} dims, {args.n} signals of 3 atoms; "
        f"lam {lam}; {args.threads} thread(s)"
    )
    print("seed  learner                      found   passes  conv  resampled  time (s)  ratio")
    for seed in range(args.seeds):
        X, D0, _ = planted_problem(args.n, k, args.features, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mb, t_mb = _fit_timed(MiniBatchDictionaryLearning(k, alpha=lam, random_state=seed), X)
        rec_mb = atom_recovery(D0, mb.components_)
        rows.append(
            dict(
                seed=seed,
                learner="MiniBatchDictionaryLearning",
                penalty="l1",
                found=rec_mb,
                passes=int(mb.n_iter_),
                steps=int(mb.n_steps_),
                seconds=t_mb,
            )
        )
        print(
            f"{seed:4d}  sklearn MiniBatchDL (l1)     {rec_mb:5.3f}  {mb.n_iter_:6.0f}"
            + " " * 23
            + f"{t_mb:7.2f}"
        )
        for pen in penalties:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                sc, t = _fit_timed(SparseCoding(k, penalty=pen, lam=lam, random_state=seed), X)
            rec = atom_recovery(D0, sc.components_)
            row = dict(
                seed=seed,
                learner="SparseCoding",
                penalty=pen,
                found=rec,
                passes=sc.n_iter_,
                steps=sc.n_steps_,
                converged=sc.converged_,
                resampled=sc.n_resampled_,
                warned=any(issubclass(w.category, ConvergenceWarning) for w in caught),
                seconds=t,
                ratio_to_minibatch=t / t_mb,
            )
            rows.append(row)
            print(
                f"{seed:4d}  shrinkage SparseCoding {pen:5s} {rec:5.3f}  {sc.n_iter_:6d}  "
                f"{'yes' if sc.converged_ else 'NO ':4s}  {sc.n_resampled_:9d}  {t:8.2f}  "
                f"{t / t_mb:5.2f}"
            )
        if seed < args.dl_seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                dl, t_dl = _fit_timed(
                    DictionaryLearning(k, alpha=lam, fit_algorithm="cd", random_state=seed), X
                )
            rec_dl = atom_recovery(D0, dl.components_)

            ours = next(r for r in rows[::-1] if r["penalty"] == "l1" and r["seed"] == seed)
            rows.append(
                dict(
                    seed=seed,
                    learner="DictionaryLearning",
                    penalty="l1",
                    found=rec_dl,
                    passes=int(dl.n_iter_),
                    seconds=t_dl,
                    energy=_energy(X, dl.components_, lam),
                )
            )
            print(
                f"{seed:4d}  sklearn DictionaryLearning   {rec_dl:5.3f}  {dl.n_iter_:6d}"
                + " " * 23
                + f"{t_dl:7.2f}"
            )
            if "l1" in penalties:
                sc = SparseCoding(k, lam=lam, random_state=seed).fit(X)
                ours["energy"] = _energy(X, sc.components_, lam)
                print(
                    f"      l1 energy: ours {ours['energy']:.5f}, DictionaryLearning "
                    f"{rows[-1]['energy']:.5f} (ratio {ours['energy'] / rows[-1]['energy']:.4f})"
                )
    print("\nsummary (over seeds)")
    summary = {}
    for pen in penalties:
        rs = [r for r in rows if r["learner"] == "SparseCoding" and r["penalty"] == pen]
        s = dict(
            found_mean=statistics.mean(r["found"] for r in rs),
            found_min=min(r["found"] for r in rs),
            converged=sum(r["converged"] for r in rs),
            runs=len(rs),
            seconds_median=statistics.median(r["seconds"] for r in rs),
            ratio_median=statistics.median(r["ratio_to_minibatch"] for r in rs),
            ratio_max=max(r["ratio_to_minibatch"] for r in rs),
        )
        summary[pen] = s
        print(
            f"  {pen:5s} found {s['found_mean']:.3f} (min {s['found_min']:.3f}), converged "
            f"{s['converged']}/{s['runs']}, median {s['seconds_median']:.2f} s, time ratio "
            f"to MiniBatchDictionaryLearning: median {s['ratio_median']:.2f}, max "
            f"{s['ratio_max']:.2f}"
        )
    mbs = [r for r in rows if r["learner"] == "MiniBatchDictionaryLearning"]
    summary["minibatch"] = dict(
        found_mean=statistics.mean(r["found"] for r in mbs),
        seconds_median=statistics.median(r["seconds"] for r in mbs),
    )
    print(
        f"  MiniBatchDictionaryLearning found {summary['minibatch']['found_mean']:.3f}, "
        f"median {summary['minibatch']['seconds_median']:.2f} s"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, {"config": vars(args), "rows": rows, "summary": summary})
        print(f"wrote {args.out}")
    return summary


def natural(args):
    """Adaptive (Kesten) window vs the fixed 10-batch window on natural-image patches."""
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    Xtr, Xte = load_patches(20000, 2000, 16, 0)
    Xt = torch.as_tensor(Xtr, dtype=torch.float32)
    rows = []
    print("penalty  window      held-out energy  rel. error  active   time (s)")
    for pen in ("l1", "cel0"):
        lam = float(lam_from_threshold(pen, 0.5))
        for name, forget in (("fixed 10", 10), ("adaptive", None)):
            t = time.perf_counter()
            st = learn_dictionary(
                Xt,
                256,
                pen,
                lam,
                n_epochs=1,
                init="data",
                resample_every=50,
                learn_tol=0,
                forget=forget,
                random_state=0,
            )
            sec = time.perf_counter() - t
            m = evaluate(Xte, st.D.double().numpy(), pen, lam, max_iter=1000, tol=1e-4)
            rows.append(dict(penalty=pen, window=name, seconds=sec, **m))
            print(
                f"{pen:7s}  {name:10s}  {m['objective']:15.5f}  {m['relative_error']:10.4f}  "
                f"{m['active_fraction']:.4f}  {sec:8.1f}"
            )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, {"rows": rows})
    return rows


if __name__ == "__main__":
    main()
