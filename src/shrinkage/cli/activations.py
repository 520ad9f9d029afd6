"""``shrinkage activations eoc|plot|train|reproduce``: edge-of-chaos configs, their maps, and
deep sparse networks trained on MNIST."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..activations import edge_of_chaos
from ..activations.plots import plot_maps, plot_theory_vs_simulation
from ..experiments.activations import markdown_table, reproduce, train_run

_NAMES = (
    "relu",
    "shifted_relu",
    "soft_threshold",
    "clipped_relu",
    "crelu",
    "clipped_soft_threshold",
    "cst",
    "tanh",
    "erf",
)


def _m_arg(text):
    if text in ("safe", "none", "None"):
        return None if text.lower() == "none" else "safe"
    return float(text)


def register(sub) -> None:
    p = sub.add_parser("activations", help="edge-of-chaos init for sparse activations")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    eoc = s.add_parser("eoc", help="print the edge-of-chaos config and write its plots")
    _common(eoc)
    eoc.add_argument("--out", default="runs/activations_eoc", help="folder for the plots")
    eoc.add_argument("--depth", type=int, default=100, help="layers simulated (default 100)")
    eoc.add_argument("--width", type=int, default=300, help="simulated width (default 300)")
    eoc.add_argument("--nets", type=int, default=4, help="simulated networks (default 4)")
    eoc.add_argument("--seed", type=int, default=0)
    eoc.add_argument("--no-plots", action="store_true", help="only print the config")
    eoc.set_defaults(func=_eoc)

    plot = s.add_parser("plot", help="V(q) for several m, V'(q*) and V''(q*) against m")
    _common(plot)
    plot.add_argument("--out", default="runs/activations_eoc", help="folder for the plots")
    plot.set_defaults(func=_plot)

    tr = s.add_parser("train", help="train an edge-of-chaos MLP on MNIST")
    _common(tr)
    tr.add_argument("--depth", type=int, default=100)
    tr.add_argument("--width", type=int, default=128)
    tr.add_argument("--epochs", type=float, default=1.0)
    tr.add_argument(
        "--m-scale",
        type=float,
        default=None,
        help="with --m safe: m = m_scale * safe m (default 0.7)",
    )
    tr.add_argument("--optimizer", choices=("adam", "sgd"), default=None)
    tr.add_argument("--lr", type=float, default=None)
    tr.add_argument("--batch-size", type=int, default=None)
    tr.add_argument("--n-train", type=int, default=None, help="train on the first N examples")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    tr.add_argument("--quick", action="store_true", help="tiny smoke run (depth 8, width 32)")
    tr.add_argument("--out", default="runs/activations_train", help="folder for JSON and plot")
    tr.add_argument("--resume", action="store_true", help="continue the run kept in --out")
    tr.set_defaults(func=_train)

    rep = s.add_parser("reproduce", help="the results table: ReLU, unclipped, clipped (MNIST)")
    rep.add_argument("--depth", type=int, default=50)
    rep.add_argument("--width", type=int, default=128)
    rep.add_argument("--epochs", type=float, default=3.0)
    rep.add_argument("--lr", type=float, default=3e-4)
    rep.add_argument("--n-train", type=int, default=None, help="train on the first N examples")
    rep.add_argument("--out", default="runs/activations_reproduce", help="folder for results")
    rep.set_defaults(func=_reproduce)


def _common(p):
    p.add_argument("--activation", default="cst", help=f"one of {', '.join(_NAMES)}")
    p.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help="target fraction of zeros in (0, 1) (not for relu, tanh, erf)",
    )
    p.add_argument("--q-star", type=float, default=1.0, help="fixed point q* (default 1)")
    p.add_argument(
        "--m",
        type=_m_arg,
        default="safe",
        help="clipping level: 'safe' (default), a number, or none",
    )


def _cfg(args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = edge_of_chaos(args.activation, args.sparsity, q_star=args.q_star, m=args.m)
    for w in caught:
        print(f"warning: {w.message}")
    return cfg


def _eoc(args) -> int:
    cfg = _cfg(args)
    print(cfg)
    if args.no_plots:
        return 0
    out = Path(args.out)
    for path in plot_maps(cfg, out):
        print(f"wrote {path}")
    path = plot_theory_vs_simulation(
        cfg,
        out / "theory_vs_simulation.png",
        depth=args.depth,
        width=args.width,
        n_nets=args.nets,
        seed=args.seed,
    )
    print(f"wrote {path}")
    return 0


def _plot(args) -> int:
    cfg = _cfg(args)
    for path in plot_maps(cfg, Path(args.out)):
        print(f"wrote {path}")
    return 0


def _train(args) -> int:
    if args.m_scale is not None and args.m != "safe":
        raise ValueError(
            f"--m-scale scales the safe clipping level; with an explicit --m {args.m} it would "
            "be ignored: give one of them"
        )
    res = train_run(
        args.activation,
        args.sparsity,
        depth=args.depth,
        width=args.width,
        epochs=args.epochs,
        m=args.m,
        m_scale=0.7 if args.m_scale is None else args.m_scale,
        q_star=args.q_star,
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        n_train=args.n_train,
        seed=args.seed,
        threads=args.threads,
        out=args.out,
        quick=args.quick,
        resume=args.resume,
    )
    print(f"test accuracy {res['test_acc']:.4f}, train accuracy {res['train_acc']:.4f}")
    print(
        f"activation sparsity: test {res['test_sparsity_mean']:.4f}, "
        f"train {res['train_sparsity_mean']:.4f} (target {res['target_sparsity']:.4f})"
    )
    if res["diverged"]:
        print(f"diverged: the loss was not finite at step {res['diverged_at_step']}")
    print(f"wrote {Path(args.out) / 'result.json'} and {Path(args.out) / 'train.png'}")
    return 0


def _reproduce(args) -> int:
    summary = reproduce(
        args.out,
        depth=args.depth,
        width=args.width,
        epochs=args.epochs,
        lr=args.lr,
        n_train=args.n_train,
    )
    print(markdown_table(summary))
    print(f"wrote {Path(args.out) / 'summary.json'}")
    return 0
