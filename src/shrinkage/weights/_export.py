"""Turn zero weights into speed: run sparse-enough layers on sparse kernels.

``export(model, min_sparsity=0.8, batch_size=1)`` returns a copy of ``model`` in
which every ``nn.Linear`` whose weight has at least ``min_sparsity`` exact zeros is
replaced by a ``SparseLinear`` running the kernel that measured fastest on
``batch_size`` rows, among ``candidates``; dense stays whenever it is faster.
``nn.Conv2d`` layers get the same choice (as ``SparseConv2d``, im2col + the same
kernels) when an ``example_input`` gives their input size; every other layer is
kept as it is, dense.

Kernels (``KERNELS``), for ``y = x W^T + b`` with ``W`` in CSR form:

- ``"dense"``: the original ``nn.Linear``.
- ``"torch_csr"``: ``torch.sparse`` CSR, int64 indices (12 bytes per float32 non-zero).
- ``"torch_csr_i32"``: the same with int32 indices (8 bytes).
- ``"c_csr_i32"`` / ``"c_csr_u16"``: a small C kernel (row chunks of equal non-zeros
  shared by a work-claiming thread pool, vectorised over the batch) with int32 or
  16-bit column indices (8 or 6 bytes per non-zero); CPU, float32/float64; compiled at
  first use by ``shrinkage.weights._kernels``, torch CSR otherwise (with a warning).
- ``"torch_bsr"``: torch block-CSR with 4 x 4 blocks. Not a default candidate:
  unstructured pruning leaves most blocks with one non-zero, so it stores ~10x
  the values (measured in ``benchmarks/sparse_inference.py``).

The exported model is for inference: values are buffers, not parameters. Gradients
still reach the *input* (a grad-requiring input takes the torch CSR path). A C-kernel
layer given a batch returns its output as a transposed view (``(N, out)`` with
strides ``(1, N)``): the next sparse layer reads it without a copy; call
``.contiguous()`` before ``.view``.

Saving: ``torch.save(exported)`` pickles the whole model; its ``state_dict()`` holds
the CSR arrays and the kernel name, and ``load_exported`` rebuilds an exported
model from a dense skeleton and that state dict. ``densify`` returns the plain
dense model (a state dict any dense copy of the architecture loads).

Example
-------
Examples
--------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
>>> with torch.no_grad():
...     _ = net[0].weight.mul_(torch.rand(32, 64) > 0.9)
>>> fast = export(net, min_sparsity=0.8, batch_size=1, candidates=("torch_csr",))
>>> type(fast[0]).__name__, type(fast[2]).__name__
('SparseLinear', 'Linear')
>>> x = torch.randn(3, 64)
>>> torch.allclose(fast(x), net(x), atol=1e-5)
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from .. import _checks
from ._act_chain import ACT_KERNELS, ActivationChain, check_chain_state
from ._autotune import (
    Unpacked,
    _check_candidates,
    _supported,
    _time_modules,
    bytes_per_call,
    example_rows,
)
from ._sparse_modules import (
    DEFAULT_CANDIDATES,
    KERNELS,
    SparseConv2d,
    SparseLinear,
    check_extra_state,
    plain_type,
    weight_sparsity,
)

__all__ = [
    "KERNELS",
    "ACT_KERNELS",
    "ActivationChain",
    "DEFAULT_CANDIDATES",
    "SparseLinear",
    "SparseConv2d",
    "export",
    "densify",
    "load_exported",
    "kernel_summary",
    "bytes_per_call",
    "weight_sparsity",
]


def _replaceable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    found = []
    skip = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            # MHA reads out_proj.weight directly: replacing it would break the module
            skip.update(f"{name}.{child}" if name else child for child, _ in mod.named_children())
        elif name and name not in skip and plain_type(mod) in (nn.Linear, nn.Conv2d):
            # exact types: a subclass may compute something else in its forward (a scale,
            # an adapter), which a sparse kernel would drop
            found.append((name, mod))
    return found


def _conv_input_shapes(model: nn.Module, example_input) -> dict[str, tuple]:
    """Input shape of every Conv2d in one forward pass of ``example_input``; a ValueError
    when a Conv2d gets one image unbatched, or a Linear the example's own vector (the
    timings repeat an input's first dimension as rows)."""
    shapes: dict[str, tuple] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear):

            def hook(m, args, name=name):
                shapes.setdefault(name, tuple(args[0].shape))

            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        _forward(model, example_input)
    finally:
        for h in hooks:
            h.remove()
    items = example_input if isinstance(example_input, tuple | list) else (example_input,)
    given = {tuple(t.shape) for t in items if isinstance(t, torch.Tensor) and t.dim() == 1}
    for name, shape in shapes.items():
        conv = isinstance(model.get_submodule(name), nn.Conv2d)
        # a Linear may see a vector inside a batched model; the example's own vector is one
        # sample, whose first dimension the timings would repeat as rows
        if (len(shape) < 4) if conv else (shape in given):
            raise ValueError(
                f"example_input reaches layer {name!r} unbatched (shape {shape}): give a batch "
                "of inputs, e.g. example_input.unsqueeze(0)"
            )
    return {n: s for n, s in shapes.items() if isinstance(model.get_submodule(n), nn.Conv2d)}


