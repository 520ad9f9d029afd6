"""Sparse weights -> speed: dense vs torch CSR vs ``shrinkage.weights.export``.

One run measures, at batch 1 and 256, with the same threads and interleaved rounds:

- a 98 %-sparse LeNet-300-100 (784-300-100-10; per-layer magnitude pruning of a
  random init, or the Linear weights of a squashed checkpoint given with
  ``--lenet-checkpoint``);
- a wide MLP, 4 Linear layers 4096 x 4096 with ReLU between, at 90, 95, 99 %
  sparsity (per-layer magnitude pruning of a random init = a random pattern);
- the Caffe LeNet-5 (conv 20, conv 50, fc 500, fc 10) at 95 % per layer, to show the
  conv path (``--no-conv`` skips it).

For each: dense, torch CSR (every Linear as ``torch.sparse`` CSR, int64 indices),
the exported model (kernels picked by ``export`` on that batch size). Printed per
row: median and fastest ms, speed-ups vs dense and vs torch CSR, the ideal speed-up
(dense MACs / non-zero MACs) and the share of it reached, and the memory-bandwidth
bound: the bytes each model must read once per call (weights in their storage format
+ activations) over this machine's read bandwidth, measured in the same run by
summing a 256 MB tensor, and the share of that bound reached. A sparse model small
enough to stay in the 32 MB L3 cache can beat the DRAM bound (share > 1).

    .venv/bin/python benchmarks/sparse_inference.py --threads 2
    .venv/bin/python benchmarks/sparse_inference.py --quick   # smoke run, seconds

Writes ``runs/sparse_inference/results-t<threads>.json`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from shrinkage._io import write_json, write_text
from shrinkage.weights import _kernels
from shrinkage.weights._export import (
    SparseConv2d,
    SparseLinear,
    bytes_per_call,
    export,
    kernel_summary,
)


def lenet(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def load_lenet_checkpoint(path: str) -> nn.Sequential:
    """The three Linear layers of a squashed LeNet-300-100 checkpoint (state dict or module)."""
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    net = lenet(0)
    want = [(300, 784), (100, 300), (10, 100)]
    weights = [k for k, v in obj.items() if k.endswith("weight") and tuple(v.shape) in want]
    if [tuple(obj[k].shape) for k in weights] != want:
        raise ValueError(f"{path}: expected Linear weights of shapes {want}, found {weights}")
    with torch.no_grad():
        for lin, key in zip([net[0], net[2], net[4]], weights):
            lin.weight.copy_(obj[key])
            bkey = key[: -len("weight")] + "bias"
            if bkey in obj:
                lin.bias.copy_(obj[bkey])
            else:
                lin.bias = None
    return net


def layerwise_magnitude_prune(net: nn.Module, sparsity: float) -> None:
    """Zero the smallest-magnitude ``sparsity`` share of each Linear weight.

    Per layer, not global: on a random init a global threshold would empty the first
    layer (its init scale 1/sqrt(784) is the smallest) and leave the others dense.
    """
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                w = m.weight
                k = int(round(sparsity * w.numel()))
                if k > 0:
                    thr = w.abs().flatten().kthvalue(k).values
                    w.mul_(w.abs() > thr)


def wide_mlp(sparsity: float, seed: int, width: int = 4096, depth: int = 4) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, width))
        if i < depth - 1:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    layerwise_magnitude_prune(net, sparsity)  # on a random init: a random pattern
    return net


def lenet5(sparsity: float, seed: int) -> nn.Sequential:
    """Caffe LeNet-5: conv 20 5x5, pool, conv 50 5x5, pool, fc 500, fc 10 (28x28 input)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 20, 5),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                w = m.weight
                thr = w.abs().flatten().kthvalue(int(round(sparsity * w.numel()))).values
                w.mul_(w.abs() > thr)
    return net


def torch_csr(net: nn.Module, x: torch.Tensor) -> nn.Module:
    return export(net, min_sparsity=0.0, candidates=("torch_csr",), example_input=x)


