"""Speed of the activations pillar's Gaussian maps.

    python benchmarks/activations_speed.py [--out runs/benchmarks/activations_speed.json]

1. Closed-form moments (E phi, E phi^2, E phi'^2, V', V'') against the library's piecewise
   Gauss-Legendre quadrature and a Monte Carlo estimate on the same grid of q: max relative
   error (against the closed form) and the time ratio to the closed form (the anchor).
2. edge_of_chaos with the safe m (target: under 0.1 s) and safe_clip alone.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from shrinkage._io import write_json
from shrinkage.activations import edge_of_chaos, safe_clip
from shrinkage.activations._gauss import _all, resolve

CASES = [
    ("crelu", 1.036, 1.84),
    ("cst", 1.44, 1.33),
    ("shifted_relu", 1.036, None),
    ("soft_threshold", 1.44, None),
    ("erf", 0.0, None),
]


def _best(fn, repeat=5):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def _monte_carlo(spec, q, tau, m, n=100_000, seed=0):
    z = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = (torch.as_tensor(np.sqrt(q))[:, None] * z[None, :]).requires_grad_(True)
    y = spec.core(x, tau, m)
    (dy,) = torch.autograd.grad(y.sum(), x)
    y = y.detach()
    se = (y**2).std(1).numpy() / np.sqrt(n)
    return y.mean(1).numpy(), (y**2).mean(1).numpy(), (dy**2).mean(1).numpy(), se


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="optional JSON path for the numbers")
    ap.add_argument("--points", type=int, default=200, help="size of the q grid (default 200)")
    ap.add_argument("--quick", action="store_true", help="8 q points, 2k draws: a smoke run")
    args = ap.parse_args(argv)
    draws = 2000 if args.quick else 100_000
    if args.quick:
        args.points = 8
    torch.set_num_threads(1)
    q = np.geomspace(0.05, 20.0, args.points)
    rows = []
    print(f"q grid: {args.points} points in [0.05, 20]; times are best of 5")
    print(
        f"{'activation':16s} {'closed ms':>10s} {'quad/closed':>12s} {'quad max rel err':>17s} "
        f"{'MC/closed':>10s} {'MC rel err*':>15s} {'MC max z':>8s}"
    )
    for name, tau, m in CASES:
        spec, tau, m = resolve(name, tau, m)
        t_c, closed = _best(lambda: _all(spec, q, tau, m, "closed"))  # noqa: B023
        t_q, quad = _best(lambda: _all(spec, q, tau, m, "quad"))  # noqa: B023
        t_m, mc = _best(lambda: _monte_carlo(spec, q, tau, m, n=draws), repeat=1)  # noqa: B023

        def rel(a, b):
            return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))

        err_q = max(rel(quad[k], closed[k]) for k in (1, 2, 3, 4))
        big = q >= 0.5  # below, E phi^2 is ~1e-7 and 1e5 draws see almost no nonzero
        err_m = max(rel(mc[k][big], closed[k][big]) for k in (1, 2))
        z_m = float(np.max(np.abs(mc[1] - closed[1])[big] / mc[3][big]))
        rows.append(
            {
                "activation": name,
                "closed_s": t_c,
                "quad_over_closed": t_q / t_c,
                "quad_max_rel_err": err_q,
                "mc_over_closed": t_m / t_c,
                "mc_max_rel_err_q_ge_0.5": err_m,
                "mc_max_z_second_moment": z_m,
            }
        )
        print(
            f"{name:16s} {1e3 * t_c:10.3f} {t_q / t_c:12.1f} {err_q:17.2e} {t_m / t_c:10.0f} "
            f"{err_m:15.2e} {z_m:8.2f}"
        )
    print(
        "* Monte Carlo with 1e5 draws per q, over q >= 0.5: max relative error of E phi^2 and"
        " E phi'^2; 'max z' = max |MC - closed| / standard error of E phi^2"
    )
    print("\nedge_of_chaos with the safe m (target < 0.1 s):")
    eoc = []
    for name, s in (("crelu", 0.7), ("crelu", 0.85), ("cst", 0.7), ("cst", 0.85)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_e, cfg = _best(lambda: edge_of_chaos(name, s), repeat=3)  # noqa: B023
            t_s, _ = _best(lambda: safe_clip(name, s), repeat=3)  # noqa: B023
        eoc.append(
            {
                "activation": name,
                "sparsity": s,
                "m_safe": cfg.m,
                "edge_of_chaos_s": t_e,
                "safe_clip_s": t_s,
                "under_0.1s": t_e < 0.1,
            }
        )
        print(
            f"  {name:6s} s={s:.2f}: m_safe = {cfg.m:.6f}, edge_of_chaos {t_e:.3f} s "
            f"(safe_clip {t_s:.3f} s) {'OK' if t_e < 0.1 else 'SLOW'}"
        )
    if args.out:
        write_json(args.out, {"moments": rows, "edge_of_chaos": eoc})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