def _forward(model: nn.Module, example_input) -> None:
    with torch.no_grad():
        if isinstance(example_input, tuple | list):
            model(*example_input)
        else:
            model(example_input)


def _check_example(model: nn.Module, example_input) -> None:
    """An ``example_input`` the timing cannot use (a tensor without rows or with a NaN or
    inf: real inputs are what it stands for) or that the dense model cannot take (one
    forward pass) is a ValueError naming it, before any timing."""
    shape = getattr(example_input, "shape", None)
    what = f"shape {tuple(shape)}" if shape is not None else type(example_input).__name__
    items = example_input if isinstance(example_input, tuple | list) else (example_input,)
    for t in items:
        if not isinstance(t, torch.Tensor):
            continue
        if t.dim() == 0 or t.shape[0] == 0:
            raise ValueError(
                f"example_input ({what}) needs at least one row (sample) in each tensor, "
                f"got shape {tuple(t.shape)}"
            )
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"example_input ({what}) holds NaN or inf: give real inputs (the timings and "
                "the output check run on them)"
            )
    with _checks.fits_the_model(f"example_input ({what})"):
        _forward(model, example_input)


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def export(
    model: nn.Module,
    min_sparsity: float = 0.8,
    batch_size: int = 1,
    candidates: Iterable[str] = DEFAULT_CANDIDATES,
    rounds: int = 7,
    return_timings: bool = False,
    example_input=None,
    activations: bool = False,
):
    """Copy of ``model`` whose sparse-enough Linear layers run on the fastest sparse kernel.

    Each ``nn.Linear`` with weight sparsity (share of exact zeros) ``>= min_sparsity``
    is timed under every supported kernel in ``candidates`` plus ``"dense"`` on a
    random ``(batch_size, in_features)`` input of the layer's dtype and device (median
    of single calls in interleaved rounds, at least ``rounds``) and replaced by
    ``SparseLinear`` with the fastest one, or kept dense when dense wins. Naming
    exactly one kernel forces it without timing. ``nn.Conv2d`` layers (groups 1, zero
    padding) get the same choice as ``SparseConv2d`` when ``example_input`` is
    given (one forward pass records their input sizes; timed with ``batch_size``
    images); without it they stay dense, like every other module. With
    ``example_input``, the whole model as chosen is then timed against the same layers
    all on torch CSR and against dense, on ``batch_size`` rows of the example (its rows
    repeated as needed), and the fastest is kept. The input ``model``
    is not modified (its forward passes here run in eval mode, each module's mode
    restored). Outputs equal the dense model's up to float rounding, for finite inputs (a
    zero weight times an inf input is NaN in a dense product; a sparse kernel skips it).
    Layers are matched by exact type: a subclass of ``nn.Linear`` may compute more in its
    forward and stays dense (a ``parametrize``-d layer counts as its class).

    With ``activations=True`` zero activations are skipped too: each ``Linear ->
    activation`` of an ``nn.Sequential`` (``nn.ReLU`` or a thresholding module of
    ``shrinkage.thresholds``) is also timed on activation-and-weight-sparse kernels
    that visit only the non-zero entries of its input (``ActivationChain``: dense
    ``W^T`` or CSC weights, the activation fused), on its input in one forward pass of
    ``example_input`` (required: real data, since activation sparsity depends on it);
    consecutive layers on those kernels run as one chain, one call into C. The whole
    model is timed against dense and against the weight-sparse-only choice, and its output
    on ``example_input`` is checked against the dense model's (RuntimeError if it
    differs). See ``shrinkage.weights._act_export``.

    Layers inside an ``nn.MultiheadAttention`` stay dense (it reads its ``out_proj``
    weight directly). The kernels are listed in the module ``shrinkage.weights._export``
    (``KERNELS``): torch CSR with int64 or int32 indices, a compiled C CSR kernel with
    int32 or 16-bit column indices, torch block-CSR.

    Parameters
    ----------
    model : torch.nn.Module
        The model (e.g. a ``Sparsifier.squash``-ed one); not modified.
    min_sparsity : float, default 0.8
        Share of exact zeros, in [0, 1], from which a layer is considered for a sparse
        kernel.
    batch_size : int, default 1
        Rows (images for a conv) of the random probe input each kernel is timed on, >= 1:
        the batch size the model will serve.
    candidates : str or iterable of str, default DEFAULT_CANDIDATES
        Kernel names from ``KERNELS`` (``"dense"``, ``"torch_csr"``, ``"torch_csr_i32"``,
        ``"c_csr_i32"``, ``"c_csr_u16"``, ``"torch_bsr"``); the default is every one but
        ``"torch_bsr"``. Unsupported ones (a C kernel on a GPU, a size the kernel cannot
        index) are skipped; ``"dense"`` is always in the race. Exactly one name forces
        that kernel on every eligible layer, without timing.
    rounds : int, default 7
        Interleaved timing rounds (at least), >= 1.
    return_timings : bool, default False
        Also return the per-layer report.
    example_input : torch.Tensor or tuple, optional
        One input of the model (a tuple is unpacked into the call): records the Conv2d
        input sizes, so convolutions can go sparse, and enables the whole-model check.
        Required with ``activations=True`` (real data: activation sparsity depends on it).
    activations : bool, default False
        Also time activation-and-weight-sparse kernels (``ActivationChain``) on each
        ``Linear -> activation`` of an ``nn.Sequential``, and check the whole model's output
        on ``example_input`` against the dense model's.

    Returns
    -------
    torch.nn.Module or (torch.nn.Module, dict)
        The exported model, or ``(model, timings)`` with ``return_timings``:
        ``{layer name: {"sparsity": s, "kernel": chosen, "ms": {kernel: median ms}}}``
        (``ms`` empty for a forced kernel or an ineligible layer; ``whole_model_ms`` added
        by the whole-model check).

    Raises
    ------
    RuntimeError
        With ``activations=True``: the exported model's output on ``example_input``
        differs from the dense model's.
    ValueError
        ``model`` is not a module; ``min_sparsity`` is not a number in [0, 1];
        ``batch_size`` or ``rounds`` is not an integer >= 1; ``candidates`` is empty or
        names an unknown kernel; the one forced kernel cannot run an eligible layer here
        (its size, dtype or device); ``activations=True`` without ``example_input``;
        an ``example_input`` the model cannot take (checked by one dense forward pass),
        or a tensor of it without rows or with a NaN or inf, or that reaches a layer
        unbatched; a layer to make sparse holds a NaN or inf weight.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.mul_(torch.rand(8, 16) > 0.9)  # about 90% zeros
    >>> fast, info = export(net, candidates="torch_csr", return_timings=True)
    >>> type(fast[0]).__name__, info["0"]["kernel"], info["2"]["kernel"]
    ('SparseLinear', 'torch_csr', 'dense')
    >>> fast[0].nnz == int(torch.count_nonzero(net[0].weight))
    True
    >>> x = torch.randn(5, 16)
    >>> torch.allclose(fast(x), net(x), atol=1e-6)
    True
    """
    checked = _check_export(model, min_sparsity, batch_size, rounds, candidates)
    # Export's own forward passes (the example's check, shapes, timings) run in eval mode:
    # in train mode they would move BatchNorm statistics and draw dropout masks. Every
    # module's mode is restored after, and the copy returned comes back in the same modes.
    modes = {n: m.training for n, m in model.named_modules()}
    model.eval()
    try:
        result = _export_in_eval(model, *checked, return_timings, example_input, activations)
    finally:
        _set_modes(model, modes)
    _set_modes(result[0] if return_timings else result, modes)
    return result


