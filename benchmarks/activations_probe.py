"""Why clipped sparse activations train slowly at depth: one-epoch probes and correlations.

    python benchmarks/activations_probe.py [--correlations] [--out runs/act/probe.json]

Trains each configuration of ``PROBES`` (depth 50, width 300, one MNIST epoch, the default
recipe of :func:`shrinkage.experiments.activations.train_run`) and prints test accuracy and
measured activation sparsity. ``--correlations`` prints instead, without training, 1 - rho
after 50 layers of the correlation map at the edge of chaos from rho^1 = 0, 0.5 and 0.9.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shrinkage.activations import edge_of_chaos, propagate

# (activation, sparsity, m as a fraction of the safe m, Adam lr)
PROBES = [
    ("crelu", 0.85, 0.85, 3e-4),
    ("crelu", 0.85, 0.85, 1e-3),
    ("crelu", 0.85, 1.0, 3e-4),
    ("crelu", 0.85, 0.6, 1e-3),
    ("cst", 0.85, 0.85, 3e-4),
    ("relu", None, None, 3e-4),
]
CORRELATIONS = [
    ("relu", None, None),
    ("crelu", 0.7, 0.7),
    ("crelu", 0.85, 0.85),
    ("crelu", 0.85, 0.5),
    ("cst", 0.85, 0.85),
]


def config(act, s, m_scale):
    cfg = edge_of_chaos(act, s)
    return cfg if cfg.m is None else edge_of_chaos(act, s, m=cfg.m * m_scale)


def correlations(depth=50):
    rows = []
    for act, s, ms in CORRELATIONS:
        cfg = config(act, s, ms)
        gaps = []
        for r0 in (0.0, 0.5, 0.9):
            rho = propagate(
                act, cfg.q_star, depth + 1, cfg.sigma_w, cfg.sigma_b, cfg.tau, cfg.m, rho0=r0
            )["rho"]
            gaps.append(float(1.0 - rho[depth]))
        rows.append(dict(activation=act, sparsity=s, m_scale=ms, one_minus_rho=gaps))
        print(
            f"{act:6s} s={s} m/safe={ms}: 1 - rho^{depth} from 0 / 0.5 / 0.9 = "
            + " / ".join(f"{g:.4f}" for g in gaps)
        )
    return rows


def probes(width, depth, epochs, rows=None):
    from shrinkage.experiments.activations import train_run

    rows = []
    for act, s, ms, lr in [PROBES[i] for i in rows] if rows else PROBES:
        kw = {} if ms is None else {"m_scale": ms}
        r = train_run(act, s, depth=depth, width=width, epochs=epochs, lr=lr, progress=False, **kw)
        row = dict(
            activation=act,
            sparsity=s,
            m_scale=ms,
            lr=lr,
            test_acc=r["test_acc"],
            test_sparsity=r["test_sparsity_mean"],
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--correlations", action="store_true")
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--rows", type=int, nargs="+", default=None, help="indices into PROBES")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    res = correlations(a.depth) if a.correlations else probes(a.width, a.depth, a.epochs, a.rows)
    if a.out:
        from shrinkage._io import write_json

        write_json(Path(a.out), res)


if __name__ == "__main__":
    main()
