"""ONNX export of a squashed sparse model: ``export_onnx``.

The file is an ordinary dense ONNX model (the zeros are stored as zeros), with the sparsity
recorded in its metadata, and it is checked with ONNX Runtime against the torch output
before it replaces anything at ``path``.

Speed: ONNX Runtime runs Conv / Gemm / MatMul with dense kernels whatever the values, so a
squashed model runs at the speed of the dense one there (measured in
``benchmarks/onnx_speed.py``); the zeros pay off in size after compression, and in speed
only with sparse kernels such as ``shrinkage.weights.export``.

Needs ``onnx`` and ``onnxruntime`` (``pip install 'shrinkage[onnx]'``).

Examples
--------
>>> import torch
>>> from shrinkage.integrations.onnx import export_onnx
>>> net = torch.nn.Sequential(torch.nn.Linear(8, 4))
>>> info = export_onnx(net, torch.randn(2, 8), "net.onnx")      # doctest: +SKIP
>>> info["sparsity"], info["max_abs_diff"] < 1e-5                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import __version__
from .._checks import check_int_at_least, check_nonnegative, fits_the_model
from .._io import atomic_path, check_writable_file
from ..weights import PRUNABLE, ActivationChain, SparseConv2d, SparseLinear
from ._common import require

_onnx = require("onnx", "onnx", "shrinkage.integrations.onnx")
_ort = require("onnxruntime", "onnx", "shrinkage.integrations.onnx")

__all__ = ["export_onnx", "sparsity_metadata", "read_metadata", "session"]


_EXPORTED = (SparseLinear, SparseConv2d, ActivationChain)


def sparsity_metadata(model: nn.Module) -> dict[str, str]:
    """Zeros of the Conv / Linear weights (each tensor counted once) as ONNX metadata:
    ``shrinkage.sparsity``, ``shrinkage.nonzero``, ``shrinkage.params`` and
    ``shrinkage.layers`` (JSON: name -> [nonzero, size]). The layers of an exported model
    (``SparseLinear``, ``SparseConv2d``, ``ActivationChain``) count as the dense ones they
    stand for."""
    layers, seen = {}, set()
    for name, mod in model.named_modules():
        if isinstance(mod, PRUNABLE) and id(mod.weight) not in seen:
            seen.add(id(mod.weight))
            w = mod.weight.detach()
            layers[name] = [int(torch.count_nonzero(w)), w.numel()]
        elif isinstance(mod, SparseLinear | SparseConv2d):
            lin = mod.matrix if isinstance(mod, SparseConv2d) else mod
            nz = int(torch.count_nonzero(lin.values))
            layers[name] = [nz, lin.in_features * lin.out_features]
        elif isinstance(mod, ActivationChain):
            for i, (lname, spec) in enumerate(zip(mod.names, mod.specs)):
                w = mod.dense_weight(i)
                layers[lname] = [int(torch.count_nonzero(w)), spec["in"] * spec["out"]]
    nonzero = sum(v[0] for v in layers.values())
    params = sum(v[1] for v in layers.values())
    return {
        "shrinkage.sparsity": f"{1 - nonzero / params:.6f}" if params else "0",
        "shrinkage.nonzero": str(nonzero),
        "shrinkage.params": str(params),
        "shrinkage.layers": json.dumps(layers),
        "shrinkage.version": __version__,
    }


def read_metadata(path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as a dict (a ValueError naming ``path`` when
    the file is not an ONNX model: protobuf reads some garbage as an empty one)."""
    try:
        m = _onnx.load(str(path), load_external_data=False)
    except OSError:
        raise
    except Exception as e:  # protobuf's DecodeError and the like: not an ONNX file
        raise ValueError(f"path={str(path)!r} is not an ONNX model ({type(e).__name__})") from None
    if m.ir_version == 0 or not m.HasField("graph"):
        raise ValueError(f"path={str(path)!r} is not an ONNX model (no IR version or graph)")
    return {p.key: p.value for p in m.metadata_props}