def _set_modes(model: nn.Module, modes: dict[str, bool]) -> None:
    """Each module's ``training`` flag as recorded by name (not recursively, as train() is)."""
    for name, mod in model.named_modules():
        if name in modes:
            mod.training = modes[name]


def _export_in_eval(
    model, ms, batch_size, rounds, cands, forced, return_timings, example_input, act
):
    """``export`` of a model in eval mode, its arguments checked."""
    if example_input is not None:
        _check_example(model, example_input)
    if act:
        from ._act_export import export_activations

        return export_activations(
            model, ms, batch_size, cands, rounds, example_input, return_timings
        )
    out = copy.deepcopy(model)
    conv_shapes = {} if example_input is None else _conv_input_shapes(out, example_input)
    report: dict[str, dict] = {}
    # Sparse layers return (out, batch)-major outputs that the next sparse layer reads
    # without a transpose; time each Linear with the layout a chain would hand it.
    prev_sparse = False
    for name, mod in _replaceable(out):
        is_conv = isinstance(mod, nn.Conv2d)
        transposed_input, prev_sparse = prev_sparse and not is_conv, False
        s = weight_sparsity(mod.weight.detach())
        report[name] = entry = {"sparsity": s, "kernel": "dense", "ms": {}}
        if not _eligible(name, mod, s, ms, conv_shapes):
            continue
        _check_finite(name, mod)
        if forced is not None:
            kernel, new = forced, _forced(name, mod, forced)
        else:
            x = _probe_input(name, mod, batch_size, conv_shapes, transposed_input)
            kernel, entry["ms"], new = _fastest(mod, cands, x, rounds)
        entry["kernel"] = kernel
        if kernel != "dense":
            _set_submodule(out, name, new)
            prev_sparse = not is_conv
    if forced is None and example_input is not None:
        out = _best_whole_model(model, out, report, example_input, batch_size, rounds)
    return (out, report) if return_timings else out


