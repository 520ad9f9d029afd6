"""Sparse activations x sparse weights at inference: ``export(..., activations=True)`` against
dense torch and against the weight-sparse-only export, one thread, the same run.

Synthetic network (the issue's targets): an MLP of ``--depth`` hidden layers of width
``--width`` (input ``--width`` features, 10 outputs), CReLU at its edge of chaos for 85 %
zeros (``shrinkage.activations.edge_of_chaos("crelu", 0.85)``), weights pruned to 95 % at
random and rescaled by 1 / sqrt(0.05) (so each layer's pre-activation keeps its variance and
its activations their sparsity; the sparsity measured on the timing inputs is printed).
Its inputs are what its CReLU makes of Gaussian pre-activations (85 % zeros, as for a block
inside a deeper network), and in a last row Gaussian (dense: the first layer cannot skip
anything). Rows, each timed in interleaved rounds (median of per-round means, single calls):

- sparse weights, batch 1: dense torch vs the weight-sparse export (``activations=False``)
  vs the activation-and-weight-sparse export (targets: >= 40x dense, >= 3x weight-sparse);
- dense weights, batch 1: dense torch vs the activation-sparse export (target >= 4x);
- sparse weights, batch 16: the weight-sparse export vs the activation export chosen at
  batch 16 (target: never slower).

The bandwidth bound: the bytes a call must read (for each layer, in its kernel's storage:
the columns of the active inputs only for the activation kernels, every non-zero for the
CSR ones, the whole matrix for dense; plus the activations), over this machine's read
bandwidth measured in the same run (``t.sum()`` over a 256 MB tensor), and the share of that
bound the measured time reaches.

Trained network: ``shrinkage.experiments.weights.train_run`` trains an edge-of-chaos CReLU
MLP (85 % zeros at initialisation) with ST-3 at 90 % on MNIST (Adam, lr 1e-3; by default 3
epochs of 400 batches: 1,200 steps, about a minute; ``--trained-depth`` x
``--trained-width``, ``--trained-epochs``, ``--trained-batches``); the squashed model is
exported with ``activations=True`` at batch 1 and its test predictions compared with the
dense model's (accuracy, agreement), with the speed ratios.

Absolute times on a shared machine mean little (printed for reference); the ratios are
measured in the same rounds.

    python benchmarks/activation_inference.py                 # full run, a few minutes
    python benchmarks/activation_inference.py --quick         # smoke run, seconds
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from shrinkage._io import write_json
from shrinkage.activations import edge_of_chaos
from shrinkage.models import mlp
from shrinkage.weights import export
from shrinkage.weights._act_chain import ActivationChain
from shrinkage.weights._export import kernel_summary

_IDX = {"act_csc_u16": 2, "act_csc_i32": 4, "c_csr_u16": 2, "c_csr_i32": 4, "torch_csr": 8}


def read_bandwidth(mb: int = 256, rounds: int = 5) -> float:
    """Bytes per second of reads from DRAM: best of ``t.sum()`` over a tensor far larger
    than the caches."""
    t = torch.ones(mb * (1 << 20) // 4)
    best = math.inf
    t.sum()
    for _ in range(rounds):
        t0 = time.perf_counter()
        t.sum()
        best = min(best, time.perf_counter() - t0)
    return t.numel() * 4 / best


def synthetic(width: int, depth: int, weight_density: float | None, seed: int) -> nn.Sequential:
    """CReLU (85 % zeros at the edge of chaos) MLP; weights kept with probability
    ``weight_density`` and rescaled by its inverse square root (None: dense)."""
    torch.manual_seed(seed)
    net = mlp(depth, width, edge_of_chaos("crelu", sparsity=0.85), in_features=width).eval()
    if weight_density is not None:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    keep = torch.rand(m.weight.shape, generator=g) < weight_density
                    m.weight.mul_(keep / math.sqrt(weight_density))
    return net


def linear_inputs(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each Linear's input in one forward pass of the dense model."""
    seen, hooks = {}, []
    for name, m in net.named_modules():
        if isinstance(m, nn.Linear):
            hooks.append(
                m.register_forward_pre_hook(
                    lambda mod, a, name=name: seen.setdefault(
                        name, a[0].reshape(-1, a[0].shape[-1])
                    )
                )
            )
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return seen


