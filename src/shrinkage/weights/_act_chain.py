"""Exported layer stacks that skip zero activations as well as zero weights.

``ActivationChain`` runs consecutive layers ``x_l = phi_l(W_l x_{l-1} + b_l)`` in one
call of a C kernel (``_native/actmm.c``): for each sample, only the non-zero entries of a
layer's input are visited, each adding its column of ``W`` (stored column-wise: dense
``W^T`` for ``"act_dense"``, CSC with 16- or 32-bit rows for ``"act_csc_u16"`` /
``"act_csc_i32"``) into the output, whose activation is applied and whose non-zeros are
listed for the next layer in the same pass. The activations are read from the model's
modules: ``nn.ReLU`` and the thresholding modules of ``shrinkage.thresholds``
(``ShiftedReLU``, ``SoftThreshold``,
``CReLU``, ``CST``: their ``tau``
and ``m``).

The chain sits where its first Linear was; the other modules it replaces (its
activations and later Linears) become ``nn.Identity``, so the state dict keeps the model's
structure: ``<first>._extra_state`` names the kernels, sizes, activations and the modules
covered, and ``load_exported`` rebuilds the chain from a dense
skeleton. Without the compiled library (or on another device, or with a grad-requiring
input) the chain computes the same function with torch operations.
"""

from __future__ import annotations

import ctypes
import math
import threading
import zlib
from pathlib import Path

import torch
from torch import nn

from .. import _native
from ..thresholds import CST, CReLU, ShiftedReLU, SoftThreshold, cores
from ._sparse_modules import _quiet_beta, check_input_dtype

__all__ = [
    "ACT_KERNELS",
    "ACTIVATIONS",
    "ActivationChain",
    "activation_spec",
    "available",
]

ACT_KERNELS = ("act_dense", "act_csc_u16", "act_csc_i32")
"""Kernels of ``ActivationChain`` layers (dense ``W^T``; CSC, 16- or 32-bit rows)."""

ACTIVATIONS = ("none", "relu", "shifted_relu", "soft_threshold", "crelu", "cst")
"""Activations a chain fuses (their C codes are their positions)."""

_CLIPPED = ("crelu", "cst")
_U16_MAX_ROWS = 1 << 16
_MAX_FEATURES = 1 << 31
_KIND = {"act_dense": 0, "act_csc_i32": 1, "act_csc_u16": 2}


class _Layer(ctypes.Structure):
    _fields_ = [
        ("in_features", ctypes.c_int64),
        ("out_features", ctypes.c_int64),
        ("kind", ctypes.c_int32),
        ("act", ctypes.c_int32),
        ("tau", ctypes.c_double),
        ("m", ctypes.c_double),
        ("w", ctypes.c_void_p),
        ("colptr", ctypes.c_void_p),
        ("rows", ctypes.c_void_p),
        ("bias", ctypes.c_void_p),
    ]


class _Lib:
    """ctypes handle: ``chain[dtype]`` and ``work``."""

    def __init__(self, lib: ctypes.CDLL, path: Path, flags: list[str]):
        self.lib, self.path, self.flags = lib, path, flags
        self.chain = {}
        for dt, name in ((torch.float32, "f32"), (torch.float64, "f64")):
            f = getattr(lib, f"shrinkage_actchain_{name}")
            f.restype = None
            f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
            f.argtypes += [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
            self.chain[dt] = f
        f = lib.shrinkage_actchain_work
        f.restype = ctypes.c_int64
        f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int]
        self.work = f


_LIB = _native.NativeLibrary(
    "actmm", _Lib, "compiled activation-sparse kernels", "torch's dense operations"
)


def load() -> _Lib | None:
    return _LIB.load()


def available() -> bool:
    return load() is not None