def _check_export(model, min_sparsity, batch_size, rounds, candidates):
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if meta:
        raise ValueError(
            f"parameter {meta[0]!r} is on the 'meta' device: it holds no values to export; "
            "materialise the model first (to_empty + init, or load_state_dict)"
        )
    try:
        ms = float(min_sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"min_sparsity must be a number in [0, 1], got {min_sparsity!r}") from None
    if not (0.0 <= ms <= 1.0) or math.isnan(ms):
        raise ValueError(f"min_sparsity must be in [0, 1], got min_sparsity={min_sparsity!r}")
    batch_size = _checks.check_int_at_least("batch_size", batch_size, 1)
    rounds = _checks.check_int_at_least("rounds", rounds, 1)
    cands = _check_candidates(candidates)
    forced = cands[0] if len(cands) == 1 else None
    if forced is None and "dense" not in cands:
        cands = ("dense", *cands)
    return ms, batch_size, rounds, cands, forced


def _eligible(name, mod, sparsity, min_sparsity, conv_shapes) -> bool:
    out_f, in_f = mod.weight.shape[0], mod.weight[0].numel()
    if sparsity < min_sparsity or in_f == 0 or out_f == 0:
        return False
    if isinstance(mod, nn.Conv2d):
        # an input size to time it on, and a sparse path (groups, padding mode)
        return name in conv_shapes and SparseConv2d.supports(mod)
    return True


def _check_finite(name: str, mod: nn.Module) -> None:
    """A layer to make sparse holds finite weights and bias (no sparse layer stores a NaN or
    inf): a ValueError naming it, before any timing."""
    for attr in ("weight", "bias"):
        t = getattr(mod, attr, None)
        if t is not None and not bool(torch.isfinite(t.detach()).all()):
            raise ValueError(f"layer {name!r} has a NaN or inf {attr}: it cannot be exported")


def _build(mod, kernel):
    if isinstance(mod, nn.Conv2d):
        return SparseConv2d.from_conv(mod, kernel)
    return SparseLinear.from_linear(mod, kernel)


def _forced(name, mod, kernel):
    """The layer on the one kernel named (None for dense); an error if it cannot run here."""
    if kernel == "dense":
        return None
    w = mod.weight.detach()
    out_f, in_f = w.shape[0], w[0].numel()
    if not _supported(kernel, out_f, in_f, w.device, w.dtype):
        raise ValueError(
            f"kernel {kernel!r} cannot run layer {name!r} ({out_f}x{in_f}, {w.dtype}, {w.device})"
        )
    return _build(mod, kernel)


