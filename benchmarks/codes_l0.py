"""How well each start minimises the l0 energy, and the matched-error table with continuation.

    python benchmarks/codes_l0.py start [--patches 20000] [--out runs/codes/l0_start.json]
    python benchmarks/codes_l0.py start --quick      # smoke run, seconds
    python benchmarks/codes_l0.py reeval runs/codes/compare256_relax [--continuation 4]

``start``: one CEL0 dictionary (256 atoms, one epoch of whitened 16x16 patches); held-out
l0 energy, relative error and active fraction of l0 codes from zero (hard thresholding),
with lam continuation, and from the CEL0 relaxation, at three common thresholds.

``reeval``: the held-out codes of the dictionaries a ``shrinkage codes compare`` run saved
(``D_<penalty>_<atoms>_<threshold>.npy``), again with lam continuation (l0 from its
relaxation, as in the run), and the active fraction each penalty needs at matched errors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from shrinkage._io import write_json
from shrinkage.codes import active_fraction, encode, learn_dictionary, objective, relative_error
from shrinkage.experiments.codes import (
    RELAXATIONS,
    _interp_af,
    evaluate,
    lam_from_threshold,
    load_patches,
)


def start(args):
    Xtr, Xte = load_patches(args.patches, args.test, args.size, 0)
    st = learn_dictionary(
        torch.as_tensor(Xtr, dtype=torch.float32),
        args.atoms,
        "cel0",
        lam_from_threshold("cel0", 0.5),
        update="bcd",
        init="data",
        resample_every=50,
        n_epochs=1,
        learn_tol=0,
    )
    D, Xte = st.D.double().numpy(), np.asarray(Xte, dtype=np.float64)
    rows = []
    print("threshold  start          l0 energy  rel. error  active  seconds")
    for thr in (0.35, 0.5, 0.7):
        lam = float(lam_from_threshold("l0", thr))
        for name, kw in (
            ("zero", {}),
            ("continuation", {"continuation": 4}),
            ("relaxation", {"relaxation": "cel0"}),
        ):
            t = time.perf_counter()
            Z = encode(Xte, D, "l0", lam, max_iter=1000, tol=1e-4, **kw)
            sec = time.perf_counter() - t
            row = dict(
                threshold=thr,
                start=name,
                energy=float(objective(Xte, D, Z, "l0", lam)),
                relative_error=float(relative_error(Xte, D, Z)),
                active_fraction=float(active_fraction(Z)),
                seconds=sec,
            )
            rows.append(row)
            print(
                f"{thr:9.2f}  {name:13s}  {row['energy']:9.4f}  {row['relative_error']:10.3f}"
                f"  {100 * row['active_fraction']:5.2f} %  {sec:7.1f}"
            )
    return rows


def reeval(args):
    folder = Path(args.folder)
    cfg = json.loads((folder / "compare.json").read_text())["config"]
    _, Xte = load_patches(cfg["n_patches"], cfg["n_test"], cfg["size"], cfg["seed"])
    Xte = np.asarray(Xte, dtype=np.float64)
    rows = []
    for k in cfg["atoms"]:
        for pen in cfg["penalties"]:
            for thr in cfg["thresholds"]:
                D = np.load(folder / f"D_{pen.replace('/', '')}_{k}_{thr}.npy")
                lam = float(lam_from_threshold(pen, thr))
                kw = (
                    {"relaxation": RELAXATIONS[pen]}
                    if cfg.get("relax") and pen in RELAXATIONS
                    else {}
                )
                m = evaluate(
                    Xte, D, pen, lam, max_iter=1000, tol=1e-4, continuation=args.continuation, **kw
                )
                m.update(penalty=pen, n_atoms=k, threshold=thr, lam=lam)
                rows.append(m)
                print(
                    f"{pen:5s} {k:5d} {thr:5.2f}  rel. error {m['relative_error']:.3f}"
                    f"  active {100 * m['active_fraction']:.2f} %",
                    flush=True,
                )
    matched = []
    for k in cfg["atoms"]:
        for e in args.errors:
            entry = {"n_atoms": k, "relative_error": e}
            for pen in cfg["penalties"]:
                entry[pen] = _interp_af([r for r in rows if r["penalty"] == pen], e)
            for pen in cfg["penalties"]:
                if pen != "l1" and entry.get("l1") and entry[pen]:
                    entry[f"l1_over_{pen}"] = entry["l1"] / entry[pen]
            matched.append(entry)
            print(entry)
    return {"rows": rows, "matched": matched}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("start")
    s.add_argument("--patches", type=int, default=20000)
    s.add_argument("--test", type=int, default=2000)
    s.add_argument("--atoms", type=int, default=256)
    s.add_argument("--size", type=int, default=16, help="patch side")
    s.add_argument("--quick", action="store_true", help="12 atoms on 400 6x6 patches: a smoke run")
    r = sub.add_parser("reeval")
    r.add_argument("folder")
    r.add_argument("--continuation", type=int, default=4)
    r.add_argument("--errors", type=float, nargs="+", default=[0.35, 0.40, 0.45, 0.49])
    for q in (s, r):
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--out", default=None, help="JSON of the numbers printed")
    args = p.parse_args(argv)
    if getattr(args, "quick", False):
        args.patches, args.test, args.atoms, args.size = 400, 64, 12, 6
    torch.set_num_threads(args.threads)
    res = start(args) if args.what == "start" else reeval(args)
    if args.out:
        write_json(Path(args.out), res)


if __name__ == "__main__":
    main()
