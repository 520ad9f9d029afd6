"""Turn zero weights into speed: run sparse-enough layers on sparse kernels.

``export(model, min_sparsity=0.8, batch_size=1)`` returns a copy of ``model`` in
which every ``nn.Linear`` whose weight has at least ``min_sparsity`` exact zeros is
replaced by a :class:`SparseLinear` running the kernel that measured fastest on
``batch_size`` rows, among ``candidates``; dense stays whenever it is faster.
``nn.Conv2d`` layers get the same choice (as :class:`SparseConv2d`, im2col + the same
kernels) when an ``example_input`` gives their input size; every other layer is
kept as it is, dense.

Kernels (``KERNELS``), for ``y = x W^T + b`` with ``W`` in CSR form:

- ``"dense"``: the original ``nn.Linear``.
- ``"torch_csr"``: ``torch.sparse`` CSR, int64 indices (12 bytes per float32 non-zero).
- ``"torch_csr_i32"``: the same with int32 indices (8 bytes).
- ``"c_csr_i32"`` / ``"c_csr_u16"``: a small C kernel (row chunks of equal non-zeros
  shared by a work-claiming thread pool, vectorised over the batch) with int32 or
  16-bit column indices (8 or 6 bytes per non-zero); CPU, float32/float64; compiled at
  first use by :mod:`shrinkage.weights._kernels`, torch CSR otherwise (with a warning).
- ``"torch_bsr"``: torch block-CSR with 4 x 4 blocks. Not a default candidate:
  unstructured pruning leaves most blocks with one non-zero, so it stores ~10x
  the values (measured in ``benchmarks/sparse_inference.py``).

The exported model is for inference: values are buffers, not parameters. Gradients
still reach the *input* (a grad-requiring input takes the torch CSR path). A C-kernel
layer given a batch returns its output as a transposed view (``(N, out)`` with
strides ``(1, N)``): the next sparse layer reads it without a copy; call
``.contiguous()`` before ``.view``.

Saving: ``torch.save(exported)`` pickles the whole model; its ``state_dict()`` holds
the CSR arrays and the kernel name, and :func:`load_exported` rebuilds an exported
model from a dense skeleton and that state dict. :func:`densify` returns the plain
dense model (a state dict any dense copy of the architecture loads).

Example
-------
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

import contextlib
import copy
import math
import statistics
import time
import warnings
from collections.abc import Iterable

import torch
from torch import nn

from shrinkage import _checks
from shrinkage.weights import _kernels

__all__ = [
    "KERNELS",
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

KERNELS = ("dense", "torch_csr", "torch_csr_i32", "c_csr_i32", "c_csr_u16", "torch_bsr")
DEFAULT_CANDIDATES = ("dense", "torch_csr", "torch_csr_i32", "c_csr_i32", "c_csr_u16")
_BLOCK = 4  # torch_bsr block size
_C_KERNELS = {"c_csr_i32": 32, "c_csr_u16": 16}
_U16_MAX_COLS = 1 << 16

_fallback_warned: set[str] = set()


def _warn_fallback(kernel: str, why: str) -> None:
    if kernel not in _fallback_warned:
        _fallback_warned.add(kernel)
        warnings.warn(
            f"shrinkage: kernel {kernel!r} cannot run here ({why}); using torch CSR",
            RuntimeWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def _quiet_beta():
    """Silence torch's 'sparse CSR support is in beta' notices, raised on every conversion."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse (CSR|BSR|invariant).*")
        yield


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` stored sparse and applied by one of ``KERNELS``.

    Buffers: ``crow_indices`` (int32, out+1), ``col_indices`` (int32, or int16 holding
    the uint16 column for ``c_csr_u16``), ``values`` (nnz, or (blocks, 4, 4) for
    ``torch_bsr``), ``bias`` (out,) or None. The kernel name and shape are extra state,
    so a state dict carries everything needed to rebuild the layer.

    >>> lin = nn.Linear(8, 3)
    >>> sl = SparseLinear.from_linear(lin, "torch_csr")
    >>> torch.allclose(sl(torch.ones(2, 8)), lin(torch.ones(2, 8)))
    True
    """

    def __init__(self, in_features: int, out_features: int, kernel: str = "torch_csr"):
        super().__init__()
        _checks.check_choice("kernel", kernel, KERNELS[1:])
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.kernel = kernel
        self.register_buffer("crow_indices", torch.zeros(out_features + 1, dtype=torch.int32))
        self.register_buffer("col_indices", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("values", torch.zeros(0))
        self.register_buffer("bias", None)
        self._torch_cache: tuple | None = None
        self._c_cache: tuple | None = None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: str) -> SparseLinear:
        """Build from an ``nn.Linear`` (its current, possibly parametrized, weight)."""
        with torch.no_grad():
            weight = linear.weight.detach()
            bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls.from_weight(weight, bias, kernel)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, kernel: str):
        """Build from a dense ``(out, in)`` weight; its exact zeros are dropped."""
        if weight.dim() != 2:
            raise ValueError(f"weight must be 2-D (out, in), got shape {tuple(weight.shape)}")
        out_f, in_f = weight.shape
        if kernel == "c_csr_u16" and in_f > _U16_MAX_COLS:
            raise ValueError(f"kernel 'c_csr_u16' needs in_features <= {_U16_MAX_COLS}, got {in_f}")
        self = cls(in_f, out_f, kernel)
        w = weight.detach()
        if kernel == "torch_bsr" and (out_f % _BLOCK or in_f % _BLOCK):
            raise ValueError(
                f"kernel 'torch_bsr' needs both sizes divisible by {_BLOCK}, got {out_f}x{in_f}"
            )
        with _quiet_beta():
            if kernel == "torch_bsr":
                m = w.to_sparse_bsr((_BLOCK, _BLOCK))
            else:
                m = w.to_sparse_csr()
        crow, col, val = m.crow_indices(), m.col_indices(), m.values()
        if val.shape[0] >= 2**31:
            raise ValueError(f"too many non-zeros for int32 indices: {val.shape[0]}")
        self.crow_indices = crow.to(torch.int32).contiguous()
        col = col.to(torch.int32)
        if kernel == "c_csr_u16":
            # int16 storage of the uint16 bit pattern (torch has no full uint16 support)
            col = torch.where(col >= 1 << 15, col - (1 << 16), col).to(torch.int16)
        self.col_indices = col.contiguous()
        self.values = val.contiguous().clone()
        self.bias = None if bias is None else bias.detach().to(val.dtype).contiguous().clone()
        return self

    def to_linear(self) -> nn.Linear:
        """The equivalent dense ``nn.Linear`` (same device and dtype)."""
        lin = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.values.device,
            dtype=self.values.dtype,
        )
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def dense_weight(self) -> torch.Tensor:
        return self._torch_matrix().to_dense()

    @property
    def nnz(self) -> int:
        return (
            int(self.crow_indices[-1])
            if self.kernel != "torch_bsr"
            else int(torch.count_nonzero(self.values))
        )

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / max(1, self.in_features * self.out_features)

    # -- forward --------------------------------------------------------------------
    def _col_int32(self) -> torch.Tensor:
        col = self.col_indices.to(torch.int32)
        if self.col_indices.dtype == torch.int16:
            col = col & 0xFFFF
        return col

    def _torch_matrix(self) -> torch.Tensor:
        key = (
            self.values.data_ptr(),
            self.values.device,
            self.values.dtype,
            self.kernel,
            self.crow_indices.data_ptr(),
        )
        if self._torch_cache is not None and self._torch_cache[0] == key:
            return self._torch_cache[1]
        shape = (self.out_features, self.in_features)
        with _quiet_beta():
            m = self._build_torch_matrix(shape)
        self._torch_cache = (key, m)
        return m

    def _build_torch_matrix(self, shape) -> torch.Tensor:
        if self.kernel == "torch_bsr":
            m = torch.sparse_bsr_tensor(
                self.crow_indices, self.col_indices, self.values, size=shape, check_invariants=False
            )
        else:
            crow, col = self.crow_indices, self._col_int32()
            if self.kernel == "torch_csr":
                crow, col = crow.long(), col.long()
            m = torch.sparse_csr_tensor(crow, col, self.values, size=shape, check_invariants=False)
        return m

    def _torch_forward(self, x2: torch.Tensor) -> torch.Tensor:
        m = self._torch_matrix()
        # W (out, in) @ x^T (in, N): torch's CSR-times-dense path
        if self.bias is None:
            return (m @ x2.t()).t()
        return torch.addmm(self.bias.unsqueeze(1), m, x2.t()).t()

    def _c_fn(self, x2: torch.Tensor):
        """The compiled function for this call, or None to use torch's kernels."""
        bufs = self._buffers
        val = bufs["values"]
        if not x2.is_cpu or x2.dtype != val.dtype:
            return None
        if x2.requires_grad and torch.is_grad_enabled():
            return None  # the C kernel has no backward; torch CSR carries the gradient
        cache = self._c_cache
        # identity, not pointers: .to() / load_state_dict / assignment swap the buffer objects
        if (
            cache is not None
            and cache[0] is val
            and cache[1] is bufs["crow_indices"]
            and cache[2] is bufs["col_indices"]
            and cache[3] is bufs["bias"]
            and cache[4] == self.kernel
        ):
            return cache[5]
        bits = _C_KERNELS.get(self.kernel)
        if bits is None:
            return None
        lib = _kernels.load()
        if lib is None or not val.is_cpu:
            _warn_fallback(self.kernel, "compiled kernels unavailable")
            return None
        fn = lib.fn(val.dtype, bits)
        if fn is None:
            _warn_fallback(self.kernel, f"no compiled kernel for {val.dtype}")
            return None
        self._check_csr(bits)
        self._c_cache = (
            val,
            bufs["crow_indices"],
            bufs["col_indices"],
            bufs["bias"],
            self.kernel,
            fn,
        )
        return fn

    def _check_csr(self, bits: int) -> None:
        """Raise ValueError unless the buffers are a valid CSR matrix for the C kernel.

        The kernel trusts its arrays; a malformed checkpoint must fail here, not read
        out of bounds. Runs once per set of buffers.
        """
        crow, col, val, bias = self.crow_indices, self.col_indices, self.values, self.bias
        want_col = torch.int32 if bits == 32 else torch.int16
        problems = []
        if crow.dtype != torch.int32 or crow.shape != (self.out_features + 1,):
            problems.append(f"crow_indices must be int32 of length {self.out_features + 1}")
        elif int(crow[0]) != 0 or bool((crow[1:] < crow[:-1]).any()):
            problems.append("crow_indices must start at 0 and never decrease")
        elif int(crow[-1]) != col.numel() or col.numel() != val.numel() or val.dim() != 1:
            problems.append("crow_indices[-1], col_indices and values must agree on nnz")
        if col.dtype != want_col:
            problems.append(f"col_indices must be {want_col} for kernel {self.kernel!r}")
        elif col.numel() and not (
            0 <= int(self._col_int32().min()) and int(self._col_int32().max()) < self.in_features
        ):
            problems.append(f"col_indices must lie in [0, {self.in_features})")
        if bias is not None and (bias.shape != (self.out_features,) or bias.dtype != val.dtype):
            problems.append(f"bias must be ({self.out_features},) of dtype {val.dtype}")
        if not all(t.is_contiguous() for t in (crow, col, val)):
            problems.append("buffers must be contiguous")
        if problems:
            raise ValueError(f"invalid sparse layer {self.extra_repr()}: " + "; ".join(problems))

    def _forward2d(self, x2: torch.Tensor) -> torch.Tensor:
        fn = self._c_fn(x2)
        if fn is None:
            return self._torch_forward(x2)
        bufs = self._buffers
        bias = bufs["bias"]
        n = x2.shape[0]
        # (in, n) layout: each non-zero then scales a contiguous run of the batch
        if n == 1 and x2.is_contiguous():
            xt = x2
        elif x2.t().is_contiguous():
            xt = x2.t()  # already (in, n): the output of a previous C-kernel layer
        else:
            xt = _kernels.load().transpose(x2.contiguous())
        yt = torch.empty((self.out_features, n), dtype=x2.dtype)
        fn(
            self.out_features,
            n,
            bufs["crow_indices"].data_ptr(),
            bufs["col_indices"].data_ptr(),
            bufs["values"].data_ptr(),
            None if bias is None else bias.data_ptr(),
            xt.data_ptr(),
            yt.data_ptr(),
            torch.get_num_threads(),
        )
        return yt.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return self._forward2d(x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input must end with in_features={self.in_features}, got shape {tuple(x.shape)}"
            )
        y2 = self._forward2d(x.reshape(-1, self.in_features))
        return y2.reshape(*x.shape[:-1], self.out_features)

    # -- state ----------------------------------------------------------------------
    def get_extra_state(self):
        return {"kernel": self.kernel, "in": self.in_features, "out": self.out_features}

    def set_extra_state(self, state) -> None:
        _checks.check_choice("kernel", state["kernel"], KERNELS[1:])
        self.kernel = state["kernel"]
        self.in_features, self.out_features = int(state["in"]), int(state["out"])
        self._torch_cache = None
        self._c_cache = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The number of non-zeros (and the index dtype) come from the checkpoint:
        # reshape the buffers to match before the usual copy.
        for name in ("crow_indices", "col_indices", "values", "bias"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                device = self.crow_indices.device
                self._buffers[name] = torch.empty_like(incoming, device=device)
        self._torch_cache = None
        self._c_cache = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        # caches hold a torch sparse copy and raw pointers: rebuilt on first use
        state["_torch_cache"] = None
        state["_c_cache"] = None
        return state

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"kernel={self.kernel!r}, nnz={self.nnz}, bias={self.bias is not None}"
        )


class SparseConv2d(nn.Module):
    """``nn.Conv2d`` (groups 1, zero padding) as im2col + the sparse (out, C*kh*kw) matrix.

    ``F.unfold`` lays each image out as (C*kh*kw, H'*W'), which is the (in, batch)
    layout of the C kernel: one call per image writes its (out, H'*W') output in place,
    already NCHW. The matrix is a :class:`SparseLinear` child (``.matrix``), so the
    kernels, fallback and state handling are the Linear ones.
    """

    def __init__(self, conv_args: dict, matrix: SparseLinear):
        super().__init__()
        self.in_channels = int(conv_args["in_channels"])
        self.out_channels = int(conv_args["out_channels"])
        self.kernel_size = tuple(conv_args["kernel_size"])
        self.stride = tuple(conv_args["stride"])
        self.padding = tuple(conv_args["padding"])
        self.dilation = tuple(conv_args["dilation"])
        self.matrix = matrix

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (
            type(conv) is nn.Conv2d
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)
        )

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, kernel: str) -> SparseConv2d:
        if not cls.supports(conv):
            raise ValueError(
                "sparse conv needs an nn.Conv2d with groups=1, padding_mode='zeros' and "
                f"numeric padding, got {conv}"
            )
        w = conv.weight.detach().reshape(conv.out_channels, -1)
        bias = None if conv.bias is None else conv.bias.detach()
        args = {
            k: getattr(conv, k)
            for k in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation")
        }
        return cls(args, SparseLinear.from_weight(w, bias, kernel))

    @property
    def kernel(self) -> str:
        return self.matrix.kernel

    def to_conv(self) -> nn.Conv2d:
        m = self.matrix
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=m.bias is not None,
            device=m.values.device,
            dtype=m.values.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(m.dense_weight().reshape(conv.weight.shape))
            if m.bias is not None:
                conv.bias.copy_(m.bias)
        return conv

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        hw = []
        for size, k, st, p, d in zip(
            (h, w), self.kernel_size, self.stride, self.padding, self.dilation
        ):
            hw.append((size + 2 * p - d * (k - 1) - 1) // st + 1)
        return hw[0], hw[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must be (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        n = x.shape[0]
        ho, wo = self._out_hw(x.shape[2], x.shape[3])
        cols = nn.functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        m = self.matrix
        fn = m._c_fn(cols)
        if fn is None:
            k = cols.shape[1]
            y = m._torch_forward(cols.transpose(1, 2).reshape(-1, k))  # (N*L, out)
            y = y.reshape(n, ho * wo, self.out_channels).transpose(1, 2).contiguous()
        else:
            cols = cols.contiguous()
            y = torch.empty((n, self.out_channels, ho * wo), dtype=x.dtype)
            bufs = m._buffers
            bias = bufs["bias"]
            ptrs = (
                bufs["crow_indices"].data_ptr(),
                bufs["col_indices"].data_ptr(),
                bufs["values"].data_ptr(),
                None if bias is None else bias.data_ptr(),
            )
            threads = torch.get_num_threads()
            for i in range(n):
                fn(self.out_channels, ho * wo, *ptrs, cols[i].data_ptr(), y[i].data_ptr(), threads)
        y = y.reshape(n, self.out_channels, ho, wo)
        return y[0] if unbatched else y

    def get_extra_state(self):
        return {
            "conv": {
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
                "kernel_size": self.kernel_size,
                "stride": self.stride,
                "padding": self.padding,
                "dilation": self.dilation,
            }
        }

    def set_extra_state(self, state) -> None:
        c = state["conv"]
        self.in_channels, self.out_channels = int(c["in_channels"]), int(c["out_channels"])
        for k in ("kernel_size", "stride", "padding", "dilation"):
            setattr(self, k, tuple(c[k]))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
        )


# -- choosing kernels ---------------------------------------------------------------
def _supported(kernel: str, out_f: int, in_f: int, device, dtype) -> bool:
    if kernel == "dense":
        return True
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
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
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


def _replaceable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    found = []
    skip = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            # MHA reads out_proj.weight directly: replacing it would break the module
            skip.update(f"{name}.{child}" if name else child for child, _ in mod.named_children())
        elif name and name not in skip and (isinstance(mod, nn.Linear | nn.Conv2d)):
            found.append((name, mod))
    return found


def _conv_input_shapes(model: nn.Module, example_input) -> dict[str, tuple]:
    """Input shape of every Conv2d in one forward pass of ``example_input``."""
    shapes: dict[str, tuple] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):

            def hook(m, args, name=name):
                shapes.setdefault(name, tuple(args[0].shape))

            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            if isinstance(example_input, tuple | list):
                model(*example_input)
            else:
                model(example_input)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def weight_sparsity(weight: torch.Tensor) -> float:
    """Fraction of exact zeros."""
    return 1.0 - int(torch.count_nonzero(weight)) / max(1, weight.numel())


def export(
    model: nn.Module,
    min_sparsity: float = 0.8,
    batch_size: int = 1,
    candidates: Iterable[str] = DEFAULT_CANDIDATES,
    rounds: int = 7,
    return_timings: bool = False,
    example_input=None,
):
    """Copy of ``model`` whose sparse-enough Linear layers run on the fastest sparse kernel.

    Each ``nn.Linear`` with weight sparsity (share of exact zeros) ``>= min_sparsity``
    is timed under every supported kernel in ``candidates`` plus ``"dense"`` on a
    random ``(batch_size, in_features)`` input of the layer's dtype and device (median
    of single calls in interleaved rounds, at least ``rounds``) and replaced by
    :class:`SparseLinear` with the fastest one, or kept dense when dense wins. Naming
    exactly one kernel forces it without timing. ``nn.Conv2d`` layers (groups 1, zero
    padding) get the same choice as :class:`SparseConv2d` when ``example_input`` is
    given (one forward pass records their input sizes; timed with ``batch_size``
    images); without it they stay dense, like every other module. With
    ``example_input``, the whole model as chosen is then timed against the same layers
    all on torch CSR and against dense, and the fastest is kept. The input ``model``
    is not modified. Outputs equal the dense model's up to float rounding.

    Returns the exported model, or ``(model, timings)`` with ``return_timings``:
    ``{layer name: {"sparsity": s, "kernel": chosen, "ms": {kernel: median ms}}}``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
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

    out = copy.deepcopy(model)
    conv_shapes = {} if example_input is None else _conv_input_shapes(out, example_input)
    report: dict[str, dict] = {}
    # Sparse layers return (out, batch)-major outputs that the next sparse layer reads
    # without a transpose; time each Linear with the layout a chain would hand it.
    prev_sparse = False
    for name, mod in _replaceable(out):
        is_conv = isinstance(mod, nn.Conv2d)
        transposed_input, prev_sparse = prev_sparse and not is_conv, False
        w = mod.weight.detach()
        out_f, in_f = w.shape[0], w[0].numel()
        s = weight_sparsity(w)
        entry = {"sparsity": s, "kernel": "dense", "ms": {}}
        report[name] = entry
        if s < ms or in_f == 0 or out_f == 0:
            continue
        if is_conv and (name not in conv_shapes or not SparseConv2d.supports(mod)):
            continue  # no input size to time it on, or no sparse path (groups, padding mode)
        build = SparseConv2d.from_conv if is_conv else SparseLinear.from_linear
        if forced is not None:
            if forced != "dense":
                if not _supported(forced, out_f, in_f, w.device, w.dtype):
                    raise ValueError(
                        f"kernel {forced!r} cannot run layer {name!r} "
                        f"({out_f}x{in_f}, {w.dtype}, {w.device})"
                    )
                _set_submodule(out, name, build(mod, forced))
            entry["kernel"] = forced
            prev_sparse = forced != "dense" and not is_conv
            continue
        mods: dict[str, nn.Module] = {}
        for k in cands:
            if _supported(k, out_f, in_f, w.device, w.dtype):
                mods[k] = mod if k == "dense" else build(mod, k)
        if is_conv:
            x = torch.randn((batch_size, *conv_shapes[name][1:]), dtype=w.dtype, device=w.device)
        elif transposed_input:
            x = torch.randn((in_f, batch_size), dtype=w.dtype, device=w.device).t()
        else:
            x = torch.randn((batch_size, in_f), dtype=w.dtype, device=w.device)
        timings = _time_modules(mods, x, rounds)
        best = min(timings, key=timings.get)
        entry.update(kernel=best, ms=timings)
        if best != "dense":
            _set_submodule(out, name, mods[best])
            prev_sparse = not is_conv
    if forced is None and example_input is not None:
        out = _best_whole_model(model, out, report, example_input, batch_size, rounds)
    return (out, report) if return_timings else out


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
    ex = torch.as_tensor(example_input)
    x = torch.randn((batch_size, *ex.shape[1:]), dtype=ex.dtype, device=ex.device)
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
    """Copy of an exported model with every :class:`SparseLinear` back to ``nn.Linear``."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model)
    inner = _conv_matrices(out)
    for name, mod in list(out.named_modules()):
        if isinstance(mod, SparseConv2d):
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
    ``state_dict`` becomes a :class:`SparseLinear`; then the state dict is loaded
    (strictly). The skeleton's weight values do not matter.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model)
    for name, mod in list(out.named_modules()):
        if not name:
            continue
        device = next(iter(mod.parameters()), next(iter(mod.buffers()), torch.empty(0))).device
        conv = state_dict.get(f"{name}._extra_state")
        mat = state_dict.get(f"{name}.matrix._extra_state")
        if isinstance(mod, nn.Conv2d | SparseConv2d) and mat is not None and conv is not None:
            matrix = SparseLinear(mat["in"], mat["out"], mat["kernel"])
            _set_submodule(out, name, SparseConv2d(conv["conv"], matrix).to(device))
        elif isinstance(mod, nn.Linear | SparseLinear) and conv is not None:
            new = SparseLinear(conv["in"], conv["out"], conv["kernel"]).to(device)
            _set_submodule(out, name, new)
    out.load_state_dict(state_dict)
    return out


def kernel_summary(model: nn.Module) -> list[dict]:
    """One row per Linear / Conv2d layer, sparse or dense: name, shape, sparsity, kernel.

    ``shape`` is the weight as a matrix, (out, in) or (out, C*kh*kw).
    """
    rows = []
    inner = _conv_matrices(model)
    for name, mod in model.named_modules():
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
