"""Choosing a kernel per layer by measurement: which kernels can run a layer here, interleaved
single-call timings, and the memory traffic a kernel needs per call (the bandwidth bound)."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from .. import _checks
from . import _kernels
from ._sparse_modules import _BLOCK, _C_KERNELS, _U16_MAX_COLS, KERNELS

__all__ = ["bytes_per_call"]


def _supported(kernel: str, out_f: int, in_f: int, device, dtype) -> bool:
    if kernel == "dense":
        return True
    if device.type == "cpu" and dtype not in (torch.float32, torch.float64):
        return False  # torch's CPU sparse kernels have no float16 / bfloat16, nor do ours
    if kernel in _C_KERNELS:
        if device.type != "cpu" or dtype not in (torch.float32, torch.float64):
            return False
        if kernel == "c_csr_u16" and in_f > _U16_MAX_COLS:
            return False
        return _kernels.load() is not None
    if kernel == "torch_bsr":
        return in_f % _BLOCK == 0 and out_f % _BLOCK == 0
    return True


def _time_modules(mods: dict[str, nn.Module], x: torch.Tensor, rounds: int) -> dict:
    """Median ms of single calls of each module, over interleaved rounds.

    Interleaving exposes every candidate to the same background load. Single calls
    rather than batches of calls: on a shared machine a batch almost always contains a
    preemption, a single call often does not, so the median of single calls is the
    typical call, while a kernel whose parallel regions stall on descheduled threads
    (every call on a busy machine) shows it in its median. Cheap candidates get more
    calls (about 10 ms each, at most 100), slow ones at least ``rounds``.
    """
    first = next((t for t in x if isinstance(t, torch.Tensor)), None) if isinstance(x, tuple) else x
    cuda = first is not None and first.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    n_calls = {}
    with torch.no_grad():
        for name, m in mods.items():  # warm up, and size the number of calls
            m(x)
            sync()
            t0 = time.perf_counter()
            m(x)
            sync()
            dt = time.perf_counter() - t0
            n_calls[name] = max(rounds, min(100, int(10e-3 / max(dt, 1e-7))))
        samples: dict[str, list[float]] = {k: [] for k in mods}
        for r in range(max(n_calls.values())):
            for name, m in mods.items():
                if r >= n_calls[name]:
                    continue
                sync()
                t0 = time.perf_counter()
                m(x)
                sync()
                samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def example_rows(example, batch: int):
    """``batch`` rows of an example input, its own rows repeated as needed: each tensor of a
    tuple or list (other items as they are), or the tensor itself. Its own values, not
    random ones, so that token ids stay ids and images images."""
    if isinstance(example, tuple | list):
        return tuple(example_rows(t, batch) for t in example)
    if not isinstance(example, torch.Tensor) or example.dim() == 0:
        return example
    x = example.reshape(example.shape[0], -1)
    reps = -(-batch // max(x.shape[0], 1))
    return x.repeat(reps, 1)[:batch].reshape(batch, *example.shape[1:]).contiguous()


class Unpacked(nn.Module):
    """``model(*x)``: a model timed on a tuple of inputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(*x)


def _check_candidates(candidates) -> tuple[str, ...]:
    if isinstance(candidates, str):
        candidates = (candidates,)
    try:
        cands = tuple(candidates)
    except TypeError:
        raise ValueError(
            f"candidates must be kernel names from {KERNELS}, got {candidates!r}"
        ) from None
    if not cands:
        raise ValueError(f"candidates must name at least one of {KERNELS}, got none")
    for c in cands:
        _checks.check_choice("kernel", c, KERNELS)
    return tuple(dict.fromkeys(cands))


def bytes_per_call(kernel: str, out_f: int, in_f: int, nnz: int, batch: int, itemsize=4) -> int:
    """Bytes a kernel must move at least once per call: weight storage, input, output.

    Dense reads out*in values; CSR reads nnz values + nnz column indices + out+1 row
    offsets (index bytes: 8 for torch_csr, 4 for torch_csr_i32 / c_csr_i32 (row offsets
    int32), 2 for c_csr_u16). Used for the memory-bandwidth bound in the benchmark.
    """
    act = (in_f + out_f) * batch * itemsize
    if kernel == "dense":
        return out_f * in_f * itemsize + act
    idx = {"torch_csr": 8, "torch_csr_i32": 4, "c_csr_i32": 4, "c_csr_u16": 2}.get(kernel)
    if idx is None:
        raise ValueError(f"no byte count for kernel {kernel!r}")
    rowptr = 8 if kernel == "torch_csr" else 4
    return nnz * (itemsize + idx) + (out_f + 1) * rowptr + act