def session(path, threads: int = 1):
    """An ONNX Runtime CPU session with ``threads`` (>= 1) intra-op threads."""
    threads = check_int_at_least("threads", threads)
    opts = _ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    return _ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_onnx(
    model: nn.Module,
    example_input: torch.Tensor,
    path,
    *,
    dynamic_batch: bool = True,
    dynamo: bool = True,
    opset: int | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> dict:
    """Export a squashed model to ONNX, record its sparsity, check it with ONNX Runtime.

    Parameters
    ----------
    model : a plain model (after ``squash``); exported in
        eval mode (its mode is restored).
    example_input : one input tensor (its batch dimension is left dynamic with
        ``dynamic_batch``).
    path : the ``.onnx`` file; written atomically, and only once the check passed.
    dynamo : the ``torch.export``-based exporter (torch's default) or, with False, the
        TorchScript one.
    opset : ONNX opset (exporter default when None).
    rtol, atol : tolerance of the ONNX Runtime output against torch's.

    Returns
    -------
    dict with ``path``, ``sparsity``, ``nonzero``, ``params`` and ``max_abs_diff`` (ONNX
    Runtime vs torch on ``example_input``).

    Raises
    ------
    ValueError
        if the model still has a parametrization (not squashed) or holds modules of
        ``shrinkage.weights.export`` (sparse kernels: export the dense model), does not return
        one tensor, ``example_input`` is not a tensor or not an input the model can take (or
        is 0-d with ``dynamic_batch``), ``path`` is a folder, ``dynamic_batch`` or ``dynamo``
        is not a bool, ``rtol`` or ``atol`` is negative, ``opset`` is not a version this
        torch's exporter writes, or with ``dynamic_batch`` the model fixes its batch size
        (the file is checked at one more sample than the example).
    RuntimeError
        if ONNX Runtime's output differs from torch's beyond the tolerance (nothing written).
    """
    _check_model(model, example_input, dynamic_batch, dynamo)
    path, opset = _check_target(path, rtol, atol, opset)
    was = model.training
    model.eval()
    try:
        label = f"example_input (shape {tuple(example_input.shape)})"
        with torch.no_grad(), fits_the_model(label):
            out = model(example_input)
        expected = _one_tensor(out).detach().cpu().numpy()
        meta = sparsity_metadata(model)
        with atomic_path(path) as tmp:
            _export(model, example_input, tmp, dynamic_batch, dynamo, opset)
            proto = _onnx.load(str(tmp))
            wrote = next(
                (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None
            )
            if opset is not None and wrote != opset:  # the dynamo exporter falls back silently
                raise ValueError(
                    f"opset={opset} was asked for but the exporter wrote opset {wrote}; "
                    f"{str(path)!r} not written"
                )
            for k, v in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = k, v
            _onnx.save(proto, str(tmp))
            got = session(tmp).run(None, {"input": example_input.detach().cpu().numpy()})[0]
            diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
            if not np.allclose(got, expected, rtol=rtol, atol=atol):
                raise RuntimeError(
                    f"ONNX Runtime output differs from torch by up to {diff:.3g} "
                    f"(rtol={rtol}, atol={atol}); {str(path)!r} not written"
                )
            if dynamic_batch:
                _check_other_batch(model, example_input, tmp, path, rtol, atol)
    finally:
        model.train(was)
    return {
        "path": str(path),
        "sparsity": float(meta["shrinkage.sparsity"]),
        "nonzero": int(meta["shrinkage.nonzero"]),
        "params": int(meta["shrinkage.params"]),
        "max_abs_diff": diff,
    }


def _check_model(model, example_input, dynamic_batch, dynamo) -> None:
    """What export_onnx refuses before any work, naming it."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise ValueError(
            f"example_input must be a torch.Tensor, got {type(example_input).__name__}"
        )
    live = [n or "<root>" for n, m in model.named_modules() if parametrize.is_parametrized(m)]
    if live:
        raise ValueError(
            f"model has parametrized modules {live[:3]}: call sparsifier.squash() before "
            "exporting (ONNX gets the plain dense-format model)"
        )
    kernels = [n or "<root>" for n, m in model.named_modules() if isinstance(m, _EXPORTED)]
    if kernels:
        raise ValueError(
            f"model has modules of shrinkage.weights.export {kernels[:3]} (sparse kernels "
            "ONNX has no operator for): export the squashed dense model instead, or "
            "shrinkage.weights.densify(model)"
        )
    for name, flag in (("dynamic_batch", dynamic_batch), ("dynamo", dynamo)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {name}={flag!r}")
    if dynamic_batch and example_input.dim() == 0:
        raise ValueError(
            "example_input must have a batch dimension with dynamic_batch=True, got a 0-d "
            "tensor (pass dynamic_batch=False for a model without one)"
        )


def _one_tensor(out):
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"model must return one tensor, got a {type(out).__name__} (a model returning "
            "a tuple, a dict or a Hugging Face ModelOutput: wrap it in a module that "
            "returns the tensor to export, e.g. the logits)"
        )
    return out


def _check_other_batch(model, x, tmp, path, rtol, atol) -> None:
    """With dynamic_batch: the file at one more sample than the example, against torch. A
    model that fixes its batch (a reshape to a literal size) is otherwise exported with a
    constant one by torch.export, and with a symbolic one the graph cannot run by the
    TorchScript exporter, both silently."""
    x2 = torch.cat([x, x[:1]]).detach()
    fixed = ValueError(
        f"the model fixes its batch size (it cannot run on {len(x2)} samples when the example "
        f"has {len(x)}): pass dynamic_batch=False to export that batch only; {str(path)!r} "
        "not written"
    )
    try:
        with torch.no_grad():
            want = model(x2).detach().cpu().numpy()
    except (RuntimeError, ValueError, IndexError) as e:
        raise fixed from e
    try:
        got = session(tmp).run(None, {"input": x2.cpu().numpy()})[0]
    except Exception as e:  # onnxruntime's own error types
        raise fixed from e
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
        raise fixed


def _check_target(path, rtol, atol, opset) -> tuple[Path, int | None]:
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"path must be a file path ending in .onnx, got {path!r}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end in .onnx, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"path must be a file, got path={str(path)!r}, which is a folder")
    check_writable_file(path, "path")  # a folder that cannot be made (under a file, say)
    for name, v in (("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"{name} must be a number >= 0, got {name}={v!r}")
        check_nonnegative(name, v)
    return path, None if opset is None else check_int_at_least("opset", opset)


def _export(model, x, path: Path, dynamic_batch: bool, dynamo: bool, opset) -> None:
    try:
        _export_with(model, x, path, dynamic_batch, dynamo, opset)
    except RuntimeError as e:
        if opset is not None and "opset" in str(e).lower():
            raise ValueError(f"opset={opset} is not one this torch's exporter writes: {e}") from e
        raise


def _export_with(model, x, path: Path, dynamic_batch: bool, dynamo: bool, opset) -> None:
    kw = dict(input_names=["input"], output_names=["output"], opset_version=opset)
    if dynamic_batch and x.dim() and x.shape[0] == 1:
        x = torch.cat([x, x])  # torch.export would specialise a batch of 1 to a constant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if dynamo:
            shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
            prog = torch.onnx.export(
                model, (x,), dynamo=True, dynamic_shapes=shapes, verbose=False, **kw
            )
            prog.save(str(path))  # one file: LeNet-sized models need no external data
        else:
            axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(model, (x,), str(path), dynamo=False, dynamic_axes=axes, **kw)