def read_bandwidth(mb: int = 256, rounds: int = 7) -> float:
    """Bytes per second of DRAM reads: best of ``t.sum()`` / ``t.amax()`` over a tensor far
    larger than the caches, at the current thread count and at one thread (on a busy
    machine one thread can read faster than two)."""
    t = torch.ones(mb * (1 << 20) // 4)
    threads = torch.get_num_threads()
    best = math.inf
    for n in sorted({threads, 1}):
        torch.set_num_threads(n)
        for op in (torch.sum, torch.amax):
            op(t)
            for _ in range(rounds):
                t0 = time.perf_counter()
                op(t)
                best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return t.numel() * 4 / best


def model_bytes_and_macs(net: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    """(bytes one call must read, dense MACs, non-zero MACs) of the Linear / Conv2d layers.

    Bytes per layer: the weight in its storage format (``bytes_per_call``) plus its
    input and output activations; a conv's MACs count every output position.
    """
    costs = []

    def hook(mod, args, out):
        if isinstance(mod, SparseConv2d | SparseLinear):
            m = mod.matrix if isinstance(mod, SparseConv2d) else mod
            kernel, o, i, nnz = m.kernel, m.out_features, m.in_features, m.nnz
        else:
            w = mod.weight
            kernel, o, i, nnz = "dense", w.shape[0], w[0].numel(), int(torch.count_nonzero(w))
        positions = out.numel() // o  # batch x output pixels
        weight_bytes = bytes_per_call(kernel, o, i, nnz, batch=0)
        act_bytes = (args[0].numel() + out.numel()) * args[0].element_size()
        costs.append((weight_bytes + act_bytes, o * i * positions, nnz * positions))

    inner = {id(m.matrix) for m in net.modules() if isinstance(m, SparseConv2d)}
    hooks = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, nn.Linear | nn.Conv2d | SparseLinear | SparseConv2d) and id(m) not in inner
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return tuple(sum(c[k] for c in costs) for k in range(3))


def time_models(models: dict, x: torch.Tensor, rounds: int, sample_s: float = 2e-3) -> dict:
    """Median and fastest ms per call, rounds interleaved across models."""
    reps = {}
    with torch.no_grad():
        for name, m in models.items():
            m(x)
            t0 = time.perf_counter()
            m(x)
            reps[name] = max(1, min(500, int(sample_s / max(time.perf_counter() - t0, 1e-7))))
        samples: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(rounds):
            for name, m in models.items():
                t0 = time.perf_counter()
                for _ in range(reps[name]):
                    m(x)
                samples[name].append((time.perf_counter() - t0) * 1e3 / reps[name])
    return {
        k: {"median_ms": statistics.median(v), "min_ms": min(v), "samples_ms": v}
        for k, v in samples.items()
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--sparsities", default="0.9,0.95,0.99", help="wide-MLP sparsities")
    ap.add_argument("--lenet-sparsity", type=float, default=0.98)
    ap.add_argument("--lenet-checkpoint", default=None)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    ap.add_argument("--no-conv", action="store_true", help="skip the LeNet-5 conv rows")
    ap.add_argument("--out", default="runs/sparse_inference")
    args = ap.parse_args(argv)
    if args.quick:
        args.width, args.rounds, args.sparsities, args.batches = 256, 2, "0.95", "1,32"
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    sparsities = [float(s) for s in args.sparsities.split(",")]

    kern = _kernels.load()
    bw = read_bandwidth(64 if args.quick else 256)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"compiled kernels: {kern.flags if kern else 'unavailable'}, "
        f"read bandwidth {bw / 1e9:.1f} GB/s"
    )

    configs = []  # (name, model, input shape without the batch)
    if args.lenet_checkpoint:
        net = load_lenet_checkpoint(args.lenet_checkpoint)
        configs.append(("lenet-300-100 (checkpoint)", net, (784,)))
    else:
        net = lenet(args.seed)
        layerwise_magnitude_prune(net, args.lenet_sparsity)
        configs.append((f"lenet-300-100 @{args.lenet_sparsity:.0%}", net, (784,)))
    for s in sparsities:
        net = wide_mlp(s, args.seed, args.width)
        configs.append((f"mlp 4x{args.width} @{s:.0%}", net, (args.width,)))
    if not args.no_conv:
        configs.append(("lenet-5 conv @95%", lenet5(0.95, args.seed), (1, 28, 28)))

    rows, layers = [], []
    jobs = [(name, net, shape, b) for name, net, shape in configs for b in batches]
    for name, net, shape, batch in tqdm(jobs, desc="configs", file=sys.stderr):
        x = torch.randn(batch, *shape)
        t0 = time.perf_counter()
        exported, report = export(
            net, min_sparsity=0.8, batch_size=batch, return_timings=True, example_input=x
        )
        export_s = time.perf_counter() - t0
        models = {"dense": net, "torch_csr": torch_csr(net, x), "exported": exported}
        with torch.no_grad():
            ref = net(x)
            err = {k: float((m(x) - ref).abs().max()) for k, m in models.items()}
        times = time_models(models, x, args.rounds)
        weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        sparsity = 1 - sum(int(torch.count_nonzero(w)) for w in weights) / sum(
            w.numel() for w in weights
        )
        d_ms = times["dense"]["median_ms"]
        c_ms = times["torch_csr"]["median_ms"]
        for kind, m in models.items():
            nbytes, dmacs, nzmacs = model_bytes_and_macs(m, x)
            ms = times[kind]["median_ms"]
            bound_ms = nbytes / bw * 1e3
            ideal = dmacs / max(nzmacs, 1)
            rows.append(
                {
                    "model": name,
                    "sparsity": round(sparsity, 4),
                    "batch": batch,
                    "kind": kind,
                    "median_ms": ms,
                    "min_ms": times[kind]["min_ms"],
                    "spread_ms": max(times[kind]["samples_ms"]) - times[kind]["min_ms"],
                    "speedup_vs_dense": d_ms / ms,
                    "speedup_vs_torch_csr": c_ms / ms,
                    "speedup_vs_dense_min": times["dense"]["min_ms"] / times[kind]["min_ms"],
                    "speedup_vs_torch_csr_min": times["torch_csr"]["min_ms"]
                    / times[kind]["min_ms"],
                    "ideal_speedup": ideal,
                    "share_of_ideal": (d_ms / ms) / ideal,
                    "bytes": nbytes,
                    "bw_bound_ms": bound_ms,
                    "share_of_bw_bound": bound_ms / ms,
                    "max_abs_err": err[kind],
                    "kernels": ",".join(r["kernel"] for r in kernel_summary(m)),
                }
            )
        for lname, entry in report.items():
            layers.append(
                {"model": name, "batch": batch, "layer": lname, **entry, "export_s": export_s}
            )

    # one blocked-format point: torch BSR 4x4 on one wide layer, to show the fill-in
    if not args.quick:
        lin = wide_mlp(0.95, args.seed, args.width, depth=1)
        bsr = SparseLinear.from_linear(lin[0], "torch_bsr")
        csr = SparseLinear.from_linear(lin[0], "torch_csr")
        x = torch.randn(1, args.width)
        tb = time_models({"torch_bsr": bsr, "torch_csr": csr, "dense": lin}, x, 5)
        fill = bsr.values.numel() / max(1, int(torch.count_nonzero(lin[0].weight)))
        bsr_note = {
            "layer": f"{args.width}x{args.width} @95%, batch 1",
            "stored_values_per_nonzero": fill,
            **{k: v["median_ms"] for k, v in tb.items()},
        }
        print(
            f"\nblocked format (torch BSR 4x4) on one {args.width}^2 layer @95% batch 1: "
            f"stores {fill:.1f} values per non-zero; "
            + ", ".join(f"{k} {v['median_ms']:.3f} ms" for k, v in tb.items())
        )
    else:
        bsr_note = None

    hdr = (
        f"{'model':<26}{'batch':>6} {'kind':<10}{'median ms':>10}{'min ms':>9}"
        f"{'x dense':>8}{'x csr':>7}{'ideal':>7}{'%ideal':>7}{'bw ms':>8}{'%bw':>6}  kernels"
    )
    print("\n" + hdr)
    for r in rows:
        print(
            f"{r['model']:<26}{r['batch']:>6} {r['kind']:<10}{r['median_ms']:>10.3f}"
            f"{r['min_ms']:>9.3f}{r['speedup_vs_dense']:>8.2f}{r['speedup_vs_torch_csr']:>7.2f}"
            f"{r['ideal_speedup']:>7.1f}{100 * r['share_of_ideal']:>6.0f}%"
            f"{r['bw_bound_ms']:>8.3f}{100 * r['share_of_bw_bound']:>5.0f}%  {r['kernels']}"
        )

    out = Path(args.out)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "read_bandwidth_GBps": bw / 1e9,
        "compiled_flags": kern.flags if kern else None,
        "command": "python benchmarks/sparse_inference.py " + " ".join(argv or sys.argv[1:]),
    }
    tag = f"t{args.threads}" + ("-quick" if args.quick else "")
    write_json(
        out / f"results-{tag}.json",
        {"meta": meta, "rows": rows, "layers": layers, "blocked": bsr_note},
    )
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(out / f"results-{tag}.csv", buf.getvalue())
    md = [
        "| model | batch | kind | median ms | min ms | x dense (med / min) | "
        "x torch CSR (med / min) | ideal x | % of ideal | bw-bound ms | % of bw bound | kernels |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['model']} | {r['batch']} | {r['kind']} | {r['median_ms']:.3f} | "
            f"{r['min_ms']:.3f} | {r['speedup_vs_dense']:.2f} / {r['speedup_vs_dense_min']:.2f} | "
            f"{r['speedup_vs_torch_csr']:.2f} / {r['speedup_vs_torch_csr_min']:.2f} | "
            f"{r['ideal_speedup']:.0f} | {100 * r['share_of_ideal']:.0f} % | "
            f"{r['bw_bound_ms']:.3f} | {100 * r['share_of_bw_bound']:.0f} % | {r['kernels']} |"
        )
    write_text(out / f"results-{tag}.md", "\n".join(md) + "\n")
    print(f"\nwrote {out / f'results-{tag}.json'}, .csv and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