def bytes_per_call(exported: nn.Module, dense: nn.Module, x: torch.Tensor) -> int:
    """Bytes one call of ``exported`` must read on input ``x`` (see the module docstring)."""
    inputs = linear_inputs(dense, x)
    kernels = {r["name"]: r["kernel"] for r in kernel_summary(exported)}
    total = 0
    for name, m in dense.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        w = m.weight.detach()
        out_f, in_f = w.shape
        kernel = kernels.get(name, "dense")
        xin = inputs[name]
        batch = xin.shape[0]
        acts = (in_f + out_f) * batch * 4 + (out_f * 4 if m.bias is not None else 0)
        if kernel == "dense":
            total += out_f * in_f * 4 + acts
        elif kernel == "act_dense":
            active = int((xin != 0).any(0).sum())
            total += active * out_f * 4 + acts
        elif kernel.startswith("act_csc"):
            active = (xin != 0).any(0)
            col_nnz = (w != 0).sum(0)
            total += int(col_nnz[active].sum()) * (4 + _IDX[kernel]) + 8 * int(active.sum()) + acts
        else:
            nnz = int((w != 0).sum())
            total += nnz * (4 + _IDX.get(kernel, 4)) + (out_f + 1) * 4 + acts
    return total


def time_models(models: dict, x: torch.Tensor, rounds: int, sample_s: float = 5e-3) -> dict:
    """Median over interleaved rounds of the mean ms per call in each round."""
    reps = {}
    with torch.no_grad():
        for name, m in models.items():
            m(x)
            t0 = time.perf_counter()
            m(x)
            reps[name] = max(1, min(200, int(sample_s / max(time.perf_counter() - t0, 1e-7))))
        samples = {k: [] for k in models}
        for _ in range(rounds):
            for name, m in models.items():
                t0 = time.perf_counter()
                for _ in range(reps[name]):
                    m(x)
                samples[name].append((time.perf_counter() - t0) * 1e3 / reps[name])
    return {k: statistics.median(v) for k, v in samples.items()}


def act_sparsity(net: nn.Module, x: torch.Tensor) -> list[float]:
    """Share of zeros of each Linear's input (after the first: the activations)."""
    return [float((v == 0).float().mean()) for v in linear_inputs(net, x).values()][1:]


def kernels_of(model) -> str:
    ks = [r["kernel"] for r in kernel_summary(model)]
    out, i = [], 0
    while i < len(ks):
        j = i
        while j < len(ks) and ks[j] == ks[i]:
            j += 1
        out.append(ks[i] if j - i == 1 else f"{ks[i]} x{j - i}")
        i = j
    return ", ".join(out)


def crossings(model) -> int:
    """Calls into the compiled kernels per forward: one per chain or sparse layer."""
    from shrinkage.weights import SparseLinear

    return sum(isinstance(m, ActivationChain | SparseLinear) for m in model.modules())


