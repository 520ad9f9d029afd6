"""What speed ONNX Runtime gives a squashed sparse model, against our sparse kernels.

For LeNet-300-100 and LeNet-5 squashed at a sparsity (ST-3's global threshold), times one
forward pass at batch 1 and 64, one thread each, in interleaved rounds:

- ``torch``: the squashed model in plain torch (dense kernels);
- ``ort``: ONNX Runtime on :func:`shrinkage.integrations.onnx.export_onnx` of that model;
- ``ort_unpruned``: ONNX Runtime on the same architecture before pruning (no zeros);
- ``exported``: :func:`shrinkage.weights.export` (sparse kernels where they measured faster).

Prints median and min milliseconds and the ratios ``ort / ort_unpruned`` (what the zeros
alone buy in ONNX Runtime), ``torch / ort`` and ``ort / exported`` (how much faster our
sparse kernels run the same squashed model than ONNX Runtime does). Writes
``onnx_speed.json`` under ``--out``.

    python benchmarks/onnx_speed.py --out runs/onnx_speed
    python benchmarks/onnx_speed.py --quick
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from shrinkage._io import write_json
from shrinkage.integrations.onnx import export_onnx, session
from shrinkage.models import lenet5, lenet_300_100
from shrinkage.weights import Sparsifier, export

MODELS = {"lenet_300_100": lenet_300_100, "lenet5": lenet5}


def _time(fn, reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1e3


def bench(name: str, sparsity: float, batch: int, rounds: int, out: Path) -> dict:
    torch.manual_seed(0)
    unpruned = MODELS[name]().eval()
    model = copy.deepcopy(unpruned)
    Sparsifier(model, sparsity, method="st3").squash()
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    info = export_onnx(model, x, out / f"{name}_s{sparsity:g}.onnx", dynamo=False)
    export_onnx(unpruned, x, out / f"{name}_dense.onnx", dynamo=False)
    ort = session(out / f"{name}_s{sparsity:g}.onnx", threads=1)
    ort_dense = session(out / f"{name}_dense.onnx", threads=1)
    fast = export(model, min_sparsity=0.8, batch_size=batch, example_input=x)
    xn = x.numpy()
    with torch.no_grad():
        ref = model(x)
        for f in (fast(x), torch.from_numpy(ort.run(None, {"input": xn})[0])):
            torch.testing.assert_close(f, ref, rtol=1e-4, atol=1e-4)
        kinds = {
            "torch": lambda: model(x),
            "ort": lambda: ort.run(None, {"input": xn}),
            "ort_unpruned": lambda: ort_dense.run(None, {"input": xn}),
            "exported": lambda: fast(x),
        }
        reps = max(1, int(20 / batch)) * (10 if name == "lenet_300_100" else 2)
        for fn in kinds.values():  # warm-up
            _time(fn, reps)
        samples = {k: [] for k in kinds}
        for _ in range(rounds):  # interleaved: drift on a shared machine hits all kinds alike
            for k, fn in kinds.items():
                samples[k].append(_time(fn, reps))
    med = {k: statistics.median(v) for k, v in samples.items()}
    low = {k: min(v) for k, v in samples.items()}
    return {
        "model": name,
        "sparsity": info["sparsity"],
        "batch": batch,
        "median_ms": med,
        "min_ms": low,
        "ort_over_ort_unpruned": med["ort"] / med["ort_unpruned"],
        "torch_over_ort": med["torch"] / med["ort"],
        "ort_over_exported": med["ort"] / med["exported"],
        "ort_over_exported_min": low["ort"] / low["exported"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/onnx_speed")
    p.add_argument("--sparsities", default="0.95,0.99")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rounds = 3 if args.quick else args.rounds
    rows = []
    head = (
        f"{'model':<14} {'s':>5} {'batch':>5} | {'torch':>7} {'ort':>7} {'ort unpr':>8} "
        f"{'exported':>8} (median ms) | ort/ort-unpruned  torch/ort  ort/exported (med, min)"
    )
    print(head)
    print("-" * len(head))
    for name in MODELS:
        for s in (float(v) for v in args.sparsities.split(",")):
            for b in (int(v) for v in args.batches.split(",")):
                r = bench(name, s, b, rounds, out)
                rows.append(r)
                m = r["median_ms"]
                print(
                    f"{name:<14} {r['sparsity']:>5.3f} {b:>5} | {m['torch']:>7.3f} "
                    f"{m['ort']:>7.3f} {m['ort_unpruned']:>8.3f} {m['exported']:>8.3f}"
                    f"              | {r['ort_over_ort_unpruned']:>16.2f}x "
                    f"{r['torch_over_ort']:>9.2f}x {r['ort_over_exported']:>7.2f}x, "
                    f"{r['ort_over_exported_min']:.2f}x",
                    flush=True,
                )
    write_json(out / "onnx_speed.json", rows)
    print(f"wrote {out}/onnx_speed.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
