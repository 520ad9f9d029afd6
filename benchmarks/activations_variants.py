"""Side levers of the issue-9 lever study: variants of CReLU and of its initialisation, each
trained with the recipe's optimiser against plain CReLU and ReLU on the same budget.

    python benchmarks/activations_variants.py --seeds 0,1,2 --out runs/act_variants   # ~6 min
    python benchmarks/activations_variants.py --depth 50 --width 300 --seeds 0,1 \\
        --variants crelu,smoothstep --out runs/act_variants50                        # ~4 min
    python benchmarks/activations_variants.py --quick --out runs/x                   # seconds

Variants (sparsity s, clipping m, every hidden layer; ``SparsityControl`` holds s):

- ``crelu``: CReLU at its edge of chaos (``edge_of_chaos("crelu", s, m=m)``); ``relu``: ReLU
  at its edge of chaos (sigma_w^2 = 2, sigma_b = 0);
- ``orthogonal``: CReLU with orthogonal weights scaled by sigma_w instead of Gaussian ones;
- ``ramp``: CReLU whose target sparsity moves from ``--ramp-from`` to s over the first
  ``--ramp-frac`` of the steps;
- ``smoothstep``: a C^1 clipped activation, m S((x - tau) / m) with S(t) = 3t^2 - 2t^3 on
  [0, 1] (0 below, m above): its derivative is continuous, so near rho = 1 the correlation map
  is 1 - C'(1)(1 - rho) + O((1 - rho)^2) and 1 - rho falls as 1/l with depth, where the
  kinks of CReLU's derivative add a (1 - rho)^(3/2) term and make it fall as 1/l^2 (Hayou et
  al., ICML 2019, for ReLU against smooth activations);
- ``jump``: min(x - tau + d, m) above tau, 0 below (JumpReLU-like, d = ``--jump``): the jump
  lowers the bias variance the edge of chaos needs (zero at a d of its own) but makes the
  forward map chaotic (two inputs' correlation settles below 1).

The edge-of-chaos constants of the last two come from ``shrinkage.activations.moments`` on the
function itself (sigma_w^2 = 1 / E[phi'^2], sigma_b^2 = q* - sigma_w^2 E[phi^2], q* = 1, tau
at the s quantile). Writes ``variants.json`` (every run: test accuracy per epoch, mean test
sparsity and its worst layer's distance to s, the fraction of units zero on every test image,
sigma_w^2, sigma_b^2; finished runs are read back), ``theory.json`` (1 - rho after 10 and 50
layers from two orthogonal inputs, by ``correlation_map``) and ``variants.png``, and prints the
table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import norm
from torch import nn

from shrinkage import data
from shrinkage._io import save_figure, write_json
from shrinkage.activations import (
    SparsityControl,
    correlation_map,
    edge_of_chaos,
    moments,
    unit_census,
)
from shrinkage.models import mlp
from shrinkage.thresholds import CReLU, ShiftedReLU

VARIANTS = ("relu", "crelu", "orthogonal", "ramp", "smoothstep", "jump")


class SmoothStep(CReLU):
    """m S((x - tau) / m), S(t) = 3t^2 - 2t^3 on [0, 1]: zero below tau, m above tau + m."""

    def _core(self, x, tau):
        u = ((x - tau) / self.m).clamp(0, 1)
        return self.m * u * u * (3 - 2 * u)


class Jump(CReLU):
    """min(x - tau + d, m) above tau, zero below: a jump of d at the threshold."""

    def __init__(self, tau, m, d):
        super().__init__(tau=tau, m=m)
        self.d = float(d)

    def _core(self, x, tau):
        return torch.where(x > tau, (x - tau + self.d).clamp(max=self.m), torch.zeros_like(x))


def _function(variant, tau, m, d):
    """The activation as a plain function of x with its kinks, for ``moments``."""
    if variant == "smoothstep":
        mod, kinks = SmoothStep(tau=tau, m=m), (tau, tau + m)
    else:
        mod, kinks = Jump(tau, m, d), (tau, tau + m - d)

    def fn(x):
        return mod._core(x, torch.as_tensor(tau, dtype=x.dtype))

    fn.kinks = kinks
    return fn


class Config(NamedTuple):
    """What ``shrinkage.models.mlp`` needs of an edge-of-chaos config (q* = 1)."""

    tau: float
    m: float | None
    sigma_w: float
    sigma_b: float
    module: object  # zero-argument factory of the activation module

    @property
    def input_mean_square(self) -> float:
        return (1.0 - self.sigma_b**2) / self.sigma_w**2


def config(variant, s, m, d=0.0) -> Config:
    """The variant's edge-of-chaos config at q* = 1; ValueError when the edge of chaos needs a
    negative bias variance."""
    if variant == "relu":  # ShiftedReLU at tau = 0 is ReLU, and ``unit_census`` counts it
        return Config(0.0, None, math.sqrt(2.0), 0.0, lambda: ShiftedReLU(tau=0.0))
    if variant in ("crelu", "orthogonal", "ramp"):
        cfg = edge_of_chaos("crelu", s, m=m)
        return Config(cfg.tau, cfg.m, cfg.sigma_w, cfg.sigma_b, cfg.module)
    tau = float(norm.ppf(s))
    _, e2, d2 = moments(_function(variant, tau, m, d), 1.0)
    sw2, sb2 = 1.0 / float(d2), 1.0 - float(e2) / float(d2)
    if sb2 < 0:
        raise ValueError(f"jump={d!r} needs sigma_b^2 = {sb2:.3f} < 0; use a smaller jump")
    if variant == "smoothstep":
        factory = lambda: SmoothStep(tau=tau, m=m)  # noqa: E731
    else:
        factory = lambda: Jump(tau, m, d)  # noqa: E731
    return Config(tau, m, math.sqrt(sw2), math.sqrt(sb2), factory)


def network(variant, depth, width, cfg):
    """``mlp`` at the config's edge of chaos; ``orthogonal``: hidden weights re-drawn
    orthogonal, scaled by sigma_w."""
    net = mlp(depth, width, cfg)
    if variant == "orthogonal":
        for lin in [mod for mod in net if isinstance(mod, nn.Linear)][:-1]:
            nn.init.orthogonal_(lin.weight, gain=cfg.sigma_w)
    return net


def evaluate(net, x, y, batch=2000):
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
            for i in range(0, len(x), batch)
        )
    net.train()
    return correct / len(x)


def train_one(a, variant, seed, x, y, xte, yte) -> dict:
    torch.manual_seed(seed)
    cfg = config(variant, a.sparsity, a.m, a.jump)
    net = network(variant, a.depth, a.width, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sparse = variant != "relu"
    start = a.ramp_from if variant == "ramp" else a.sparsity
    ctl = SparsityControl(net, start, momentum=0.1) if sparse else None
    steps = math.ceil(len(x) / a.batch_size)
    total, warm = a.epochs * steps, int(0.2 * steps)
    gen = torch.Generator().manual_seed(seed)
    curve, step, t0 = [], 0, time.perf_counter()
    for _ in range(a.epochs):
        for idx in torch.randperm(len(x), generator=gen).split(a.batch_size):
            # the recipe's schedule: linear warm-up for 0.2 epoch, then cosine to zero
            if step < warm:
                f = (step + 1) / warm
            else:
                f = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for g in opt.param_groups:
                g["lr"] = a.lr * f
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            if ctl is not None:
                if variant == "ramp":
                    done = min(1.0, step / (a.ramp_frac * total))
                    ctl.sparsity = start + (a.sparsity - start) * done
                ctl.step()
            step += 1
        curve.append(evaluate(net, xte, yte))
    census = unit_census(net, xte, batch=2000)
    per_layer = [c["zero"] for c in census]
    return {
        "variant": variant,
        "seed": seed,
        "test_acc": curve[-1],
        "curve": curve,
        "test_sparsity": float(np.mean(per_layer)),
        "worst_layer_error": max(abs(v - a.sparsity) for v in per_layer) if sparse else None,
        "dead_units": float(np.mean([c["dead"] for c in census])),
        "tau": cfg.tau,
        "m": cfg.m,
        "sigma_w2": cfg.sigma_w**2,
        "sigma_b2": cfg.sigma_b**2,
        "seconds": time.perf_counter() - t0,
    }


def theory(a, variants) -> list[dict]:
    """1 - rho after 10 and 50 layers from two orthogonal inputs (rho = 0), by the map."""
    rows = []
    for v in variants:
        c = config(v, a.sparsity, a.m, a.jump)
        act = {"relu": "relu", "crelu": "crelu"}.get(v) or _function(v, c.tau, c.m, a.jump)
        kw = {"tau": c.tau, "m": c.m} if v == "crelu" else {}
        rho, out = 0.0, {}
        for layer in range(1, 51):
            rho = float(correlation_map(act, rho, 1.0, c.sigma_w, c.sigma_b, **kw))
            if layer in (10, 50):
                out[f"one_minus_rho_{layer}"] = 1.0 - rho
        rows.append({"variant": v, "sigma_b2": c.sigma_b**2, **out})
    return rows


def summary(runs, variants) -> list[dict]:
    rows = []
    for v in variants:
        acc = [r["test_acc"] for r in runs if r["variant"] == v]
        dead = [r["dead_units"] for r in runs if r["variant"] == v]
        if acc:
            rows.append(
                {
                    "variant": v,
                    "seeds": len(acc),
                    "mean": float(np.mean(acc)),
                    "sd": float(np.std(acc)),
                    "dead_units": float(np.mean(dead)),
                }
            )
    return rows


def plot(rows, path):
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.bar(
        [r["variant"] for r in rows],
        [100 * r["mean"] for r in rows],
        yerr=[100 * r["sd"] for r in rows],
        color="tab:blue",
        alpha=0.8,
    )
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("CReLU variants at the same budget (mean, sd over seeds)", fontsize=9)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _check(a):
    for name in ("depth", "width", "epochs", "n_train", "batch_size"):
        v = getattr(a, name)
        if v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"--variants: unknown {bad}; known: {', '.join(VARIANTS)}")
    if not 0.5 <= a.sparsity < 1 or not 0 < a.ramp_from < 1:
        raise ValueError(
            f"--sparsity must be in [0.5, 1), --ramp-from in (0, 1); got "
            f"{a.sparsity}, {a.ramp_from}"
        )
    if not (a.m > 0 and a.lr > 0 and 0 < a.ramp_frac <= 1 and 0 <= a.jump < a.m):
        raise ValueError(
            f"need --m > 0, --lr > 0, --ramp-frac in (0, 1], 0 <= --jump < --m; "
            f"got {a.m}, {a.lr}, {a.ramp_frac}, {a.jump}"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0])
    p.add_argument("--sparsity", type=float, default=0.85)
    p.add_argument("--m", type=float, default=0.886, help="CReLU's clipping level")
    p.add_argument("--smooth-m", type=float, default=1.5, help="m of smoothstep and jump")
    p.add_argument("--jump", type=float, default=0.05)
    p.add_argument("--ramp-from", type=float, default=0.5)
    p.add_argument("--ramp-frac", type=float, default=0.5)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a tiny net on 2048 images (smoke test)")
    p.add_argument("--out", type=Path, default=Path("runs/act_variants"))
    a = p.parse_args(argv)
    if a.quick:
        # enough steps (32) for the control to settle after the ramp
        a.depth, a.width, a.n_train, a.epochs, a.batch_size = 3, 32, 2048, 1, 64
        a.ramp_frac = 0.25
    _check(a)
    torch.set_num_threads(a.threads)
    x, y = data.mnist("train")
    xte, yte = data.mnist("test")
    x, y = x[: a.n_train], y[: a.n_train]
    if a.quick:
        xte, yte = xte[:500], yte[:500]
    path = a.out / "variants.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    recipe = {
        k: getattr(a, k)
        for k in (
            "sparsity",
            "m",
            "smooth_m",
            "jump",
            "ramp_from",
            "ramp_frac",
            "depth",
            "width",
            "n_train",
            "epochs",
            "batch_size",
            "lr",
            "quick",
        )
    }
    runs = [r for r in runs if r.get("recipe") == recipe]
    for v in a.variants:
        for seed in a.seeds:
            if any(r["variant"] == v and r["seed"] == seed for r in runs):
                continue
            m = a.smooth_m if v in ("smoothstep", "jump") else a.m
            res = train_one(argparse.Namespace(**{**vars(a), "m": m}), v, seed, x, y, xte, yte)
            runs.append({**res, "recipe": recipe})
            write_json(path, runs)
            print(
                json.dumps({k: res[k] for k in ("variant", "seed", "test_acc", "dead_units")}),
                flush=True,
            )
    smooth = argparse.Namespace(**{**vars(a), "m": a.smooth_m})
    th = theory(a, [v for v in a.variants if v in ("relu", "crelu")])
    th += theory(smooth, [v for v in a.variants if v in ("smoothstep", "jump")])
    write_json(a.out / "theory.json", th)
    rows = summary(runs, a.variants)
    plot(rows, a.out / "variants.png")
    print("| variant | seeds | test acc (mean ± sd) | dead units |")
    print("| --- | ---: | --- | ---: |")
    for r in rows:
        print(
            f"| {r['variant']} | {r['seeds']} | {100 * r['mean']:.2f} ± {100 * r['sd']:.2f} "
            f"| {r['dead_units']:.3f} |"
        )
    for t in th:
        print(json.dumps(t))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
