"""Why clipped sparse activations train slowly at depth: one-epoch probes and correlations.

    python benchmarks/activations_probe.py [--correlations | --gain] [--out runs/act/probe.json]
    python benchmarks/activations_probe.py --quick    # every mode at tiny sizes, seconds

Trains each configuration of ``PROBES`` (depth 50, width 300, one MNIST epoch, the default
recipe of :func:`shrinkage.experiments.activations.train_run`) and prints test accuracy and
measured activation sparsity. ``--correlations`` prints instead, without training, 1 - rho
after 50 layers of the correlation map at the edge of chaos from rho^1 = 0, 0.5 and 0.9.
``--gain`` prints, without training, the backward gain at initialisation of each
configuration of ``GAINS`` (:func:`gradient_gain`, the table of ``docs/results.md``).
``--signal`` prints, without training, how much of each hidden layer's output still depends
on the input at initialisation (:func:`input_signal`: ReLU against CReLU and CST at 85 %,
the recipe's m, at ``--depth`` and ``--width``), and how much the logits vary across images.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shrinkage._io import write_json
from shrinkage.activations import EdgeOfChaosWarning, edge_of_chaos, propagate, safe_clip
from shrinkage.data import mnist
from shrinkage.experiments.activations import train_run
from shrinkage.models.mlp import hidden_layers, mlp

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


def probes(width, depth, epochs, rows=None, **train_kw):
    out = []
    for act, s, ms, lr in [PROBES[i] for i in rows] if rows else PROBES:
        kw = {} if ms is None else {"m": f"{ms * safe_clip(act, s):.6g}", "control": 0.0}
        r = train_run(
            act, s, depth=depth, width=width, epochs=epochs, lr=lr, progress=False, **kw, **train_kw
        )
        row = dict(
            activation=act,
            sparsity=s,
            m_scale=ms,
            lr=lr,
            test_acc=r["test_acc"],
            test_sparsity=r["test_sparsity_mean"],
        )
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def gradient_gain(
    activation,
    sparsity=None,
    *,
    m_scale=1.0,
    depth=100,
    width=128,
    seeds=(0, 1, 2),
    n_inputs=64,
    q_star=1.0,
) -> dict:
    """Backward gain at initialisation on MNIST test images: the mean per-layer log growth of the
    loss gradient w.r.t. the pre-activations, (1/(L-1)) ln(|dL/dh^1| / |dL/dh^L|), and the mean
    pre-activation variance, per seed. 0 is the edge of chaos; > 0 explodes towards the input."""
    x, y = mnist("test")
    x, y = x[:n_inputs], y[:n_inputs]
    gains, qs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeOfChaosWarning)
        cfg = edge_of_chaos(activation, sparsity, q_star=q_star)
        if cfg.m is not None:
            cfg = edge_of_chaos(activation, sparsity, q_star=q_star, m=cfg.m * m_scale)
    for seed in seeds:
        torch.manual_seed(seed)
        net = mlp(depth, width, cfg)
        hs = []

        def keep(mod, inp, out, hs=hs):
            out.retain_grad()
            hs.append(out)

        hooks = [h.register_forward_hook(keep) for h in hidden_layers(net)]
        nn.functional.cross_entropy(net(x), y).backward()
        for h in hooks:
            h.remove()
        g = [float(h.grad.norm()) for h in hs]
        gains.append(math.log(g[0] / g[-1]) / (len(g) - 1))
        qs.append(float(np.mean([float(h.detach().pow(2).mean()) for h in hs])))
    return {
        "activation": cfg.activation,
        "sparsity": cfg.sparsity,
        "m": cfg.m,
        "m_scale": m_scale,
        "log_gain_per_layer": gains,
        "mean_q": qs,
    }


def input_signal(
    activation, sparsity, depth, width, seeds=(0, 1, 2), n_inputs=512, q_star=1.0
) -> dict:
    """At initialisation, on MNIST test images: per hidden layer the share of its mean square
    that varies across images, mean_units Var_x h / mean_units E_x h^2 (1 - that share is
    the part every image gets alike: the correlation map's pull towards rho = 1 plus the
    biases), and the logits' standard deviation across images; means over seeds. The
    network is ``models.mlp`` at the edge of chaos with the recipe's m (``m="auto"``, chosen
    at q* = 1) and its inputs scaled to q*: a ``q_star`` other than 1 keeps that m, so it is
    the same as a smaller m / sqrt(q*) (the homogeneity of CReLU and CST)."""
    x, _ = mnist("test")
    x = x[:n_inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeOfChaosWarning)
        if sparsity is None:
            cfg = edge_of_chaos(activation)
        else:
            cfg = edge_of_chaos(activation, sparsity, m="auto", depth=depth, width=width)
            if q_star != 1.0:
                cfg = edge_of_chaos(activation, sparsity, q_star=q_star, m=cfg.m)
    shares, logit_sd = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        net = mlp(depth, width, cfg)
        hs = []
        hooks = [
            h.register_forward_hook(lambda m, i, o, hs=hs: hs.append(o)) for h in hidden_layers(net)
        ]
        with torch.no_grad():
            out = net(x)
        for h in hooks:
            h.remove()
        shares.append([float((h - h.mean(0)).pow(2).mean() / h.pow(2).mean()) for h in hs])
        logit_sd.append(float(out.std(0).mean()))
    return {
        "activation": cfg.activation,
        "sparsity": sparsity,
        "m": cfg.m,
        "q_star": cfg.q_star,
        "input_share_per_layer": np.mean(shares, axis=0).tolist(),
        "logit_sd_across_inputs": float(np.mean(logit_sd)),
    }


def signals(width, depth, seeds, q_stars=()) -> list[dict]:
    rows = []
    marks = sorted({0, depth // 4, depth // 2, 3 * depth // 4, depth - 1})
    print(f"input-dependent share of the mean square at layers {[i + 1 for i in marks]}")
    todo = [("relu", None, 1.0), ("crelu", 0.85, 1.0), ("cst", 0.85, 1.0)]
    todo += [("crelu", 0.85, q) for q in q_stars if q != 1.0]
    for act, s, q in todo:
        r = input_signal(act, s, depth, width, seeds, q_star=q)
        share = r["input_share_per_layer"]
        print(
            f"{r['activation']:24s} s={s} q*={q:g}: "
            + " ".join(f"{share[i]:.4f}" for i in marks)
            + f"; logit sd across images {r['logit_sd_across_inputs']:.4f}",
            flush=True,
        )
        rows.append(r)
    return rows


# (activation, sparsity, m as a fraction of the safe m) for --gain
GAINS = [
    *[(a, s, f) for s in (0.85, 0.7) for a in ("cst", "crelu") for f in (0.5, 0.7, 0.85, 1.0)],
    ("relu", None, 1.0),
]


def gains(width, depth, seeds, table=GAINS):
    rows = []
    for act, s, ms in table:
        r = gradient_gain(act, s, m_scale=ms, depth=depth, width=width, seeds=seeds)
        g = np.array(r["log_gain_per_layer"])
        rows.append(r)
        print(
            f"{r['activation']:24s} s={r['sparsity']} m/safe={ms}: log gain per layer "
            f"{g.mean():+.3f} +- {g.std(ddof=1) if len(g) > 1 else 0.0:.3f}, "
            f"mean q {np.mean(r['mean_q']):.2f}",
            flush=True,
        )
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--correlations", action="store_true")
    p.add_argument("--gain", action="store_true", help="backward gain at init (GAINS)")
    p.add_argument("--signal", action="store_true", help="input-dependent share at init")
    p.add_argument(
        "--q-stars",
        type=float,
        nargs="*",
        default=[],
        help="--signal: also CReLU 0.85 at these q* with the q* = 1 recipe's m kept",
    )
    p.add_argument("--seeds", type=int, default=5, help="--gain, --signal: seeds per row")
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--rows", type=int, nargs="+", default=None, help="indices into PROBES")
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true", help="every mode at tiny sizes: a smoke run")
    a = p.parse_args(argv)
    if a.quick:
        res = {
            "correlations": correlations(depth=5),
            "probes": probes(32, 8, 0.2, rows=[0, 5], n_train=256, n_eval=200),
            "gain": gains(64, 4, range(2), table=GAINS[:1] + GAINS[-1:]),
            "signal": signals(32, 4, range(1), q_stars=(4.0,)),
        }
    elif a.signal:
        res = signals(a.width, a.depth, range(a.seeds), a.q_stars)
    elif a.gain:
        res = gains(a.width, a.depth, range(a.seeds))
    elif a.correlations:
        res = correlations(a.depth)
    else:
        res = probes(a.width, a.depth, a.epochs, a.rows)
    if a.out:
        write_json(Path(a.out), res)


if __name__ == "__main__":
    main()