def inputs(net: nn.Module, n: int, width: int, sparse: bool, seed: int) -> torch.Tensor:
    """``n`` inputs: Gaussian, or (``sparse``) what the network's own CReLU makes of a
    Gaussian at its edge of chaos (85 % zeros: the input of a block inside a deeper net)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g)
    if sparse:
        act = next(m for m in net.modules() if type(m).__name__ == "CReLU")
        x = act(x * math.sqrt(edge_of_chaos("crelu", sparsity=0.85).q_star))
    return x


def synthetic_rows(args, bw) -> list[dict]:
    rows = []
    n_ex = 64
    ws_density = 1 - args.weight_sparsity
    all3 = ("dense", "weights_only", "act")
    for label, density, batch, compare, sparse_in in (
        ("sparse weights", ws_density, 1, all3, True),
        ("dense weights", None, 1, ("dense", "act"), True),
        ("sparse weights", ws_density, 16, all3, True),
        ("sparse weights", ws_density, 1, all3, False),
    ):
        if (batch > 1 and args.no_batch16) or (not sparse_in and args.no_dense_input):
            continue
        net = synthetic(args.width, args.depth, density, args.seed)
        ex = inputs(net, n_ex, args.width, sparse_in, args.seed + 2)
        if density is not None:
            label = f"{label} {100 * args.weight_sparsity:.0f} %"
        if not sparse_in:
            label += ", dense input"
        models = {"dense": net}
        t0 = time.perf_counter()
        if "weights_only" in compare:
            models["weights_only"] = export(net, 0.8, batch_size=batch, example_input=ex)
        act, report = export(
            net, 0.8, batch_size=batch, example_input=ex, activations=True, return_timings=True
        )
        models["act"] = act
        export_s = time.perf_counter() - t0
        x = ex[:batch]
        ms = time_models(models, x, args.rounds)
        zeros = act_sparsity(net, ex)
        row = {
            "network": f"{label}, depth {args.depth}, width {args.width}",
            "input_zeros": float((ex == 0).float().mean()),
            "batch": batch,
            "activation_zeros_mean": statistics.mean(zeros),
            "activation_zeros": zeros,
            "ms": ms,
            "kernels": {k: kernels_of(m) for k, m in models.items()},
            "crossings": {k: crossings(m) for k, m in models.items()},
            "export_s": export_s,
            "whole_model_choice": next(iter(report.values()))["whole_model_choice"]
            if report
            else None,
            "layers": {
                name: {"kernel": e["kernel"], "input_zeros": e["input_zeros"], "ms": e["ms"]}
                for name, e in report.items()
            },
        }
        row["act_x_dense"] = ms["dense"] / ms["act"]
        if "weights_only" in ms:
            row["act_x_weights_only"] = ms["weights_only"] / ms["act"]
            row["weights_only_x_dense"] = ms["dense"] / ms["weights_only"]
        nbytes = {k: bytes_per_call(m, net, x) for k, m in models.items()}
        row["bytes"] = nbytes
        row["bw_bound_ms"] = {k: v / bw * 1e3 for k, v in nbytes.items()}
        row["share_of_bw_bound"] = {k: row["bw_bound_ms"][k] / ms[k] for k in ms}
        rows.append(row)
        line = (
            f"{row['network']}, batch {batch}: act zeros {row['activation_zeros_mean']:.3f}; "
            + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
            + f" | act {row['act_x_dense']:.1f}x dense"
        )
        if "act_x_weights_only" in row:
            line += f", {row['act_x_weights_only']:.2f}x weight-sparse"
        line += (
            f" | act reads {nbytes['act'] / 1e6:.2f} MB, bound {row['bw_bound_ms']['act']:.3f} "
            f"ms, {100 * row['share_of_bw_bound']['act']:.0f} % of it | kernels: "
            f"{row['kernels']['act']}"
        )
        print(line, flush=True)
    return rows


def trained_row(args, bw) -> dict | None:
    from shrinkage import data
    from shrinkage.experiments.weights import build_model, parse_activation, train_run

    try:
        xte, yte = data.mnist("test")
    except Exception as e:  # noqa: BLE001 - no MNIST here: say so and go on
        print(f"trained network skipped: MNIST unavailable ({e})")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {
            "model": "mlp",
            "depth": args.trained_depth,
            "width": args.trained_width,
            "activation": "crelu:0.85",
            "method": "st3",
            "sparsity": 0.9,
            "epochs": args.trained_epochs,
            "max_batches": args.trained_batches,
            "optimizer": "adam",
            "lr": 1e-3,
            "test_subset": args.test_images,
            "threads": 1,
            "progress": False,
            "out": tmp,
        }
        t0 = time.perf_counter()
        res = train_run(cfg)
        train_s = time.perf_counter() - t0
        net = build_model(
            "mlp", parse_activation("crelu:0.85"), args.trained_depth, args.trained_width
        )
        net.load_state_dict(torch.load(Path(tmp) / "model.pt"))
    net.eval()
    xte, yte = xte[: args.test_images], yte[: args.test_images]
    ex = xte[:256]
    act = export(net, 0.8, batch_size=1, example_input=ex, activations=True)
    ws = export(net, 0.8, batch_size=1, example_input=ex)
    with torch.no_grad():
        p_dense = net(xte).argmax(1)
        p_act = act(xte).argmax(1)
        # batch-1 calls, the path the timings measure
        p_act1 = torch.cat([act(xte[i : i + 1]) for i in range(min(500, len(xte)))]).argmax(1)
    ms = time_models({"dense": net, "weights_only": ws, "act": act}, xte[:1], args.rounds)
    zeros = act_sparsity(net, xte[:1000])
    w_zeros = [
        float((m.weight == 0).float().mean()) for m in net.modules() if isinstance(m, nn.Linear)
    ]
    row = {
        "network": f"trained MLP {args.trained_depth} x {args.trained_width}, CReLU 0.85, "
        f"ST-3 0.9, {args.trained_epochs * args.trained_batches} steps",
        "train_seconds": train_s,
        "test_images": len(xte),
        "acc_dense": float((p_dense == yte).float().mean()),
        "acc_exported": float((p_act == yte).float().mean()),
        "agreement": float((p_act == p_dense).float().mean()),
        "agreement_batch1_first500": float((p_act1 == p_dense[: len(p_act1)]).float().mean()),
        "train_result_test_acc": res["test_acc_squashed"],
        "weight_zeros_mean": statistics.mean(w_zeros),
        "activation_zeros_mean": statistics.mean(zeros),
        "ms": ms,
        "act_x_dense": ms["dense"] / ms["act"],
        "act_x_weights_only": ms["weights_only"] / ms["act"],
        "kernels": {"act": kernels_of(act), "weights_only": kernels_of(ws)},
        "crossings": {"act": crossings(act), "weights_only": crossings(ws)},
        "bytes_act": bytes_per_call(act, net, xte[:1]),
    }
    row["bw_bound_ms_act"] = row["bytes_act"] / bw * 1e3
    print(
        f"{row['network']}: test acc dense {100 * row['acc_dense']:.2f} %, exported "
        f"{100 * row['acc_exported']:.2f} % (predictions agree on "
        f"{100 * row['agreement']:.2f} %); weights {row['weight_zeros_mean']:.3f} zeros, "
        f"activations {row['activation_zeros_mean']:.3f}; "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
        + f" | act {row['act_x_dense']:.1f}x dense, {row['act_x_weights_only']:.2f}x weight-sparse"
        f" | kernels: {row['kernels']['act']}",
        flush=True,
    )
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--weight-sparsity", type=float, default=0.95)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-batch16", action="store_true")
    ap.add_argument("--no-dense-input", action="store_true", help="skip the dense-input row")
    ap.add_argument("--no-trained", action="store_true")
    ap.add_argument("--trained-depth", type=int, default=20)
    ap.add_argument("--trained-width", type=int, default=256)
    ap.add_argument("--trained-epochs", type=int, default=3)
    ap.add_argument("--trained-batches", type=int, default=400, help="batches of 128 per epoch")
    ap.add_argument("--no-synthetic", action="store_true", help="only the trained network")
    ap.add_argument("--test-images", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--out", default="runs/activation_inference/results.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.width, args.depth, args.rounds = 384, 3, 3
        args.trained_depth, args.trained_width = 4, 32
        args.trained_epochs, args.trained_batches = 1, 10
        args.test_images = 500
    torch.set_num_threads(1)
    bw = read_bandwidth(32 if args.quick else 256)
    print(
        f"torch {torch.__version__}, 1 thread, read bandwidth {bw / 1e9:.1f} GB/s, "
        f"{args.rounds} interleaved rounds (times on a shared machine: ratios are the result)"
    )
    rows = [] if args.no_synthetic else synthetic_rows(args, bw)
    trained = None if args.no_trained else trained_row(args, bw)
    write_json(
        args.out,
        {
            "read_bandwidth_GBps": bw / 1e9,
            "rows": rows,
            "trained": trained,
            "command": "python benchmarks/activation_inference.py "
            + " ".join(argv or sys.argv[1:]),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