def _probe_input(name, mod, batch_size, conv_shapes, transposed):
    """A random input of the size and layout the layer will see."""
    w = mod.weight.detach()
    like = {"dtype": w.dtype, "device": w.device}
    if isinstance(mod, nn.Conv2d):
        return torch.randn((batch_size, *conv_shapes[name][1:]), **like)
    if transposed:
        return torch.randn((w[0].numel(), batch_size), **like).t()
    return torch.randn((batch_size, w[0].numel()), **like)


def _fastest(mod, cands, x, rounds):
    """(kernel, {kernel: median ms}, module) of the fastest supported candidate."""
    w = mod.weight.detach()
    mods: dict[str, nn.Module] = {}
    for k in cands:
        if _supported(k, w.shape[0], w[0].numel(), w.device, w.dtype):
            mods[k] = mod if k == "dense" else _build(mod, k)
    timings = _time_modules(mods, x, rounds)
    best = min(timings, key=timings.get)
    return best, timings, mods[best]


def _best_whole_model(model, chosen, report, example_input, batch_size, rounds):
    """Per-layer timing cannot see everything consecutive layers do to each other (caches,
    layouts handed on); time the whole model as chosen, with the same layers all on torch
    CSR, and dense, on ``batch_size`` inputs shaped like ``example_input``; keep the fastest.
    """
    sparse = [n for n, e in report.items() if e["kernel"] != "dense"]
    if not sparse:
        return chosen
    alts = {"chosen": chosen, "dense": model}
    csr = copy.deepcopy(model)
    for n in sparse:
        mod = csr.get_submodule(n)
        w = mod.weight.detach()
        if not _supported("torch_csr", w.shape[0], w[0].numel(), w.device, w.dtype):
            break
        build = SparseConv2d.from_conv if isinstance(mod, nn.Conv2d) else SparseLinear.from_linear
        _set_submodule(csr, n, build(mod, "torch_csr"))
    else:
        if any(report[n]["kernel"] != "torch_csr" for n in sparse):
            alts["torch_csr"] = csr
    x = example_rows(example_input, batch_size)
    if isinstance(x, tuple):
        alts = {k: Unpacked(m) for k, m in alts.items()}
    ms = _time_modules(alts, x, rounds)
    best = min(ms, key=ms.get)
    for n in sparse:
        report[n]["whole_model_ms"] = ms
        if best != "chosen":
            report[n]["kernel"] = best
    if best == "chosen":
        return chosen
    return copy.deepcopy(model) if best == "dense" else csr


