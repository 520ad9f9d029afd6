r"""``shrinkage weights train|sweep|finetune``: sparse training of LeNets / a small ResNet on
MNIST, and pruning a trained dense model during a short fine-tune.

Examples::

    shrinkage weights train --model lenet5 --method st3 --sparsity 0.99 \
        --epochs 20 --seed 0 --out runs/x
    shrinkage weights sweep --model lenet5 --methods st3,gmp \
        --sparsities 0.98,0.99 --seeds 0,1 --out runs/s
    shrinkage weights finetune --checkpoint runs/dense/model.pt --model lenet5 \
        --sparsity 0.99 --epochs 2 --out runs/ft

The options are generated from the fields of
``TrainConfig`` (train, sweep) and
``FinetuneConfig`` (finetune), whose defaults they take.
"""

from __future__ import annotations

import sys

from ..experiments.finetune import FinetuneConfig, finetune
from ..experiments.recipe import comma_list
from ..experiments.weights import TrainConfig, sweep, train_run
from ..weights import format_effective_macs

# A sweep's grid replaces these fields of the recipe.
# penalty too: a sweep names it per method (prox_ste:<penalty>); a --penalty of its own
# was checked against the default method and so could never be used
_GRID = ("model", "method", "sparsity", "seed", "out", "penalty")


def register(sub) -> None:
    p = sub.add_parser("weights", help="sparse training (ST-3 and relatives)")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = s.add_parser("train", help="train one sparse model on MNIST")
    TrainConfig.add_arguments(t, defaults={"out": "runs/weights"})
    t.add_argument(
        "--resume", action="store_true", help="continue the interrupted run kept in --out"
    )
    t.set_defaults(func=_train)

    w = s.add_parser("sweep", help="accuracy vs sparsity / MACs over methods, sparsities, seeds")
    names, numbers, ints = comma_list(str), comma_list(float), comma_list(int)
    w.add_argument("--model", type=names, default=("lenet5",), help="comma-separated names")
    w.add_argument(
        "--methods",
        type=names,
        default=("st3", "st3sigma", "gmp", "hard_ste", "soft_nograd"),
        help="comma-separated; prox_ste:<penalty> allowed",
    )
    w.add_argument("--sparsities", type=numbers, default=(0.9, 0.95, 0.98, 0.99, 0.995))
    w.add_argument("--seeds", type=ints, default=(0, 1))
    w.add_argument("--out", default="runs/weights_sweep", help="output folder")
    TrainConfig.add_arguments(w, skip=_GRID)
    w.set_defaults(func=_sweep)

    f = s.add_parser(
        "finetune", help="prune a trained dense model to a sparsity during a short fine-tune"
    )
    FinetuneConfig.add_arguments(f, defaults={"out": "runs/finetune"})
    f.add_argument("--resume", action="store_true", help="continue the run kept in --out")
    f.set_defaults(func=_finetune)


def _train(args) -> int:
    res = train_run(TrainConfig.from_args(args).check(), resume=args.resume)
    print(res["report_table"])
    print("MACs with zero weights and zero activations skipped (test set, per image):")
    print(format_effective_macs(res["effective_macs"]))
    print(
        f"{'test' if res['eval_split'] == 'test' else 'validation'} accuracy "
        f"{100 * res['test_acc']:.2f}% at sparsity {res['sparsity']:.4f}; "
        f"wrote {args.out}/(history.json, result.json, report.txt, model.pt, curves.png)"
    )
    if res["empty_layers"]:
        print(
            f"warning: layer(s) {', '.join(res['empty_layers'])} have no weight left: the "
            "network is disconnected (pass a gentler schedule or --min-density)",
            file=sys.stderr,
        )
    if res["diverged"]:
        loss = res["diverged_loss"]
        print(
            f"shrinkage: error: training diverged at step {res['diverged_at_step']} (loss "
            + ("not finite" if loss is None else f"{loss:.3g}")
            + f"); the results above are of the model before it: lower --lr (got {args.lr:g})",
            file=sys.stderr,
        )
        return 1
    return 0


def _sweep(args) -> int:
    base = TrainConfig.from_args(args, skip=_GRID).check()
    rows = sweep(base, args.model, args.methods, args.sparsities, args.seeds, args.out)
    print(f"{len(rows)} runs summarised in {args.out}/sweep.csv and {args.out}/*_acc_vs_*.png")
    return 0


def _finetune(args) -> int:
    res = finetune(FinetuneConfig.from_args(args).check(), resume=args.resume)
    print(res["report_table"])
    print("fine-tune epoch  test acc  sparsity")
    for c in res["curve"]:
        print(f"{c['epoch']:>15g}  {100 * c['test_acc']:7.2f}%  {c['sparsity']:.4f}")
    print(f"wrote {args.out}/(config.json, history.json, result.json, report.txt, model.pt)")
    return 0
