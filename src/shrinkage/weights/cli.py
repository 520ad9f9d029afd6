r"""``shrinkage weights train|sweep``: sparse training of LeNets / a small ResNet on MNIST.

Examples::

    shrinkage weights train --model lenet5 --method st3 --sparsity 0.99 \
        --epochs 20 --seed 0 --out runs/x
    shrinkage weights sweep --model lenet5 --methods st3,gmp \
        --sparsities 0.98,0.99 --seeds 0,1 --out runs/s
    shrinkage weights finetune --checkpoint runs/dense/model.pt --model lenet5 \
        --sparsity 0.99 --epochs 2 --out runs/ft
"""

from __future__ import annotations

from dataclasses import asdict


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def _recipe_args(p) -> None:
    from .train import TrainConfig

    d = TrainConfig()
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"(default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help=f"SGD learning rate (default {d.lr})")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", default=d.schedule, help="cubic | linear | constant")
    p.add_argument("--prune-start", type=float, default=d.prune_start, help="fraction of steps")
    p.add_argument("--prune-end", type=float, default=d.prune_end, help="fraction of steps")
    p.add_argument("--scope", default=d.scope, help="global | layer")
    p.add_argument("--penalty", default=d.penalty, help="prox_ste operator (default l1)")
    p.add_argument(
        "--activation",
        default=None,
        help="relu (default) or NAME:SPARSITY with an edge-of-chaos init, e.g. cst:0.85 or "
        "crelu:0.85: sparse weights and sparse activations in one network",
    )
    p.add_argument(
        "--m-scale",
        type=float,
        default=d.m_scale,
        help=f"clipping level / largest safe level (default {d.m_scale})",
    )
    p.add_argument("--optimizer", default=d.optimizer, help="sgd (Nesterov) | adam")
    p.add_argument("--depth", type=int, default=d.depth, help="hidden layers of --model mlp")
    p.add_argument("--width", type=int, default=d.width, help="width of --model mlp")
    p.add_argument("--subset", type=int, default=None, help="use only the first N train images")
    p.add_argument("--test-subset", type=int, default=None, help="use only N test images")
    p.add_argument("--max-batches", type=int, default=None, help="cap on batches per epoch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser("weights", help="sparse training (ST-3 and relatives)")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = s.add_parser("train", help="train one sparse model on MNIST")
    t.add_argument("--model", default="lenet5", help="lenet5 | lenet_300_100 | resnet_small | mlp")
    t.add_argument(
        "--method",
        default="st3",
        help="st3 | st3sigma | hard_ste | soft_nograd | gmp | prox_ste | dense",
    )
    t.add_argument("--sparsity", type=float, default=0.99)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="runs/weights", help="output folder")
    _recipe_args(t)
    t.set_defaults(func=_train)

    w = s.add_parser("sweep", help="accuracy vs sparsity / MACs over methods, sparsities, seeds")
    w.add_argument("--model", default="lenet5", help="comma-separated model names")
    w.add_argument(
        "--methods",
        default="st3,st3sigma,gmp,hard_ste,soft_nograd",
        help="comma-separated; prox_ste:<penalty> allowed",
    )
    w.add_argument("--sparsities", default="0.9,0.95,0.98,0.99,0.995")
    w.add_argument("--seeds", default="0,1")
    w.add_argument("--out", default="runs/weights_sweep", help="output folder")
    _recipe_args(w)
    w.set_defaults(func=_sweep)
    _register_finetune(s)


def _register_finetune(s) -> None:
    from .finetune import FINETUNE_METHODS, FinetuneConfig

    d = FinetuneConfig()
    f = s.add_parser(
        "finetune", help="prune a trained dense model to a sparsity during a short fine-tune"
    )
    f.add_argument("--checkpoint", required=True, help="state_dict of the trained dense model")
    f.add_argument("--model", default=d.model, help="lenet5 | lenet_300_100 | resnet_small")
    f.add_argument("--method", default=d.method, help=" | ".join(FINETUNE_METHODS))
    f.add_argument("--sparsity", type=float, default=d.sparsity)
    f.add_argument("--epochs", type=int, default=d.epochs, help=f"(default {d.epochs})")
    f.add_argument("--lr", type=float, default=d.lr, help=f"SGD learning rate (default {d.lr})")
    f.add_argument("--batch-size", type=int, default=d.batch_size)
    f.add_argument("--momentum", type=float, default=d.momentum)
    f.add_argument("--weight-decay", type=float, default=d.weight_decay)
    f.add_argument(
        "--prune-end", type=float, default=d.prune_end, help="fraction of steps to reach s_f"
    )
    f.add_argument("--scope", default=d.scope, help="global | layer")
    f.add_argument("--evals-per-epoch", type=int, default=d.evals_per_epoch)
    f.add_argument("--seed", type=int, default=d.seed)
    f.add_argument("--subset", type=int, default=None, help="use only the first N train images")
    f.add_argument("--test-subset", type=int, default=None, help="use only N test images")
    f.add_argument("--max-batches", type=int, default=None, help="cap on batches per epoch")
    f.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument("--out", default="runs/finetune", help="output folder")
    f.set_defaults(func=_finetune)


def _finetune(args) -> int:
    from .finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        checkpoint=args.checkpoint,
        model=args.model,
        method=args.method,
        sparsity=args.sparsity,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        prune_end=args.prune_end,
        scope=args.scope,
        evals_per_epoch=args.evals_per_epoch,
        subset=args.subset,
        test_subset=args.test_subset,
        max_batches=args.max_batches,
        threads=args.threads,
        progress=not args.no_progress,
        out=args.out,
    ).check()
    res = finetune(cfg)
    print(res["report_table"])
    print("fine-tune epoch  test acc  sparsity")
    for c in res["curve"]:
        print(f"{c['epoch']:>15g}  {100 * c['test_acc']:7.2f}%  {c['sparsity']:.4f}")
    print(f"wrote {args.out}/(config.json, result.json, report.txt, model.pt)")
    return 0


def _config(args, **extra):
    from .train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        prune_start=args.prune_start,
        prune_end=args.prune_end,
        scope=args.scope,
        penalty=args.penalty,
        activation=args.activation,
        m_scale=args.m_scale,
        optimizer=args.optimizer,
        depth=args.depth,
        width=args.width,
        subset=args.subset,
        test_subset=args.test_subset,
        max_batches=args.max_batches,
        threads=args.threads,
        progress=not args.no_progress,
        **extra,
    ).check()


def _train(args) -> int:
    from .train import train_run

    cfg = _config(
        args,
        model=args.model,
        method=args.method,
        sparsity=args.sparsity,
        seed=args.seed,
        out=args.out,
    )
    res = train_run(cfg)
    print(res["report_table"])
    from .effective import format_effective_macs

    print("MACs with zero weights and zero activations skipped (test set, per image):")
    print(format_effective_macs(res["effective_macs"]))
    print(
        f"test accuracy {100 * res['test_acc']:.2f}% at sparsity {res['sparsity']:.4f}; "
        f"wrote {args.out}/(history.json, result.json, report.txt, model.pt, curves.png)"
    )
    return 0


def _sweep(args) -> int:
    from .train import sweep

    base = _config(args)
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = sweep(
        asdict(base), models, methods, _floats(args.sparsities), _ints(args.seeds), args.out
    )
    print(f"{len(rows)} runs summarised in {args.out}/sweep.csv and {args.out}/*_acc_vs_*.png")
    return 0