def densify(model: nn.Module) -> nn.Module:
    """Copy of an exported model with every ``SparseLinear`` back to ``nn.Linear``.

    Every ``SparseConv2d`` goes back to ``nn.Conv2d`` as well, and every
    ``ActivationChain`` back to its Linear and activation modules; other modules are
    copied as they are. The result's state dict is one any dense copy of the architecture
    loads.

    Parameters
    ----------
    model : torch.nn.Module
        An exported model (from ``export`` or ``load_exported``); not modified.

    Returns
    -------
    torch.nn.Module
        A plain dense copy, same devices and dtypes, the same weights (zeros included).

    Raises
    ------
    ValueError
        ``model`` is not a module.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight[:, 1:].zero_()
    >>> back = densify(export(net, candidates="torch_csr"))
    >>> type(back[0]).__name__, torch.equal(back[0].weight, net[0].weight)
    ('Linear', True)
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model)
    inner = _conv_matrices(out)
    for name, mod in list(out.named_modules()):
        if isinstance(mod, ActivationChain):
            for mname, new in mod.to_modules():
                _set_submodule(out, mname, new)
        elif isinstance(mod, SparseConv2d):
            _set_submodule(out, name, mod.to_conv())
        elif isinstance(mod, SparseLinear) and name not in inner:
            _set_submodule(out, name, mod.to_linear())
    return out


def _conv_matrices(model: nn.Module) -> set[str]:
    """Names of the SparseLinear children that belong to a SparseConv2d."""
    return {f"{name}.matrix" for name, m in model.named_modules() if isinstance(m, SparseConv2d)}


def load_exported(model: nn.Module, state_dict: dict) -> nn.Module:
    """Rebuild an exported model from a dense skeleton and an exported ``state_dict()``.

    Each Linear of the copy of ``model`` whose key ``<name>._extra_state`` is in
    ``state_dict`` becomes a ``SparseLinear`` (a Conv2d with ``<name>.matrix._extra_state``
    a ``SparseConv2d``); then the state dict is loaded (strictly). The skeleton's weight
    values do not matter.

    Every sparse layer is checked once, here, whatever kernel it will run on: sizes, dtypes,
    row pointers, column indices in range and increasing within rows, finite values (a
    corrupted checkpoint raises ValueError instead of reading out of bounds later).

    Parameters
    ----------
    model : torch.nn.Module
        A dense skeleton of the architecture (a fresh instance of the model class); not
        modified.
    state_dict : Mapping
        ``exported.state_dict()`` of an exported model (e.g. read back with
        ``torch.load``).

    Returns
    -------
    torch.nn.Module
        The exported model, on the skeleton's devices.

    Raises
    ------
    ValueError
        ``model`` is not a module, ``state_dict`` is not a mapping, or does not fit the
        skeleton, or holds an invalid sparse layer (including one whose buffers do not
        match the checksum saved with them).

    Examples
    --------
    >>> make = lambda: nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> net = make()
    >>> with torch.no_grad():
    ...     _ = net[0].weight[:, 1:].zero_()
    >>> fast = export(net, candidates="torch_csr")
    >>> again = load_exported(make(), fast.state_dict())
    >>> type(again[0]).__name__, again[0].kernel, again[0].nnz
    ('SparseLinear', 'torch_csr', 4)
    >>> x = torch.randn(3, 6)
    >>> torch.equal(again(x), fast(x))
    True
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    out = copy.deepcopy(model)
    for name, mod in list(out.named_modules()):
        if not name:
            continue
        device = next(iter(mod.parameters()), next(iter(mod.buffers()), torch.empty(0))).device
        conv = state_dict.get(f"{name}._extra_state")
        mat = state_dict.get(f"{name}.matrix._extra_state")
        try:
            if isinstance(conv, dict) and "chain" in conv:
                _place_chain(out, name, mod, conv, device)
            elif isinstance(mod, nn.Conv2d | SparseConv2d) and mat is not None and conv is not None:
                matrix = _empty_sparse(mat, f"{name}.matrix", state_dict)
                new_conv = SparseConv2d(_conv_args(conv), matrix)
                _check_same_conv(mod, new_conv)
                _set_submodule(out, name, new_conv.to(device))
            elif isinstance(mod, nn.Linear | SparseLinear) and conv is not None:
                sparse = _empty_sparse(conv, name, state_dict)
                shape = (sparse.out_features, sparse.in_features)
                if isinstance(mod, nn.Linear) and tuple(mod.weight.shape) != shape:
                    raise ValueError(
                        f"the state's layer is {shape} (out, in), the skeleton's Linear "
                        f"{tuple(mod.weight.shape)}"
                    )
                _set_submodule(out, name, sparse.to(device))
        except ValueError as e:
            raise ValueError(f"layer {name!r}: {e}") from None
    _check_dtypes(model, state_dict)
    try:
        out.load_state_dict(state_dict)
    except RuntimeError as e:  # missing / unexpected keys, shape mismatches
        raise ValueError(f"state_dict does not fit the skeleton: {e}") from None
    for name, mod in out.named_modules():
        if isinstance(mod, SparseConv2d | SparseLinear | ActivationChain):
            try:
                mod.validate()
            except ValueError as e:
                raise ValueError(f"layer {name!r}: {e}") from None
    return out


def _check_dtypes(model: nn.Module, state_dict) -> None:
    """The skeleton's floating-point tensors (``model`` as given, before any layer is made
    sparse) in the state's dtype: load_state_dict would convert the dense layers to the
    skeleton's dtype and leave the sparse ones in the state's, a model that runs on no
    input."""
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for key, value in state_dict.items():
        mine = own.get(key)
        if (
            isinstance(value, torch.Tensor)
            and isinstance(mine, torch.Tensor)
            and value.is_floating_point()
            and mine.is_floating_point()
            and value.dtype != mine.dtype
        ):
            raise ValueError(
                f"the skeleton's {key} is {mine.dtype} but the state's is {value.dtype}: build "
                f"the skeleton in {value.dtype} (convert the loaded model afterwards if needed)"
            )