def activation_spec(mod: nn.Module | None) -> tuple[str, float, float | None] | None:
    """``(name, tau, m)`` of an activation a chain can fuse, None for any other module
    (``None`` itself: ``("none", 0.0, None)``). Exact types only: a subclass may compute
    something else."""
    if mod is None:
        return "none", 0.0, None
    kind = type(mod)
    if kind is nn.ReLU:
        return "relu", 0.0, None
    names = {ShiftedReLU: "shifted_relu", SoftThreshold: "soft_threshold"}
    names.update({CReLU: "crelu", CST: "cst"})
    if kind not in names:
        return None
    tau = float(mod.tau.detach().clamp(min=0.0))
    return names[kind], tau, (float(mod.m) if kind in (CReLU, CST) else None)


def _module_for(name: str, tau: float, m):
    if name == "relu":
        return nn.ReLU()
    if name == "shifted_relu":
        return ShiftedReLU(tau)
    if name == "soft_threshold":
        return SoftThreshold(tau)
    if name == "crelu":
        return CReLU(tau, m)
    if name == "cst":
        return CST(tau, m)
    return None


def _phi(x: torch.Tensor, name: str, tau: float, m) -> torch.Tensor:
    """The activation with the same torch cores as the modules (the chain's torch path)."""
    if name == "relu":
        return torch.relu(x)
    if name == "shifted_relu":
        return cores.shifted_relu(x, tau)
    if name == "soft_threshold":
        return cores.soft(x, tau)
    if name == "crelu":
        return cores.clipped_relu(x, tau, m)
    if name == "cst":
        return cores.clipped_soft_threshold(x, tau, m)
    return x


