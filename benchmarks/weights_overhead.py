"""Training-step overhead of sparse training on CPU: dense vs the Sparsifier vs torch prune.

For LeNet-300-100, LeNet-5, the small ResNet (batch 128, MNIST-sized random inputs) and a
6-layer transformer encoder (d_model 512, 8 heads, feed-forward 2048, batch 128 sequences of
``--seq`` tokens, a Linear embedding of 64 features in, mean pool, Linear readout) one
training step is forward + backward + SGD step, plus, per variant:

- ``dense``: nothing;
- ``st3``, ``st3sigma``, ``gmp``: ``Sparsifier(method=...)`` forward weights and ``sp.step()``
  (the global threshold at the scheduled sparsity, every step);
- ``torch_prune``: ``torch.nn.utils.prune.global_unstructured`` (L1, same sparsity) re-applied
  every step (remove + prune: the tool users have today);
- ``copy``: a ``parametrize`` parametrization that returns a copy of the weight and no
  threshold at all: the floor of any method whose forward pass sees a weight made from the
  raw one (the copy is written, read by the layer, and its gradient passed back);
- ``noop``: a parametrization that returns a weight computed beforehand (a straight-through
  autograd Function, no pass over the weights at all): the cost of the
  ``torch.nn.utils.parametrize`` convention itself, under every method that keeps it.

The sparsifiers follow a cubic schedule that is still rising during the run (so the
threshold moves every step, as in training), from 50 % towards ``--sparsity``. Variants
are interleaved round by round (each round times ``--steps`` steps of every variant) and
the median round is reported, so machine load hits all variants alike (``--steps`` is
the most steps per round; a model takes fewer when a round would last over 0.3 s). Absolute times on
a shared machine mean little; the ratios to dense, measured in the same rounds, are the
result (target: st3, st3sigma and gmp <= 1.10x dense on every model). Also printed: the
milliseconds of ``sp.step()`` alone (the threshold) per method.

    python benchmarks/weights_overhead.py --rounds 9 --steps 20 --threads 1
    python benchmarks/weights_overhead.py --quick     # smoke run, seconds
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize, prune

from shrinkage._io import write_json
from shrinkage.models import lenet5, lenet_300_100, resnet_small
from shrinkage.weights import PRUNABLE, Cubic, PrunedLayerWarning, Sparsifier

METHODS = ("st3", "st3sigma", "gmp")
VARIANTS = ("dense", *METHODS, "torch_prune", "copy", "noop")


class _Copy(nn.Module):
    def forward(self, w):
        return w.clone()


class _Given(torch.autograd.Function):
    """Forward: a weight made beforehand; backward: the gradient to the raw weight as is."""

    @staticmethod
    def forward(ctx, w, made):
        return made.detach()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _Noop(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.made = w.detach().clone()

    def forward(self, w):
        return _Given.apply(w, self.made)


class Encoder(nn.Module):
    """Linear embedding, ``depth`` x nn.TransformerEncoderLayer, mean pool, Linear readout."""

    def __init__(self, d_model=512, depth=6, heads=8, ff=2048, features=64, classes=10):
        super().__init__()
        self.embed = nn.Linear(features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def make(variant: str, factory, sparsity: float):
    torch.manual_seed(0)
    model = factory()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    hook = None
    if variant in METHODS:
        with warnings.catch_warnings():
            # high sparsity at once can empty whole layers (PrunedLayerWarning); same cost
            warnings.simplefilter("ignore", PrunedLayerWarning)
            sched = Cubic(start=0, end=10_000, initial=0.5)
            sp = Sparsifier(model, sparsity, method=variant, schedule=sched)

        def hook():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PrunedLayerWarning)
                sp.step()

        hook.sparsifier = sp
    elif variant in ("copy", "noop"):
        for m in model.modules():
            if isinstance(m, PRUNABLE):
                pm = _Copy() if variant == "copy" else _Noop(m.weight)
                parametrize.register_parametrization(m, "weight", pm)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
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


def step(model, opt, hook, x, y) -> float:
    """One training step; returns the seconds spent in the hook (the threshold)."""
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if hook is None:
        return 0.0
    t0 = time.perf_counter()
    hook()
    return time.perf_counter() - t0


def bench(name, factory, shape, rounds, steps, batch, sparsity, variants) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    built = {v: make(v, factory, sparsity) for v in variants}
    for v in variants:  # warm-up
        for _ in range(2):
            step(*built[v], x, y)
    t0 = time.perf_counter()
    step(*built["dense"], x, y)
    # about 0.3 s per variant and round, at most --steps: many steps of a small model, one of
    # the transformer
    steps = max(1, min(steps, round(0.3 / (time.perf_counter() - t0))))
    times = {v: [] for v in variants}
    hook_times = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            t0 = time.perf_counter()
            in_hook = 0.0
            for _ in range(steps):
                in_hook += step(*built[v], x, y)
            times[v].append((time.perf_counter() - t0) / steps)
            hook_times[v].append(in_hook / steps)
    med = {v: statistics.median(t) for v, t in times.items()}
    # the ratio of each round to dense in the same round, then the median over rounds
    ratios = {
        v: statistics.median(a / d for a, d in zip(times[v], times["dense"])) for v in variants
    }
    prunable = [m for m in built["dense"][0].modules() if isinstance(m, PRUNABLE)]
    n_weights = sum(m.weight.numel() for m in prunable)
    out = {
        "model": name,
        "pruned_weights": n_weights,
        "steps_per_round": steps,
        "ms_per_step": {v: 1e3 * t for v, t in med.items()},
        "ms_in_hook": {v: 1e3 * statistics.median(t) for v, t in hook_times.items()},
        "ratio_to_dense": ratios,
    }
    cells = " | ".join(
        f"{v} {1e3 * med[v]:.1f} ms ({ratios[v]:.3f}x, step {out['ms_in_hook'][v]:.2f} ms)"
        for v in variants
        if v != "dense"
    )
    print(f"{name:<14} dense {1e3 * med['dense']:.1f} ms | {cells}", flush=True)
    return out


MODELS = {
    "lenet_300_100": (lenet_300_100, (1, 28, 28)),
    "lenet5": (lenet5, (1, 28, 28)),
    "resnet_small": (resnet_small, (1, 28, 28)),
    "transformer": (Encoder, None),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=20, help="most steps per variant and round")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seq", type=int, default=16, help="transformer sequence length")
    p.add_argument("--sparsity", type=float, default=0.99)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true", help="1 round of 1 step, batch 8: a smoke run")
    args = p.parse_args(argv)
    models = args.models.split(",")
    variants = args.variants.split(",")
    for m in models:
        if m not in MODELS:
            p.error(f"--models: unknown model {m!r}; choose from {', '.join(MODELS)}")
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants: unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    if "dense" not in variants:
        variants.insert(0, "dense")
    if args.quick:
        args.rounds, args.steps, args.batch, args.seq = 1, 1, 8, 4
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
        f"sparsity {args.sparsity} (cubic from 0.5), {args.rounds} interleaved rounds x "
        f"{args.steps} steps"
    )
    res = []
    for name in models:
        factory, shape = MODELS[name]
        if name == "transformer":
            if args.quick:

                def factory():
                    return Encoder(d_model=32, depth=2, heads=2, ff=64)

            shape = (args.seq, 64)
        sizes = (args.rounds, args.steps, args.batch, args.sparsity)
        res.append(bench(name, factory, shape, *sizes, variants))
    if args.json:
        write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