def _place_chain(model, name, mod, extra, device) -> None:
    """An empty ActivationChain at ``name`` (its first Linear in the skeleton), the modules
    it stands for replaced by nn.Identity; names and sizes checked against the skeleton."""
    specs, names, acts = check_chain_state(extra)
    if names[0] != name:
        raise ValueError(f"activation chain state names {names[0]!r} first, found at {name!r}")
    for lname, spec in zip(names, specs):
        try:
            lin = model.get_submodule(lname)
        except AttributeError:
            raise ValueError(f"activation chain layer {lname!r} is not in the skeleton") from None
        if isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) != (
            spec["in"],
            spec["out"],
        ):
            raise ValueError(
                f"activation chain layer {lname!r} is {spec['out']}x{spec['in']}, the "
                f"skeleton's Linear {lin.out_features}x{lin.in_features}"
            )
    chain = ActivationChain(specs, names, acts).to(device)
    _set_submodule(model, name, chain)
    for other in chain.covers:
        try:
            model.get_submodule(other)
        except AttributeError:
            raise ValueError(f"activation chain module {other!r} is not in the skeleton") from None
        _set_submodule(model, other, nn.Identity())


def _empty_sparse(extra, name, state_dict) -> SparseLinear:
    """An empty SparseLinear for an extra state, its sizes checked against the row pointers
    before anything is allocated from them."""
    kernel, in_f, out_f = check_extra_state(extra)
    crow = state_dict.get(f"{name}.crow_indices")
    rows = out_f // 4 if kernel == "torch_bsr" else out_f
    if not isinstance(crow, torch.Tensor) or crow.shape != (rows + 1,):
        raise ValueError(
            f"{name}.crow_indices must be a tensor of shape ({rows + 1},) for out_features="
            f"{out_f}, got {getattr(crow, 'shape', type(crow).__name__)}"
        )
    return SparseLinear(in_f, out_f, kernel)


def _check_same_conv(mod: nn.Module, new: SparseConv2d) -> None:
    """The state's convolution is the skeleton's Conv2d (channels, kernel, stride, padding,
    dilation), as a sparse Linear's size is checked against the skeleton's Linear."""
    if not isinstance(mod, nn.Conv2d):
        return
    for key in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"):
        mine, theirs = getattr(mod, key), getattr(new, key)
        if mine != theirs:  # ints, or pairs (padding "same" is a str: no sparse conv has it)
            raise ValueError(
                f"the state's convolution has {key}={theirs!r}, the skeleton's Conv2d {mine!r}"
            )


def _conv_args(extra) -> dict:
    if not isinstance(extra, dict) or not isinstance(extra.get("conv"), dict):
        raise ValueError(f"sparse conv state must be a dict with 'conv', got {extra!r}")
    return extra["conv"]


def kernel_summary(model: nn.Module) -> list[dict]:
    """One row per Linear / Conv2d layer, sparse or dense: name, shape, sparsity, kernel.

    What ``export`` chose, read back from a model (an exported one, or one rebuilt by
    ``load_exported``): the layers on sparse kernels and those left dense.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; its ``SparseLinear``, ``SparseConv2d`` and ``ActivationChain`` layers
        are listed with their kernels, its ``nn.Linear`` and ``nn.Conv2d`` as ``"dense"``.

    Returns
    -------
    list of dict
        ``{"name", "shape", "sparsity", "kernel"}`` per layer, in module order; ``shape`` is
        the weight as a matrix, (out, in) or (out, C*kh*kw), ``sparsity`` its share of
        exact zeros.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight[:, 1:].zero_()
    >>> [(r["name"], r["kernel"]) for r in kernel_summary(export(net, candidates="torch_csr"))]
    [('0', 'torch_csr'), ('2', 'dense')]
    """
    rows = []
    inner = _conv_matrices(model)
    for name, mod in model.named_modules():
        if isinstance(mod, ActivationChain):
            for i, (lname, spec) in enumerate(zip(mod.names, mod.specs)):
                nnz = mod.layer_nnz(i)
                size = spec["in"] * spec["out"]
                rows.append(
                    {
                        "name": lname,
                        "shape": (spec["out"], spec["in"]),
                        "sparsity": 1.0 - nnz / max(1, size),
                        "kernel": spec["kernel"],
                    }
                )
            continue
        if isinstance(mod, SparseConv2d | SparseLinear) and name not in inner:
            m = mod.matrix if isinstance(mod, SparseConv2d) else mod
            shape, s, kernel = (m.out_features, m.in_features), m.sparsity, m.kernel
        elif isinstance(mod, nn.Linear | nn.Conv2d):
            w = mod.weight.detach()
            shape, s, kernel = (w.shape[0], w[0].numel()), weight_sparsity(w), "dense"
        else:
            continue
        rows.append({"name": name, "shape": shape, "sparsity": s, "kernel": kernel})
    return rows