class ActivationChain(nn.Module):
    """Consecutive ``Linear -> activation`` layers run in one call, skipping zero inputs.

    Layer ``i`` has buffers ``w{i}`` (``W^T`` (in, out) for ``"act_dense"``; the CSC
    values for ``"act_csc_*"``), ``p{i}`` (CSC column offsets, int32, in + 1) and ``r{i}``
    (CSC rows: int32, or int16 holding the uint16 row), ``b{i}`` (bias or None). The kernel
    names, sizes, activations and the names of the modules the chain stands for are extra
    state, with a CRC-32 of everything. Built by ``export`` with
    ``activations=True`` (or ``from_layers``), restored by
    ``load_exported``; not usually made by hand.

    Parameters
    ----------
    specs : list of dict
        One per layer: ``kernel`` (``"act_dense"``, ``"act_csc_i32"`` or
        ``"act_csc_u16"``), ``in`` and ``out`` sizes, ``act`` (the fused activation's name,
        ``"none"`` for none), its ``tau`` and ``m``, and ``bias`` (whether the layer has one).
        The buffers are empty until filled (``from_layers``, or a state dict).
    names : list of str
        The Linear modules' names in the model (the state dict's keys).
    acts : list of str or None
        The activation modules' names in the model, None where a layer has none.

    Raises
    ------
    ValueError
        A spec that is not one of the above (checked before anything is allocated).

    Examples
    --------
    >>> lin1, lin2 = nn.Linear(6, 5), nn.Linear(5, 2)
    >>> chain = ActivationChain.from_layers(
    ...     [lin1, lin2], [nn.ReLU(), None], ["act_csc_u16", "act_dense"], ["0", "2"], ["1", None])
    >>> x = torch.randn(3, 6)
    >>> torch.allclose(chain(x), lin2(torch.relu(lin1(x))), atol=1e-6)
    True
    """

    def __init__(self, specs: list[dict], names: list[str], acts: list[str | None]):
        super().__init__()
        self._set_specs(specs, names, acts)
        for i, s in enumerate(self.specs):
            self.register_buffer(f"w{i}", torch.zeros(0))
            csc = s["kernel"] != "act_dense"
            self.register_buffer(
                f"p{i}", torch.zeros(s["in"] + 1, dtype=torch.int32) if csc else None
            )
            self.register_buffer(f"r{i}", torch.zeros(0, dtype=torch.int32) if csc else None)
            self.register_buffer(f"b{i}", torch.zeros(s["out"]) if s["bias"] else None)
        self._local = threading.local()
        self._valid: tuple | None = None
        self._expected_crc = None

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_layers(cls, linears, activations, kernels, names, act_names) -> ActivationChain:
        """A chain of ``linears[i]`` followed by ``activations[i]`` (a module
        ``activation_spec`` accepts, or None) on ``kernels[i]``; ``names`` and
        ``act_names`` are the modules' names in the model (for the state dict)."""
        specs = []
        for lin, act, kernel in zip(linears, activations, kernels):
            spec = activation_spec(act)
            if spec is None:
                raise ValueError(f"activation {type(act).__name__} cannot be fused in a chain")
            w = lin.weight.detach()
            specs.append(
                {
                    "kernel": kernel,
                    "in": int(w.shape[1]),
                    "out": int(w.shape[0]),
                    "act": spec[0],
                    "tau": spec[1],
                    "m": spec[2],
                    "bias": lin.bias is not None,
                }
            )
        self = cls(specs, list(names), list(act_names))
        with torch.no_grad():
            for i, (lin, s) in enumerate(zip(linears, specs)):
                w = lin.weight.detach()
                bias = None if lin.bias is None else lin.bias.detach().clone().contiguous()
                self._buffers[f"b{i}"] = bias
                if s["kernel"] == "act_dense":
                    self._buffers[f"w{i}"] = w.t().contiguous().clone()
                    continue
                if s["kernel"] == "act_csc_u16" and s["out"] > _U16_MAX_ROWS:
                    raise ValueError(
                        f"kernel 'act_csc_u16' needs out_features <= {_U16_MAX_ROWS}, "
                        f"got {s['out']}"
                    )
                with _quiet_beta():
                    m = w.t().contiguous().to_sparse_csr()  # CSC of W = CSR of W^T
                rows = m.col_indices().to(torch.int32)
                if s["kernel"] == "act_csc_u16":
                    rows = torch.where(rows >= 1 << 15, rows - (1 << 16), rows).to(torch.int16)
                self._buffers[f"p{i}"] = m.crow_indices().to(torch.int32).contiguous()
                self._buffers[f"r{i}"] = rows.contiguous()
                self._buffers[f"w{i}"] = m.values().contiguous().clone()
        return self

    def _set_specs(self, specs, names, acts) -> None:
        specs, names, acts = check_chain_state({"layers": specs, "names": names, "acts": acts})
        self.specs, self.names, self.acts = specs, names, acts

    # -- reading the layers ----------------------------------------------------------
    @property
    def kernels(self) -> list[str]:
        return [s["kernel"] for s in self.specs]

    @property
    def covers(self) -> list[str]:
        """Names of the modules the chain stands for besides its own (now nn.Identity)."""
        out = []
        for i, name in enumerate(self.names):
            if i:
                out.append(name)
            if self.acts[i] is not None:
                out.append(self.acts[i])
        return out

    def dense_weight(self, i: int) -> torch.Tensor:
        """Layer i's weight as a dense (out, in) matrix."""
        self.validate()
        s, w = self.specs[i], self._buffers[f"w{i}"]
        if s["kernel"] == "act_dense":
            return w.t()
        rows = self._buffers[f"r{i}"].to(torch.int64) & 0xFFFF
        if s["kernel"] == "act_csc_i32":
            rows = self._buffers[f"r{i}"].to(torch.int64)
        with _quiet_beta():
            m = torch.sparse_csr_tensor(
                self._buffers[f"p{i}"].to(torch.int64), rows, w, size=(s["in"], s["out"])
            )
            return m.to_dense().t()

    def layer_nnz(self, i: int) -> int:
        s = self.specs[i]
        if s["kernel"] == "act_dense":
            return int(torch.count_nonzero(self._buffers[f"w{i}"]))
        return int(self._buffers[f"w{i}"].numel())

    def to_modules(self) -> list[tuple[str, nn.Module]]:
        """The dense modules the chain stands for: ``(name, module)`` pairs, Linear and
        activation of each layer in order."""
        out = []
        for i, s in enumerate(self.specs):
            w = self.dense_weight(i)
            lin = nn.Linear(s["in"], s["out"], bias=s["bias"], device=w.device, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                if s["bias"]:
                    lin.bias.copy_(self._buffers[f"b{i}"])
            out.append((self.names[i], lin))
            if self.acts[i] is not None:
                out.append((self.acts[i], _module_for(s["act"], s["tau"], s["m"])))
        return out

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_in = self.specs[0]["in"]
        if x.dim() == 0 or x.shape[-1] != n_in:
            raise ValueError(f"input must end with in_features={n_in}, got shape {tuple(x.shape)}")
        check_input_dtype(x, self._buffers["w0"].dtype, "ActivationChain")
        self.validate()
        lead = x.shape[:-1]
        x2 = x.reshape(-1, n_in)
        lib = self._lib_for(x2)
        y = self._forward_torch(x2) if lib is None else self._forward_c(lib, x2)
        return y.reshape(*lead, self.specs[-1]["out"])

    def _lib_for(self, x: torch.Tensor):
        w0 = self._buffers["w0"]
        if (
            x.device.type != "cpu"
            or w0.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64)
            or x.dtype != w0.dtype
            or (x.requires_grad and torch.is_grad_enabled())
        ):
            return None
        return load()

    def _forward_torch(self, x: torch.Tensor) -> torch.Tensor:
        for i, s in enumerate(self.specs):
            w = self.dense_weight(i).to(x.dtype)
            b = self._buffers[f"b{i}"]
            x = nn.functional.linear(x, w, None if b is None else b.to(x.dtype))
            x = _phi(x, s["act"], s["tau"], s["m"])
        return x

    def _c_layers(self):
        """The ctypes array of the layers (rebuilt when a buffer object changed)."""
        key = tuple(self._buffers.values())
        cache = getattr(self, "_c_cache", None)
        if (
            cache is not None
            and len(cache[0]) == len(key)
            and all(a is b for a, b in zip(cache[0], key))
        ):
            return cache[1]
        arr = (_Layer * len(self.specs))()
        for i, s in enumerate(self.specs):
            b = self._buffers[f"b{i}"]
            arr[i] = _Layer(
                s["in"],
                s["out"],
                _KIND[s["kernel"]],
                ACTIVATIONS.index(s["act"]),
                s["tau"],
                math.inf if s["m"] is None else s["m"],
                self._buffers[f"w{i}"].data_ptr(),
                None if s["kernel"] == "act_dense" else self._buffers[f"p{i}"].data_ptr(),
                None if s["kernel"] == "act_dense" else self._buffers[f"r{i}"].data_ptr(),
                None if b is None else b.data_ptr(),
            )
        self._c_cache = (key, arr)
        return arr

    def _workspace(self, lib, layers, batch: int, threads: int, dtype) -> int:
        """Address of a 64-byte aligned workspace for this batch (kept per thread)."""
        local = self.__dict__.setdefault("_local", threading.local())
        ws = getattr(local, "ws", None)
        size = lib.work(len(self.specs), layers, batch, threads, torch.finfo(dtype).bits // 8)
        if ws is None or ws.numel() < size + 64:
            ws = local.ws = torch.empty(size + 64, dtype=torch.uint8)
        return (ws.data_ptr() + 63) & ~63

    def _forward_c(self, lib, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        batch = x.shape[0]
        y = torch.empty((batch, self.specs[-1]["out"]), dtype=x.dtype)
        if batch == 0:
            return y
        layers = self._c_layers()
        threads = torch.get_num_threads()
        work = self._workspace(lib, layers, batch, threads, x.dtype)
        lib.chain[x.dtype](
            len(self.specs), layers, batch, x.data_ptr(), y.data_ptr(), work, threads
        )
        return y

    # -- checks and state ------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError unless every buffer fits its layer (see ``chain_problems``);
        checked once per set of buffers."""
        key = tuple(self._buffers.values())
        done = getattr(self, "_valid", None)
        if done is not None and len(done) == len(key) and all(a is b for a, b in zip(done, key)):
            return
        problems = chain_problems(self)
        if problems:
            raise ValueError("invalid activation chain: " + "; ".join(problems))
        self._valid = key

    def checksum(self) -> int:
        crc = zlib.crc32(repr((self.specs, self.names, self.acts)).encode())
        for name in sorted(self._buffers):
            t = self._buffers[name]
            if t is None:
                crc = zlib.crc32(f"{name}:none".encode(), crc)
                continue
            t = t.detach().cpu().contiguous()
            crc = zlib.crc32(f"{name}:{t.dtype}{tuple(t.shape)}".encode(), crc)
            crc = zlib.crc32(t.view(-1).view(torch.uint8).numpy().tobytes(), crc)
        return crc

    def get_extra_state(self):
        return {
            "chain": 1,
            "layers": [dict(s) for s in self.specs],
            "names": list(self.names),
            "acts": list(self.acts),
            "crc32": self.checksum(),
        }

    def set_extra_state(self, state) -> None:
        specs, names, acts = check_chain_state(state)
        if len(specs) != len(self.specs):
            raise ValueError(
                f"activation chain state has {len(specs)} layers, this chain {len(self.specs)}"
            )
        self.specs, self.names, self.acts = specs, names, acts
        self._expected_crc = state.get("crc32")
        self._valid = None
        self._c_cache = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, *rest):
        # the number of non-zeros (and index dtypes) come from the checkpoint
        for name in list(self._buffers):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                if not isinstance(incoming, torch.Tensor):
                    raise ValueError(
                        f"{prefix}{name} must be a tensor, got {type(incoming).__name__}"
                    )
                here = self._buffers[name]
                device = here.device if here is not None else incoming.device
                self._buffers[name] = torch.empty_like(incoming, device=device)
        self._valid = None
        self._c_cache = None
        self._expected_crc = None
        n_missing = len(missing)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, *rest)
        if len(missing) == n_missing:
            try:
                self.validate()
                want, self._expected_crc = self._expected_crc, None
                if want is not None and want != self.checksum():
                    raise ValueError(
                        "the buffers do not match the checksum saved with them: the checkpoint "
                        "was damaged or edited"
                    )
            except ValueError as e:
                raise ValueError(f"layer {prefix.rstrip('.')!r}: {e}") from None

    def __getstate__(self):
        state = self.__dict__.copy()
        # per-thread workspaces and ctypes arrays of raw pointers: rebuilt on first use
        state.pop("_local", None)
        state["_c_cache"] = None
        state["_valid"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._local = threading.local()

    def extra_repr(self) -> str:
        parts = [f"{s['in']}->{s['out']} {s['kernel']} {s['act']}" for s in self.specs]
        return ", ".join(parts)


def check_chain_state(state) -> tuple[list[dict], list[str], list]:
    """(specs, names, acts) of a chain's extra state, or ValueError naming what is wrong:
    a checkpoint's sizes decide allocations, so they are checked first."""
    layers, names, acts = _check_chain_lists(state)
    specs = []
    for i, s in enumerate(layers):
        specs.append(_check_layer_spec(i, s, specs[-1]["out"] if specs else None, acts[i]))
    return specs, list(names), list(acts)


def _check_chain_lists(state) -> tuple[list, list, list]:
    """The state's layers, names and acts lists (and its crc32), or ValueError."""
    if not isinstance(state, dict):
        raise ValueError(f"activation chain state must be a dict, got {type(state).__name__}")
    layers, names, acts = state.get("layers"), state.get("names"), state.get("acts")
    if not isinstance(layers, list) or not layers:
        raise ValueError(
            f"activation chain state 'layers' must be a non-empty list, got {layers!r}"
        )
    if not isinstance(names, list) or len(names) != len(layers):
        raise ValueError(f"activation chain state 'names' must list {len(layers)} names")
    if not isinstance(acts, list) or len(acts) != len(layers):
        raise ValueError(f"activation chain state 'acts' must list {len(layers)} entries")
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"activation chain names must be non-empty strings, got {names!r}")
    if not all(a is None or (isinstance(a, str) and a) for a in acts):
        raise ValueError(f"activation chain acts must be names or None, got {acts!r}")
    crc = state.get("crc32")
    if crc is not None and (isinstance(crc, bool) or not isinstance(crc, int)):
        raise ValueError(f"activation chain 'crc32' must be an integer, got {crc!r}")
    return layers, names, acts


def _check_layer_spec(i: int, s, prev_out: int | None, act_name) -> dict:
    """Layer i's spec from a checkpoint (sizes, kernel, activation and its parameters,
    bias flag, agreement with the previous layer and with its module name), or ValueError."""
    if not isinstance(s, dict) or not {"kernel", "in", "out", "act", "tau", "m", "bias"} <= set(s):
        raise ValueError(
            f"activation chain layer {i} must be a dict of kernel, in, out, act, "
            f"tau, m, bias; got {s!r}"
        )
    kernel, act = s["kernel"], s["act"]
    if kernel not in ACT_KERNELS:
        raise ValueError(f"layer {i}: kernel must be one of {ACT_KERNELS}, got {kernel!r}")
    if act not in ACTIVATIONS:
        raise ValueError(f"layer {i}: act must be one of {ACTIVATIONS}, got {act!r}")
    for key in ("in", "out"):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < _MAX_FEATURES:
            raise ValueError(f"layer {i}: {key!r} must be an integer in [1, 2**31), got {v!r}")
    tau, m = s["tau"], s["m"]
    if (
        isinstance(tau, bool)
        or not isinstance(tau, int | float)
        or not (math.isfinite(tau) and tau >= 0)
    ):
        raise ValueError(f"layer {i}: tau must be a finite number >= 0, got {tau!r}")
    if act in _CLIPPED:
        if (
            isinstance(m, bool)
            or not isinstance(m, int | float)
            or not (math.isfinite(m) and m > 0)
        ):
            raise ValueError(f"layer {i}: m must be a finite number > 0 for {act}, got {m!r}")
        m = float(m)
    elif m is not None:
        raise ValueError(f"layer {i}: m must be None for {act}, got {m!r}")
    if not isinstance(s["bias"], bool):
        raise ValueError(f"layer {i}: bias must be True or False, got {s['bias']!r}")
    if kernel == "act_csc_u16" and s["out"] > _U16_MAX_ROWS:
        raise ValueError(f"layer {i}: kernel 'act_csc_u16' needs out <= {_U16_MAX_ROWS}")
    if prev_out is not None and prev_out != s["in"]:
        raise ValueError(
            f"layer {i}: in={s['in']} does not match the previous layer's out={prev_out}"
        )
    if (act != "none") != (act_name is not None):
        raise ValueError(
            f"layer {i}: act {act!r} and its module name {act_name!r} must both be given "
            "or both be absent"
        )
    return {
        "kernel": kernel,
        "in": s["in"],
        "out": s["out"],
        "act": act,
        "tau": float(tau),
        "m": m,
        "bias": s["bias"],
    }


def chain_problems(chain: ActivationChain) -> list[str]:
    """What is wrong with a chain's buffers (empty when nothing): dtypes, shapes, CSC
    offsets from 0 never decreasing to the number of values, rows in range and increasing
    within a column, finite values, one device."""
    problems = []
    dtype = None
    devices = set()
    for i, s in enumerate(chain.specs):
        w, b = chain._buffers.get(f"w{i}"), chain._buffers.get(f"b{i}")
        where = f"layer {i}"
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            problems.append(f"{where}: w{i} must be a floating-point tensor")
            continue
        dtype = dtype or w.dtype
        if w.dtype != dtype:
            problems.append(f"{where}: every buffer must be {dtype}, w{i} is {w.dtype}")
        devices.add(w.device)
        if (b is None) == s["bias"]:
            problems.append(f"{where}: bias {'missing' if s['bias'] else 'unexpected'}")
        elif b is not None:
            devices.add(b.device)
            if b.shape != (s["out"],) or b.dtype != w.dtype:
                problems.append(f"{where}: b{i} must be ({s['out']},) of dtype {w.dtype}")
            elif not bool(torch.isfinite(b).all()):
                problems.append(f"{where}: bias must be finite")
        if s["kernel"] == "act_dense":
            problems += _dense_problems(where, i, s, w)
        else:
            problems += _csc_problems(chain, where, i, s, w, devices)
    if len(devices) > 1:
        problems.append(f"buffers must share one device, got {sorted(map(str, devices))}")
    return problems


def _dense_problems(where: str, i: int, s: dict, w: torch.Tensor) -> list[str]:
    """The first thing wrong with a dense layer's W^T (shape, layout, finite values)."""
    if w.shape != (s["in"], s["out"]):
        return [f"{where}: w{i} must be W^T of shape ({s['in']}, {s['out']})"]
    if not w.is_contiguous():
        return [f"{where}: w{i} must be contiguous"]
    if not bool(torch.isfinite(w).all()):
        return [f"{where}: values must be finite"]
    return []


def _csc_problems(chain, where: str, i: int, s: dict, w: torch.Tensor, devices: set) -> list[str]:
    """The first thing wrong with a CSC layer's buffers (dtypes, shapes, offsets, rows in
    range and increasing within a column, finite values); their devices join ``devices``."""
    p, r = chain._buffers.get(f"p{i}"), chain._buffers.get(f"r{i}")
    want_r = torch.int16 if s["kernel"] == "act_csc_u16" else torch.int32
    if not isinstance(p, torch.Tensor) or p.dtype != torch.int32 or p.shape != (s["in"] + 1,):
        return [f"{where}: p{i} must be int32 of shape ({s['in'] + 1},)"]
    if not isinstance(r, torch.Tensor) or r.dtype != want_r or r.dim() != 1:
        return [f"{where}: r{i} must be 1-D {want_r} for {s['kernel']!r}"]
    devices.update((p.device, r.device))
    if w.dim() != 1 or not all(t.is_contiguous() for t in (p, r, w)):
        return [f"{where}: CSC buffers must be contiguous, values 1-D"]
    nnz = w.shape[0]
    if int(p[0]) != 0 or bool((p[1:] < p[:-1]).any()):
        return [f"{where}: column offsets must start at 0 and never decrease"]
    if int(p[-1]) != nnz or r.numel() != nnz:
        return [
            f"{where}: column offsets end ({int(p[-1])}), rows ({r.numel()}) and values "
            f"({nnz}) must agree on the number of non-zeros"
        ]
    if not nnz:
        return []
    rr = r.to(torch.int64) & 0xFFFF if r.dtype == torch.int16 else r.to(torch.int64)
    if int(rr.min()) < 0 or int(rr.max()) >= s["out"]:
        return [f"{where}: rows must lie in [0, {s['out']})"]
    starts = torch.zeros(nnz, dtype=torch.bool)
    starts[p[:-1][p[:-1] < nnz].long()] = True
    if bool(((rr[1:] <= rr[:-1]) & ~starts[1:]).any()):
        return [f"{where}: rows must increase strictly within each column"]
    if not bool(torch.isfinite(w).all()):
        return [f"{where}: values must be finite"]
    return []
