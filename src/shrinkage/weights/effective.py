"""Multiply-accumulates that remain when zero weights *and* zero activations are skipped.

For a Linear layer y = W a, the MACs a sparse-sparse kernel must do for one input are
sum_{i,j} [W_ij != 0] [a_j != 0]; for a convolution the same count over every output
position, which is conv(indicator(a != 0), indicator(W != 0)) summed. Dense MACs count
every pair. Measured on real inputs with forward hooks.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ._flops import refuse_exported

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


def _pair_counts(module: nn.Module, a: torch.Tensor) -> tuple[float, float, float, float]:
    """(dense, weight-sparse, activation-sparse, both-sparse) MACs summed over the batch.

    Dense and weight-sparse follow the usual convention (every output position times the
    kernel, padding included; times the weight density); the activation counts skip zero
    inputs, padding included, as a kernel that skips zeros would.
    """
    w_nz = (module.weight != 0).to(torch.float64)
    a_nz = (a != 0).to(torch.float64)
    if isinstance(module, nn.Linear):
        x = a_nz.reshape(-1, a_nz.shape[-1])
        positions = x.shape[0]
        act = float(x.sum()) * module.weight.shape[0]
        both = float((x @ w_nz.T).sum())
    else:
        conv = _CONV[type(module)]
        padding = module.padding
        if module.padding_mode != "zeros":
            # reflect / replicate / circular padding copies inputs, zero or not: pad the
            # indicator as the layer pads its input (dropping it undercounted every position)
            pad = module._reversed_padding_repeated_twice
            a_nz = nn.functional.pad(a_nz, pad, mode=module.padding_mode)
            padding = 0

        def count(x, w):
            return conv(x, w, None, module.stride, padding, module.dilation, module.groups)

        y = count(a_nz, w_nz)
        positions = y.numel() // y.shape[1]  # batch x spatial output positions
        act = float(count(a_nz, torch.ones_like(w_nz)).sum())
        both = float(y.sum())
    per_position = module.weight.numel()  # C_out x C_in/groups x kernel: one output map
    dense = float(positions) * per_position
    return dense, float(positions) * float(w_nz.sum()), act, both


@torch.no_grad()
def _run_batches(model: nn.Module, inputs, max_batches: int | None) -> int:
    """Run the model on each batch of ``inputs`` (at most ``max_batches``); the samples run."""
    n = 0
    batches = [inputs] if isinstance(inputs, torch.Tensor) else inputs
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        x = batch[0] if isinstance(batch, list | tuple) and batch else batch
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                "inputs must be a tensor batch or an iterable of tensors or (x, y) "
                f"pairs; batch {i} is {type(x).__name__} {x!r:.60}"
            )
        if x.ndim < 2:
            # (4,) would count 4 samples of one feature each: the first dim is the batch
            raise ValueError(
                f"batch {i} has shape {tuple(x.shape)}: it needs a batch dimension first, "
                "(n_samples, ...); for one sample pass x[None]"
            )
        model(x)
        n += x.shape[0]
    return n


def effective_macs(model: nn.Module, inputs, max_batches: int | None = None) -> dict:
    """Per-layer and total MACs per input, dense and with zero weights / activations skipped.

    For a Linear layer ``y = W a`` the MACs left for one input are
    ``sum_ij [W_ij != 0] [a_j != 0]``; for a convolution the same count over every output
    position (``conv(indicator(a != 0), indicator(W != 0))`` summed, padding counted as
    zero inputs). Dense counts every pair, weight-sparse every nonzero weight at every
    position (the usual weight-sparse count, as ``flops``). Measured with forward
    hooks on every Linear and Conv1d/2d/3d, the model in eval mode (its mode restored).

    Parameters
    ----------
    model : torch.nn.Module
        The model, with at least one Linear or Conv layer.
    inputs : torch.Tensor or iterable
        A tensor batch or an iterable of batches (tensors or ``(x, y)`` pairs, e.g. a
        ``DataLoader``); the first dimension is the batch.
    max_batches : int, optional
        Stop after this many batches (None: all).

    Returns
    -------
    dict
        ``{"layers": {name: {...}}, "total": {...}, "n_samples": n}`` where each entry has
        ``dense``, ``weight_sparse`` (skip zero weights), ``activation_sparse`` (skip zero
        inputs), ``both`` (skip either), the ratios to dense (``weight_sparse_ratio``,
        ...), and, per layer, ``input_density`` (fraction of non-zero inputs to the
        layer). Counts are means per input sample.

    Raises
    ------
    ValueError
        The model has no Linear or Conv layer, or exported sparse layers (count
        ``densify(model)``), or ``inputs`` held no batch.
    TypeError
        A batch of ``inputs`` is not a tensor (or an ``(x, y)`` pair starting with one).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> effective_macs(net, torch.randn(8, 4))["total"]["dense"]
    18.0

    An input with two zeros halves the first layer's work; a zero weight column on one of
    the remaining inputs halves it again:

    >>> x = torch.tensor([[1.0, 0.0, 0.0, 2.0]])
    >>> first = effective_macs(net, x)["layers"]["0"]
    >>> first["dense"], first["activation_sparse"], first["input_density"]
    (12.0, 6.0, 0.5)
    >>> with torch.no_grad():
    ...     _ = net[0].weight[:, 0].zero_()
    >>> first = effective_macs(net, x)["layers"]["0"]
    >>> first["weight_sparse"], first["both"], first["both_ratio"]
    (9.0, 3.0, 0.25)
    """
    refuse_exported(model, "effective_macs")
    layers = OrderedDict((n, m) for n, m in model.named_modules() if isinstance(m, _LAYERS))
    if not layers:
        raise ValueError("model has no Linear or Conv layer to count MACs for")
    if max_batches is not None:
        max_batches = _checks.check_int_at_least("max_batches", max_batches, 1)
    sums = {n: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0] for n in layers}  # 4 counts, nnz inputs, inputs
    n_samples = [0]

    def hook(name):
        def fn(module, args):
            a = args[0]
            c = _pair_counts(module, a)
            s = sums[name]
            for i in range(4):
                s[i] += c[i]
            s[4] += float((a != 0).sum())
            s[5] += a.numel()

        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        n_samples[0] = _run_batches(model, inputs, max_batches)
    finally:
        for h in handles:
            h.remove()
        for m, t in modes.items():  # each module's own mode (train() would set them all)
            m.training = t
    if n_samples[0] == 0:
        raise ValueError("inputs held no batch")
    keys = ("dense", "weight_sparse", "activation_sparse", "both")
    out: dict = {"layers": {}, "n_samples": n_samples[0]}
    total = dict.fromkeys(keys, 0.0)
    for name, s in sums.items():
        row = {k: s[i] / n_samples[0] for i, k in enumerate(keys)}
        for k in keys:
            total[k] += row[k]
        row["input_density"] = s[4] / s[5] if s[5] else 0.0
        # a layer the inputs never reached (dense 0) has no ratio to speak of
        row.update(
            {f"{k}_ratio": row[k] / row["dense"] if row["dense"] else math.nan for k in keys[1:]}
        )
        out["layers"][name] = row
    # no layer reached (a model whose Linear / Conv layers the input never runs): no ratio
    dense = total["dense"]
    total.update({f"{k}_ratio": total[k] / dense if dense else math.nan for k in keys[1:]})
    out["total"] = total
    return out


def format_effective_macs(result: dict) -> str:
    """A printable per-layer table of ``effective_macs``.

    Columns: input density, dense, weight-sparse, activation-sparse and both-sparse MACs
    per input, and both / dense; one row per layer, then the total.

    Parameters
    ----------
    result : dict
        What ``effective_macs`` returned.

    Returns
    -------
    str
        The table, a header line then one line per layer and one for the total.

    Raises
    ------
    KeyError
        ``result`` lacks an entry ``effective_macs`` writes.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> table = format_effective_macs(effective_macs(net, torch.ones(1, 4)))
    >>> lines = table.splitlines()
    >>> len(lines), lines[1].split()[:3], lines[-1].split()[:2]
    (4, ['0', '1.000', '12'], ['total', '18'])
    """
    lines = [
        f"{'layer':<24}{'in dens.':>9}{'dense':>14}{'w-sparse':>14}{'a-sparse':>14}"
        f"{'both':>14}{'both/dense':>11}"
    ]
    rows = list(result["layers"].items()) + [("total", result["total"])]
    for name, r in rows:
        dens = f"{r['input_density']:.3f}" if "input_density" in r else ""
        lines.append(
            f"{name:<24}{dens:>9}{r['dense']:>14,.0f}{r['weight_sparse']:>14,.0f}"
            f"{r['activation_sparse']:>14,.0f}{r['both']:>14,.0f}{r['both_ratio']:>11.4f}"
        )
    return "\n".join(lines)
