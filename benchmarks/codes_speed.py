"""Speed and memory of ``shrinkage.codes`` against scikit-learn, in one run.

1. Encoding (l1): ``encode`` (its default, the compiled coordinate descent; float32, and
   float64 as a second row; ``--previous`` / ``--plain`` add the torch FISTA paths) vs
   ``sklearn.decomposition.sparse_encode`` with ``algorithm="lasso_cd"`` (timed in the same
   rounds, interleaved) and ``"lasso_lars"`` on the same whitened 16x16 patches and the
   same 1024-atom dictionary. Scaling: our energy is 1/2 ||x - r D||^2 + lam ||r||_1;
   ``sparse_encode(alpha=lam)`` solves the same problem (it runs ``Lasso(alpha=lam /
   n_features)``, whose loss is 1/(2 n_features) ||x - D^T r||^2 + alpha ||r||_1, i.e. ours
   divided by n_features). The script checks it: both objectives are computed by
   ``shrinkage.codes.objective`` and their relative gap printed.
2. Dictionary learning (l1, same lam): ``learn_dictionary`` vs ``MiniBatchDictionaryLearning``
   on the same training patches; held-out relative error and active fraction of both
   dictionaries (encoded by the same encoder) and the time ratio.
3. Streaming memory: ``encode_batches`` over a generator of patch batches, peak resident
   memory (ru_maxrss of a child process) at two stream lengths.
4. Against SPAMS (the field's reference C++ library; the optional ``bench`` extra,
   ``spams-bin``; skipped with a message when it is not installed): ``encode`` against
   ``spams.lasso`` on learned and random dictionaries of ``--spams-atoms`` atoms (and the
   1024-atom one of 1.), sparse and dense codes, float32 and float64 (targets: >= 2x in
   every regime); ``learn_dictionary`` against ``spams.trainDL`` at 256 and 1024 atoms, one
   and two threads, both one pass over the same patches, and ours again on the first
   ``--spams-fractions`` of them (target: SPAMS's held-out error at equal sparsity, its
   dictionary re-encoded at our active fraction, in at most a third of its time); SPAMS,
   our pass and the prefixes are timed once per round in ``--spams-rounds`` interleaved
   rounds, best of the rounds.
   ``--skip spams-encode`` / ``spams-learn`` leave out one half.

    python benchmarks/codes_speed.py --threads 1 --out runs/codes/bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def _patches(n, seed):
    from shrinkage.data import natural_images, patches

    return patches(natural_images(), size=16, n=n, whiten="olshausen", seed=seed)


def _best(fn, n):
    """Best wall time of n calls and the last result."""
    best, out = None, None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, out


def bench_encode(args, X, D, lam):
    from sklearn.decomposition import sparse_encode

    from shrinkage.codes import active_fraction, encode, objective

    out = {
        "n_samples": len(X),
        "n_atoms": len(D),
        "n_features": X.shape[1],
        "lam": lam,
        "sklearn_alpha": lam,
        "lasso_alpha": lam / X.shape[1],
        "repeats": args.repeats,
    }
    Xt = torch.as_tensor(X, dtype=torch.float32)
    Dt = torch.as_tensor(D, dtype=torch.float32)
    Xd, Dd = torch.as_tensor(X), torch.as_tensor(D)
    # Candidates, all timed in every round (interleaved with lasso_cd: the machine's load
    # changes during a run, so a ratio is only fair between neighbouring timings).
    cands = {
        # the default: coordinate descent in the compiled kernel (solver="cd")
        "ours": lambda: encode(Xt, Dt, "l1", lam, tol=args.tol, max_iter=2000, return_info=True),
        "ours_f64": lambda: encode(Xd, Dd, "l1", lam, tol=args.tol, max_iter=2000),
    }
    if args.previous:
        # the previous default, working-set FISTA in torch (also CD's fallback)
        cands["ws_fista"] = lambda: encode(
            Xt, Dt, "l1", lam, solver="fista", tol=args.tol, max_iter=2000
        )
    if args.plain:
        cands["plain_fista"] = lambda: encode(
            Xt, Dt, "l1", lam, solver="fista", working_set=False, tol=args.tol, max_iter=2000
        )
    for f in cands.values():  # warm-up: builds / loads the kernel
        f()
    best = dict.fromkeys(cands, float("inf"))
    res = {}
    tcd = float("inf")
    for _ in range(args.repeats):
        for name, f in cands.items():
            dt, res[name] = _best(f, 3)  # ours are short: best of 3 per round
            best[name] = min(best[name], dt)
        dt, Zcd = _best(
            lambda: sparse_encode(X, D, algorithm="lasso_cd", alpha=lam, max_iter=1000, n_jobs=1),
            1,
        )
        tcd = min(tcd, dt)
    ocd = float(objective(X, D, Zcd, "l1", lam))
    out.update(lasso_cd_time_s=tcd, lasso_cd_objective=ocd)
    print(f"lasso_cd (scikit-learn, float64): best {tcd:.3f} s, objective {ocd:.6f}")
    Z = None
    for name in cands:
        r = res[name]
        Zn = (r[0] if isinstance(r, tuple) else r).double().numpy()
        o = float(objective(X, D, Zn, "l1", lam))
        gap = (o - ocd) / abs(ocd)
        out.update(
            {
                f"{name}_time_s": best[name],
                f"{name}_objective": o,
                f"{name}_gap_vs_lasso_cd": gap,
                f"{name}_speedup_vs_lasso_cd": tcd / best[name],
                f"{name}_active": active_fraction(Zn),
            }
        )
        print(
            f"{name}: best {best[name]:.4f} s, objective {o:.6f}, relative gap (ours - cd)/cd"
            f" {gap:+.2e}, active {active_fraction(Zn):.4f}; {tcd / best[name]:.1f}x faster"
            " than lasso_cd"
        )
        if name == "ours":
            Z, info = Zn, r[1]
            out.update(ours_iters_max=info["n_iter"], ours_converged=info["converged"])
    # Legacy keys (the default's numbers).
    out.update(
        gap_vs_lasso_cd=out["ours_gap_vs_lasso_cd"],
        speedup_vs_lasso_cd=out["ours_speedup_vs_lasso_cd"],
    )
    n_lars = min(args.lars_samples, len(X))
    if n_lars > 0:
        t = time.perf_counter()
        Zl = sparse_encode(
            X[:n_lars], D, algorithm="lasso_lars", alpha=lam, max_iter=1000, n_jobs=1
        )
        tl = time.perf_counter() - t
        ol = float(objective(X[:n_lars], D, Zl, "l1", lam))
        o_sub = float(objective(X[:n_lars], D, Z[:n_lars], "l1", lam))
        tl_full = tl * len(X) / n_lars
        out.update(
            lasso_lars_samples=n_lars,
            lasso_lars_time_s=tl,
            lasso_lars_time_full_s=tl_full,
            lasso_lars_objective=ol,
            gap_vs_lasso_lars=(o_sub - ol) / abs(ol),
            speedup_vs_lasso_lars=tl_full / best["ours"],
        )
        print(
            f"lasso_lars on {n_lars} rows: {tl:.3f} s (x{len(X) / n_lars:.1f} -> {tl_full:.2f} s),"
            f" relative gap {(o_sub - ol) / abs(ol):+.2e}; ours is {tl_full / best['ours']:.1f}x"
            " faster"
        )
    return out


def bench_learn(args, Xtr, Xte, lam):
    from sklearn.decomposition import MiniBatchDictionaryLearning

    from shrinkage.codes import active_fraction, encode, learn_dictionary, relative_error

    def held_out(D):
        Z = encode(Xte, D, "l1", lam, tol=1e-4, max_iter=2000)
        return relative_error(Xte, D, Z), active_fraction(Z)

    k = args.learn_atoms
    Xtr32 = torch.as_tensor(Xtr, dtype=torch.float32)

    def ours():
        return learn_dictionary(
            Xtr32,
            k,
            "l1",
            lam,
            n_epochs=args.learn_epochs,
            batch_size=256,
            update="bcd",
            init="data",
            max_iter=args.learn_max_iter,
            tol=args.learn_tol,
            random_state=0,
            learn_tol=0,  # exactly learn_epochs passes, as timed before
        )

    def sklearn():
        return MiniBatchDictionaryLearning(
            n_components=k,
            alpha=lam,
            batch_size=256,
            max_iter=args.learn_epochs,
            fit_algorithm="cd",
            transform_algorithm="lasso_cd",
            transform_alpha=lam,
            random_state=0,
            n_jobs=1,
        ).fit(Xtr)

    # Ours before and after scikit-learn (best of the two), scikit-learn once: the ratio
    # then uses timings taken under the same load.
    t1, st = _best(ours, 1)
    tsk, mb = _best(sklearn, 1)
    t2, st = _best(ours, 1)
    tours = min(t1, t2)
    esk, ask = held_out(mb.components_)
    print(
        f"MiniBatchDictionaryLearning ({k} atoms, {args.learn_epochs} epoch(s)): {tsk:.1f} s,"
        f" held-out rel. error {esk:.4f}, active {ask:.4f}"
    )
    D = st.D.double().numpy()
    eo, ao = held_out(D)
    print(
        f"shrinkage learn_dictionary (bcd): {t1:.2f} s / {t2:.2f} s, held-out rel. error "
        f"{eo:.4f}, active {ao:.4f}; {tsk / tours:.1f}x less time"
    )
    return {
        "atoms": k,
        "epochs": args.learn_epochs,
        "n_train": len(Xtr),
        "n_test": len(Xte),
        "lam": lam,
        "sklearn_time_s": tsk,
        "sklearn_rel_error": esk,
        "sklearn_active": ask,
        "ours_time_s": tours,
        "ours_times_s": [t1, t2],
        "ours_rel_error": eo,
        "ours_active": ao,
        "time_ratio": tsk / tours,
        "encoder_max_iter": args.learn_max_iter,
        "encoder_tol": args.learn_tol,
    }, D


def _spams():
    """The SPAMS module, or None with the reason printed (the optional ``bench`` extra)."""
    try:
        import spams
    except ImportError as e:
        print(
            f"SPAMS rows skipped: spams is not installed ({e}); "
            "pip install 'shrinkage[bench]' (spams-bin) to measure against it"
        )
        return None
    return spams


def _unit_rows(rng, k, f):
    D = rng.standard_normal((k, f))
    return D / np.linalg.norm(D, axis=1, keepdims=True)


def bench_spams_encode(args, spams, X, dictionaries):
    """``encode`` (l1, the compiled CD) against SPAMS ``lasso`` (LARS, mode 2: the same
    energy 1/2 ||x - D a||^2 + lam ||a||_1, D column-wise) on the same patches: every
    dictionary given, sparse codes (``--lam``) and dense ones (``--lam`` / 10), float32 and
    float64; interleaved rounds, best time of each; the objective gap between the two."""
    from shrinkage.codes import active_fraction, encode, objective

    rows = []
    for dname, D in dictionaries.items():
        for regime, lam in (("sparse", args.lam), ("dense", args.lam / 10)):
            for dtype in (np.float32, np.float64):
                Xf = np.asfortranarray(X.T.astype(dtype))
                Df = np.asfortranarray(D.T.astype(dtype))
                Xt = torch.as_tensor(X.astype(dtype))
                Dt = torch.as_tensor(D.astype(dtype))

                def ours(Xt=Xt, Dt=Dt, lam=lam):
                    return encode(Xt, Dt, "l1", lam, tol=args.tol, max_iter=2000)

                def theirs(Xf=Xf, Df=Df, lam=lam):
                    return spams.lasso(Xf, D=Df, lambda1=lam, mode=2, numThreads=args.threads)

                ours()
                theirs()
                t_ours = t_spams = float("inf")
                for _ in range(args.repeats):
                    dt, Z = _best(ours, 2)
                    t_ours = min(t_ours, dt)
                    dt, A = _best(theirs, 1)
                    t_spams = min(t_spams, dt)
                Zo = Z.double().numpy()
                Zs = np.asarray(A.T.todense(), dtype=np.float64)
                oo = float(objective(X, D, Zo, "l1", lam))
                osp = float(objective(X, D, Zs, "l1", lam))
                row = {
                    "dictionary": dname,
                    "atoms": len(D),
                    "codes": regime,
                    "lam": lam,
                    "dtype": np.dtype(dtype).name,
                    "samples": len(X),
                    "ours_s": t_ours,
                    "spams_s": t_spams,
                    "speedup": t_spams / t_ours,
                    "gap_vs_spams": (oo - osp) / abs(osp),
                    "active": active_fraction(Zo),
                }
                rows.append(row)
                print(
                    f"encode {dname} ({len(D)} atoms), {regime} codes (lam {lam:g}, active "
                    f"{row['active']:.3f}), {row['dtype']}: ours {t_ours:.4f} s, SPAMS lasso "
                    f"{t_spams:.4f} s: {row['speedup']:.1f}x; objective gap "
                    f"{row['gap_vs_spams']:+.1e}",
                    flush=True,
                )
    return rows


def bench_spams_learn(args, spams, Xtr, Xte, lam):
    """``learn_dictionary`` (bcd, one epoch) against SPAMS ``trainDL`` (the same number of
    256-sample mini-batches, mode 2: the l1 penalty) at 256 and 1024 atoms, 1 and 2
    threads; both dictionaries' held-out relative error and active fraction with the same
    encoder at the same lam, then SPAMS's dictionary again at the lam that gives it our
    held-out active fraction (equal sparsity: bisection on log lam), and the time ratio."""
    from shrinkage.codes import active_fraction, encode, learn_dictionary, relative_error

    def held_out(D, lam=lam):
        Z = encode(torch.as_tensor(Xte), torch.as_tensor(D), "l1", lam, tol=1e-4, max_iter=2000)
        return relative_error(Xte, D, Z), active_fraction(Z)

    def at_active(D, target, steps=12):
        """Held-out error, active fraction and lam where D's codes have ``target`` active
        (the active fraction falls as lam grows: bisection on log lam within lam x/ 16)."""
        lo, hi = np.log(lam / 16), np.log(lam * 16)
        best = None
        for _ in range(steps):
            mid = (lo + hi) / 2
            e, a = held_out(D, float(np.exp(mid)))
            if best is None or abs(a - target) < abs(best[1] - target):
                best = (e, a, float(np.exp(mid)))
            lo, hi = (mid, hi) if a > target else (lo, mid)
        return best

    rows = []
    Xf = np.asfortranarray(Xtr.T)
    Xtr32 = torch.as_tensor(Xtr, dtype=torch.float32)
    batches = max(1, len(Xtr) // 256)
    for k in args.spams_atoms:
        for threads in args.spams_threads:
            torch.set_num_threads(threads)

            def ours(k=k, X=Xtr32):
                return learn_dictionary(
                    X,
                    k,
                    "l1",
                    lam,
                    n_epochs=1,
                    batch_size=256,
                    update="bcd",
                    init="data",
                    max_iter=args.learn_max_iter,
                    tol=args.learn_tol,
                    random_state=0,
                    learn_tol=0,  # exactly one pass, as trainDL's
                )

            def theirs(k=k, threads=threads):
                return spams.trainDL(
                    Xf,
                    K=k,
                    lambda1=lam,
                    mode=2,
                    iter=batches,
                    batchsize=256,
                    numThreads=threads,
                    verbose=False,
                )

            # SPAMS, our pass and our passes on the first fractions of the patches, each
            # timed once per round in interleaved rounds, best of the rounds: load and
            # cache state hit every one alike (the prefixes once ran in rounds of their
            # own, after the held-out encodes, and came out slower per batch than the
            # whole pass at two threads)
            fracs = sorted(args.spams_fractions)
            sizes = [max(256, int(len(Xtr) * f)) for f in fracs]
            best = [math.inf] * (len(fracs) + 2)
            got = [None] * (len(fracs) + 2)
            for _ in range(args.spams_rounds):
                calls = [theirs, ours] + [lambda n=n: ours(X=Xtr32[:n]) for n in sizes]
                for i, fn in enumerate(calls):
                    dt, got[i] = _best(fn, 1)
                    best[i] = min(best[i], dt)
            ts, t_ours = best[0], best[1]
            Ds, st = got[0], got[1]
            eo, ao = held_out(st.D.double().numpy())
            Dsp = np.ascontiguousarray(Ds.T, dtype=np.float64)
            es, as_ = held_out(Dsp)
            eq_e, eq_a, eq_lam = at_active(Dsp, ao)
            row = {
                "atoms": k,
                "threads": threads,
                "n_train": len(Xtr),
                "batches": batches,
                "ours_s": t_ours,
                "spams_s": ts,
                "time_ratio": ts / t_ours,
                "ours_rel_error": eo,
                "spams_rel_error": es,
                "ours_active": ao,
                "spams_active": as_,
                "spams_rel_error_equal_sparsity": eq_e,
                "spams_active_equal_sparsity": eq_a,
                "spams_lam_equal_sparsity": eq_lam,
                "error_ratio_equal_sparsity": eo / eq_e,
            }
            # Time to SPAMS's error: ours on the first fraction of the same patches (one
            # pass, fewer batches), SPAMS's dictionary re-encoded at each one's sparsity.
            row["prefixes"] = []
            for frac, n, tf, sf in zip(fracs, sizes, best[2:], got[2:]):
                ef, af = held_out(sf.D.double().numpy())
                tgt, tgt_a, _ = at_active(Dsp, af)
                row["prefixes"].append(
                    {
                        "fraction": frac,
                        "batches": max(1, n // 256),
                        "ours_s": tf,
                        "ours_rel_error": ef,
                        "ours_active": af,
                        "spams_rel_error_equal_sparsity": tgt,
                        "spams_active_equal_sparsity": tgt_a,
                        "reached": ef <= tgt,
                        "time_ratio": ts / tf,
                    }
                )
            full = {"fraction": 1.0, "ours_s": t_ours, "reached": eo <= eq_e}
            first = next((p for p in row["prefixes"] + [full] if p["reached"]), None)
            row["spams_error_reached_at_fraction"] = None if first is None else first["fraction"]
            row["time_ratio_to_spams_error"] = None if first is None else ts / first["ours_s"]
            rows.append(row)
            print(
                f"learn {k} atoms, {threads} thread(s), {batches} batches of 256: ours {t_ours:.2f}"
                f" s (error {eo:.4f}, active {ao:.4f}), SPAMS trainDL {ts:.2f} s (error {es:.4f},"
                f" active {as_:.4f}; at active {eq_a:.4f}, lam {eq_lam:.3g}: error {eq_e:.4f}):"
                f" {ts / t_ours:.1f}x less time, error ratio at equal sparsity {eo / eq_e:.3f}",
                flush=True,
            )
            for p in row["prefixes"]:
                print(
                    f"  ours on {p['fraction']:g} of the patches ({p['batches']} batches): "
                    f"{p['ours_s']:.2f} s, error {p['ours_rel_error']:.4f} at active "
                    f"{p['ours_active']:.4f} vs SPAMS's {p['spams_rel_error_equal_sparsity']:.4f}"
                    f" there: {'reached' if p['reached'] else 'not reached'}, "
                    f"{p['time_ratio']:.1f}x less time",
                    flush=True,
                )
            if first is None:
                print("  SPAMS's held-out error at equal sparsity not reached", flush=True)
            else:
                print(
                    f"  SPAMS's held-out error at equal sparsity reached on {first['fraction']:g}"
                    f" of the patches: {row['time_ratio_to_spams_error']:.1f}x less time",
                    flush=True,
                )
    torch.set_num_threads(args.threads)
    return rows


def stream_child(n, batch, atoms):
    """Encode n patches streamed in batches; print the peak resident memory (MiB)."""
    from shrinkage.codes import active_fraction, encode_batches
    from shrinkage.data import natural_images, patches

    torch.set_num_threads(1)
    imgs = natural_images()
    rng = np.random.default_rng(0)
    D = rng.standard_normal((atoms, 256))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    D = torch.as_tensor(D, dtype=torch.float32)

    def gen():
        done = 0
        i = 0
        while done < n:
            m = min(batch, n - done)
            yield torch.as_tensor(patches(imgs, 16, n=m, seed=i), dtype=torch.float32)
            done += m
            i += 1

    nnz = 0.0
    t = time.perf_counter()
    for Z in encode_batches(gen(), D, "l1", 0.5, max_iter=30, tol=1e-3):
        nnz += active_fraction(Z) * len(Z)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"n": n, "peak_mib": peak, "time_s": dt, "active": nnz / n}))


def bench_stream(args):
    res = []
    for n in args.stream_n:
        cmd = [
            sys.executable,
            __file__,
            "--stream-child",
            str(n),
            "--stream-batch",
            str(args.stream_batch),
            "--stream-atoms",
            str(args.stream_atoms),
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"stream {n} patches: peak RSS {r['peak_mib']:.0f} MiB, {r['time_s']:.1f} s")
        res.append(r)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--atoms", type=int, default=1024)
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lars-samples", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--previous", action="store_true", help="also time the working-set FISTA (solver='fista')"
    )
    ap.add_argument("--plain", action="store_true", help="also time plain FISTA")
    ap.add_argument("--learn-train", type=int, default=20000)
    ap.add_argument("--learn-atoms", type=int, default=256)
    ap.add_argument("--learn-epochs", type=int, default=1)
    ap.add_argument("--learn-max-iter", type=int, default=200, help="encoder limit per batch")
    ap.add_argument("--learn-tol", type=float, default=1e-3)
    ap.add_argument("--stream-n", type=int, nargs="*", default=[10_000, 1_000_000])
    ap.add_argument("--stream-batch", type=int, default=10_000)
    ap.add_argument("--stream-atoms", type=int, default=256)
    ap.add_argument("--stream-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spams-samples", type=int, default=2000, help="rows encoded vs SPAMS")
    ap.add_argument("--spams-atoms", type=int, nargs="*", default=[256, 1024])
    ap.add_argument("--spams-threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument(
        "--spams-fractions",
        type=float,
        nargs="*",
        default=[0.25, 0.5, 0.625, 0.75, 0.875],
        help="ours also learns on these first fractions of the patches: time to SPAMS's error",
    )
    ap.add_argument(
        "--spams-rounds",
        type=int,
        default=3,
        help="interleaved timing rounds of SPAMS trainDL, our pass and the prefixes",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["encode", "learn", "stream", "spams", "spams-encode", "spams-learn"],
    )
    ap.add_argument("--out", default=None, help="JSON file for the numbers")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.samples, args.atoms, args.repeats, args.lars_samples = 100, 64, 1, 50
        args.learn_train, args.learn_atoms = 600, 32
        args.stream_n, args.stream_batch, args.stream_atoms = [2000], 1000, 32
        args.spams_samples, args.spams_atoms, args.spams_threads = 100, [32], [1]
        args.spams_fractions, args.spams_rounds = [0.5], 1
    if args.stream_child is not None:
        stream_child(args.stream_child, args.stream_batch, args.stream_atoms)
        return 0
    torch.set_num_threads(args.threads)
    # scikit-learn's BLAS (OpenBLAS) gets the same thread count: left at its default it
    # oversubscribes the shared cores and its timings swing 5x from run to run.
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    from shrinkage.codes import learn_dictionary

    report = {"threads": args.threads, "blas_threads": args.threads, "torch": torch.__version__}
    X = _patches(args.learn_train + 2 * args.samples, seed=0)
    Xtr, Xte, Xenc = (
        X[: args.learn_train],
        X[args.learn_train : args.learn_train + args.samples],
        X[args.learn_train + args.samples :],
    )
    if "learn" not in args.skip:
        report["learn"], _ = bench_learn(args, Xtr, Xte, args.lam)
    if "encode" not in args.skip:
        # The shared dictionary: 1024 atoms learned on the training patches (not timed).
        t = time.perf_counter()
        st = learn_dictionary(
            torch.as_tensor(Xtr[:8192], dtype=torch.float32),
            args.atoms,
            "l1",
            args.lam,
            batch_size=256,
            update="bcd",
            init="data",
            max_iter=100,
            tol=1e-2,
            n_epochs=1,
            learn_tol=0,
        )
        dt = time.perf_counter() - t
        print(f"({args.atoms}-atom dictionary learned in {dt:.1f} s, not timed)")
        D = st.D.double().numpy()
        report["encode"] = bench_encode(args, Xenc, D, args.lam)
    if "spams" not in args.skip:
        spams = _spams()
        if spams is None:
            report["spams"] = {"skipped": "spams not installed"}
        else:
            rng = np.random.default_rng(1)
            dicts = {}
            if "encode" not in args.skip:
                dicts[f"learned {len(D)}"] = D
            for k in [] if "spams-encode" in args.skip else args.spams_atoms:
                if k not in (len(d) for d in dicts.values()):
                    st = learn_dictionary(
                        torch.as_tensor(Xtr[:8192], dtype=torch.float32),
                        k,
                        "l1",
                        args.lam,
                        batch_size=256,
                        update="bcd",
                        init="data",
                        max_iter=100,
                        tol=1e-2,
                        n_epochs=1,
                        learn_tol=0,
                    )
                    dicts[f"learned {k}"] = st.D.double().numpy()
                dicts[f"random {k}"] = _unit_rows(rng, k, X.shape[1])
            Xs = Xenc[: args.spams_samples]
            report["spams"] = {}
            if "spams-encode" not in args.skip:
                report["spams"]["encode"] = bench_spams_encode(args, spams, Xs, dicts)
            if "spams-learn" not in args.skip:
                report["spams"]["learn"] = bench_spams_learn(args, spams, Xtr, Xte, args.lam)
    if "stream" not in args.skip:
        report["stream"] = bench_stream(args)
    if args.out:
        from shrinkage._io import write_json

        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
