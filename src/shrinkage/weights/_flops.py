"""Multiply-accumulate counts of Conv and Linear layers, dense and with the zeros skipped."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._checks import fits_the_model
from ._act_chain import ActivationChain
from ._ops import PRUNABLE
from ._sparse_modules import SparseConv2d, SparseLinear

__all__ = ["flops", "FlopsReport"]


@dataclass
class FlopsReport:
    """Per-layer rows and totals of ``flops``.

    ``str(report)`` is a table, ``report.to_dict()`` a dict (rows and totals, with the
    ``speedup`` dense / sparse MACs).

    Each row: ``name, kind, shape, params, nonzero, density, dense_macs, sparse_macs,
    pruned`` (and ``shared_with`` when one weight serves several layers; its parameters are
    counted once in the totals, its MACs once per use).

    Parameters
    ----------
    input_shape : tuple of int
        Shape of the one input the counts are for (batch dimension included).
    layers : list of dict, default []
        The rows, in forward order.

    Attributes
    ----------
    params : int
        Weights of the counted layers, each shared tensor once (property).
    nonzero : int
        Nonzero weights among them (property).
    density : float
        ``nonzero / params`` (1.0 with no weight) (property).
    dense_macs : int
        Multiply-accumulates with every weight (property).
    sparse_macs : float
        Multiply-accumulates with the zero weights skipped: the sum over layers of
        density * dense MACs (property).

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> with torch.no_grad():
    ...     _ = m[0].weight.zero_()
    >>> rep = flops(m, (1, 4))
    >>> rep.params, rep.nonzero, rep.dense_macs, rep.sparse_macs
    (18, 6, 18, 6.0)
    >>> rep.to_dict()["total"]["speedup"]
    3.0
    >>> str(rep).splitlines()[-1].split()[-5:]
    ['0.3333', '18', '6', '(3.0x', 'fewer)']
    """

    input_shape: tuple
    layers: list[dict] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(r["params"] for r in self.layers if not r.get("shared_with"))

    @property
    def nonzero(self) -> int:
        return sum(r["nonzero"] for r in self.layers if not r.get("shared_with"))

    @property
    def density(self) -> float:
        return self.nonzero / self.params if self.params else 1.0

    @property
    def dense_macs(self) -> int:
        return sum(r["dense_macs"] for r in self.layers)

    @property
    def sparse_macs(self) -> float:
        return sum(r["sparse_macs"] for r in self.layers)

    def to_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "layers": [dict(r, shape=list(r["shape"])) for r in self.layers],
            "total": {
                "params": self.params,
                "nonzero": self.nonzero,
                "density": self.density,
                "dense_macs": self.dense_macs,
                "sparse_macs": self.sparse_macs,
                "speedup": self.dense_macs / self.sparse_macs if self.sparse_macs else float("inf"),
            },
        }

    def __str__(self) -> str:
        head = (
            f"{'layer':<24} {'kind':<7} {'shape':<18} {'density':>8} "
            f"{'dense MACs':>12} {'sparse MACs':>12}"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            shape = "x".join(map(str, r["shape"]))
            star = "" if r["pruned"] else " (dense)"
            lines.append(
                f"{r['name'][:24]:<24} {r['kind']:<7} {shape[:18]:<18} {r['density']:>8.4f} "
                f"{r['dense_macs']:>12,d} {round(r['sparse_macs']):>12,d}{star}"
            )
        lines.append("-" * len(head))
        ratio = self.dense_macs / self.sparse_macs if self.sparse_macs else float("inf")
        lines.append(
            f"{'total':<24} {'':<7} {f'{self.params:,d} w':<18} {self.density:>8.4f} "
            f"{self.dense_macs:>12,d} {round(self.sparse_macs):>12,d}   ({ratio:.1f}x fewer)"
        )
        return "\n".join(lines)


@torch.no_grad()
def _check_pruned(model: nn.Module, pruned) -> set | None:
    """``pruned`` as a set of layer names, each a module of the model (a typo would count
    a pruned layer as dense without a word; a bare string would be read letter by letter)."""
    if pruned is None:
        return None
    if isinstance(pruned, str):
        raise ValueError(f"pruned must be an iterable of layer names, got the string {pruned!r}")
    names = set(pruned)
    known = {n for n, _ in model.named_modules()}
    missing = sorted(map(str, names - known))
    if missing:
        raise ValueError(f"pruned names {missing} that are not modules of the model")
    return names


def flops(model: nn.Module, input_shape, pruned: Iterable[str] | None = None) -> FlopsReport:
    """Count multiply-accumulates of every Conv{1,2,3}d and Linear for one input of ``input_shape``.

    dense MACs of a conv = output elements * (C_in / groups) * prod(kernel); of a linear =
    output elements * in_features; sparse MACs = density of the weight (nonzero fraction of
    what the forward pass sees) * dense MACs (ST-3's count, Vanderschueren & De
    Vleeschouwer 2023). Biases, BN and activations are not counted. The model runs once in
    eval mode on zeros (its mode is restored). A module called twice counts its MACs twice;
    a weight shared by several layers counts its parameters once.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; parametrized weights (a ``Sparsifier``'s) are read as the forward
        pass sees them.
    input_shape : tuple of int
        Shape of one input, batch dimension included (``(1, 1, 28, 28)`` for one MNIST
        image); every entry >= 1.
    pruned : iterable of str, optional
        Names of the layers counted as pruned (the ``pruned`` column and the ``(dense)``
        mark of the table); None: every layer.

    Returns
    -------
    FlopsReport
        One row per Conv / Linear layer that ran, in forward order, and the totals.

    Raises
    ------
    ValueError
        ``input_shape`` is empty, has an entry < 1 or one that is not an integer, or the
        model cannot run an input of that shape; the model has no Conv1d/2d/3d or Linear
        layer, or has exported sparse layers (count ``densify(model)``).

    Notes
    -----
    ``nn.MultiheadAttention`` computes with its projection weights directly (its
    ``out_proj`` Linear is never called): its MACs are not counted.
    TypeError
        ``input_shape`` is not iterable.

    Examples
    --------
    >>> m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> flops(m, (1, 2, 2)).dense_macs
    12

    A 3x3 convolution, 1 -> 2 channels, on a 4x4 image, no padding: 2 * 2 * 2 outputs
    times 9 MACs; with half its weights zero, half the MACs:

    >>> conv = torch.nn.Conv2d(1, 2, 3)
    >>> with torch.no_grad():
    ...     _ = conv.weight[1].zero_()
    >>> rep = flops(conv, (1, 1, 4, 4))
    >>> rep.dense_macs, rep.sparse_macs, rep.layers[0]["density"]
    (72, 36.0, 0.5)
    """
    raw = tuple(input_shape)
    # 2.7 is not a size (int() would count it as 2); bool is not one either
    if any(isinstance(s, bool) or not float(s).is_integer() for s in raw):
        raise ValueError(f"input_shape must be positive ints, got {input_shape!r}")
    shape = tuple(int(s) for s in raw)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive ints, got {input_shape!r}")
    pruned = _check_pruned(model, pruned)
    names = {id(m): n for n, m in model.named_modules()}
    rows: dict[int, dict] = {}
    seen_weights: dict[int, str] = {}
    order: list[int] = []

    def hook(mod, inputs, out):
        key = id(mod)
        if isinstance(mod, nn.Linear):
            macs = out.numel() * mod.in_features
        else:
            macs = out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
        if key in rows:  # a module used twice computes twice
            rows[key]["dense_macs"] += macs
            return
        w = mod.weight
        nz = int(torch.count_nonzero(w))
        name = names.get(key, type(mod).__name__)
        row = {
            "name": name,
            "kind": parametrize.type_before_parametrizations(mod).__name__,
            "shape": tuple(w.shape),
            "params": w.numel(),
            "nonzero": nz,
            "density": nz / w.numel(),
            "dense_macs": macs,
            "pruned": True if pruned is None else name in pruned,
        }
        wid = _weight_id(mod)
        if wid in seen_weights:
            row["shared_with"] = seen_weights[wid]
            row["pruned"] = pruned is None or seen_weights[wid] in pruned
        else:
            seen_weights[wid] = name
        rows[key] = row
        order.append(key)

    _run_hooked(model, shape, hook)
    layers = []
    for key in order:
        r = rows[key]
        r["sparse_macs"] = r["density"] * r["dense_macs"]
        layers.append(r)
    return FlopsReport(shape, layers)


def refuse_exported(model: nn.Module, what: str) -> None:
    """ValueError for a model with exported layers (``export``'s sparse modules hold no
    ``weight`` and would not be counted): ``densify`` gives the same layers, countable."""
    for name, mod in model.named_modules():
        if isinstance(mod, SparseLinear | SparseConv2d | ActivationChain):
            raise ValueError(
                f"{what} counts dense-format Conv and Linear layers; layer {name!r} is an "
                f"exported {type(mod).__name__}: count densify(model) (the same weights) or "
                "the model before export"
            )


def _run_hooked(model: nn.Module, shape: tuple, hook) -> None:
    """One forward pass of zeros of ``shape`` in eval mode with ``hook`` on every Conv /
    Linear layer; the hooks and each module's train mode are put back however it ends."""
    refuse_exported(model, "flops")
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE)]
    if not handles:
        raise ValueError("model has no Conv1d/2d/3d or Linear layer to count")
    modes = {m: m.training for m in model.modules()}
    try:
        ref = next(iter(model.parameters()))
        model.eval()
        with torch.no_grad(), fits_the_model(f"input_shape={shape!r}"):
            model(torch.zeros(shape, dtype=ref.dtype, device=ref.device))
    finally:
        for h in handles:
            h.remove()
        for m, t in modes.items():
            m.training = t


def _weight_id(mod: nn.Module) -> int:
    # the raw parameter behind a parametrized weight identifies shared tensors
    if hasattr(mod, "parametrizations") and "weight" in mod.parametrizations:
        return id(mod.parametrizations.weight.original)
    return id(mod.weight)
