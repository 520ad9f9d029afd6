"""Training-step overhead of sparse training on CPU: dense vs ST-3 Sparsifier vs torch prune.

For LeNet-5 and the small ResNet (batch 128, MNIST-sized random inputs) one training step is
forward + backward + SGD step, plus, per variant:

- ``dense``: nothing;
- ``st3``: ``Sparsifier(method="st3")`` forward weights, ``sp.step()`` (k-th value threshold);
- ``torch_prune``: ``torch.nn.utils.prune.global_unstructured`` (L1, same sparsity) re-applied
  every step (remove + prune: the tool users have today).

Variants are interleaved round by round (each round times ``--steps`` steps of every variant)
and the median round is reported, so machine load hits all variants alike. Prints per-step
milliseconds and the ratios to dense (target: st3 <= 1.15x dense).

    python benchmarks/weights_overhead.py --rounds 7 --steps 10 --threads 1
    python benchmarks/weights_overhead.py --quick     # smoke run, seconds
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from shrinkage._io import write_json
from shrinkage.models import lenet5, resnet_small
from shrinkage.weights import PRUNABLE, PrunedLayerWarning, Sparsifier


def make(variant: str, factory, sparsity: float):
    torch.manual_seed(0)
    model = factory()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    hook = None
    if variant == "st3":
        with warnings.catch_warnings():
            # 99 % at once empties whole layers (PrunedLayerWarning); the step's cost is the same
            warnings.simplefilter("ignore", PrunedLayerWarning)
            sp = Sparsifier(model, sparsity, method="st3")
        hook = sp.step
    elif variant == "torch_prune":
        params = [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]

        def hook():
            for m, name in params:
                if prune.is_pruned(m):
                    prune.remove(m, name)
            prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sparsity)

        hook()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, opt, hook


def step(model, opt, hook, x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if hook is not None:
        hook()


def bench(name, factory, rounds, steps, batch, sparsity) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    variants = ("dense", "st3", "torch_prune")
    built = {v: make(v, factory, sparsity) for v in variants}
    for v in variants:  # warm-up
        for _ in range(2):
            step(*built[v], x, y)
    times = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            t0 = time.perf_counter()
            for _ in range(steps):
                step(*built[v], x, y)
            times[v].append((time.perf_counter() - t0) / steps)
    med = {v: statistics.median(t) for v, t in times.items()}
    out = {
        "model": name,
        "ms_per_step": {v: 1e3 * t for v, t in med.items()},
        "ratio_to_dense": {v: med[v] / med["dense"] for v in variants},
    }
    print(
        f"{name:<14} dense {1e3 * med['dense']:7.1f} ms | st3 {1e3 * med['st3']:7.1f} ms "
        f"({out['ratio_to_dense']['st3']:.3f}x) | torch prune {1e3 * med['torch_prune']:7.1f} ms "
        f"({out['ratio_to_dense']['torch_prune']:.3f}x)",
        flush=True,
    )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sparsity", type=float, default=0.99)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true", help="1 round of 1 step, batch 8: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.batch = 1, 1, 8
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
        f"sparsity {args.sparsity}, {args.rounds} interleaved rounds x {args.steps} steps"
    )
    res = [
        bench("lenet5", lenet5, args.rounds, args.steps, args.batch, args.sparsity),
        bench("resnet_small", resnet_small, args.rounds, args.steps, args.batch, args.sparsity),
    ]
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
