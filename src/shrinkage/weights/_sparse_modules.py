"""The exported layers: ``SparseLinear`` (``y = x W^T + b`` with ``W`` in CSR form on one
of ``KERNELS``) and ``SparseConv2d`` (im2col + a ``SparseLinear``).

Values are buffers, not parameters (inference modules); ``state_dict()`` holds the CSR arrays
and the kernel name. See ``shrinkage.weights._export`` for the kernels and how a model is
exported.
"""

from __future__ import annotations

import contextlib
import warnings
import zlib

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import _checks
from . import _kernels
from ._docs import fill_doc

__all__ = [
    "KERNELS",
    "DEFAULT_CANDIDATES",
    "SparseLinear",
    "SparseConv2d",
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
    so a state dict carries everything needed to rebuild the layer (with a CRC-32 of the
    buffers, checked at load).

    An inference module: the values are buffers, not parameters; gradients still reach
    the input (a grad-requiring input takes the torch CSR path). The constructor makes an
    empty matrix to load a state dict into; ``from_linear`` and ``from_weight``
    build one from a dense weight. A C-kernel layer given a batch returns its output as a
    transposed view (strides ``(1, N)``); call ``.contiguous()`` before ``.view``.

    Parameters
    ----------
    in_features : int
        Input size (columns of ``W``).
    out_features : int
        Output size (rows of ``W``).
    kernel : str, default "torch_csr"
        One of ``KERNELS`` but ``"dense"``: ``"torch_csr"``, ``"torch_csr_i32"``,
        ``"c_csr_i32"``, ``"c_csr_u16"`` (C kernels: CPU, float32 / float64, torch CSR
        otherwise, with a warning), ``"torch_bsr"`` (4 x 4 blocks).

    Attributes
    ----------
    in_features, out_features : int
        The matrix's size.
    kernel : str
        The kernel the product runs on.
    nnz : int
        Stored non-zeros (property).
    sparsity : float
        ``1 - nnz / (in_features * out_features)`` (property).

    Raises
    ------
    ValueError
        An unknown kernel (or ``"dense"``). At call time: an input whose last dimension
        is not ``in_features``, or buffers that are not a valid sparse matrix (see
        ``validate``).

    Examples
    --------
    >>> lin = nn.Linear(8, 3)
    >>> sl = SparseLinear.from_linear(lin, "torch_csr")
    >>> torch.allclose(sl(torch.ones(2, 8)), lin(torch.ones(2, 8)))
    True

    Only the exact zeros are dropped:

    >>> with torch.no_grad():
    ...     _ = lin.weight[:, :6].zero_()
    >>> sl = SparseLinear.from_linear(lin, "torch_csr_i32")
    >>> sl.nnz, round(sl.sparsity, 4), torch.equal(sl.dense_weight(), lin.weight)
    (6, 0.75, True)
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
        self._valid: tuple | None = None  # the buffers last validated (identities)

    # -- construction ---------------------------------------------------------------
    @fill_doc
    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: str) -> SparseLinear:
        """Build from an ``nn.Linear`` (its current, possibly parametrized, weight).

        Parameters
        ----------
        linear : torch.nn.Linear
            The layer; its weight's exact zeros are dropped, its bias copied.
        %(kernel)s

        Returns
        -------
        SparseLinear
            A layer computing the same outputs (up to float rounding).

        Raises
        ------
        ValueError
            As ``from_weight``.

        Examples
        --------
        >>> sl = SparseLinear.from_linear(nn.Linear(4, 4, bias=False), "torch_csr")
        >>> sl.in_features, sl.out_features, sl.bias is None
        (4, 4, True)
        """
        with torch.no_grad():
            weight = linear.weight.detach()
            bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls.from_weight(weight, bias, kernel)

    @fill_doc
    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, kernel: str):
        """Build from a dense ``(out, in)`` weight; its exact zeros are dropped.

        Parameters
        ----------
        weight : torch.Tensor
            2-d ``(out, in)`` floating-point weight (detached; its device and dtype kept).
        bias : torch.Tensor or None
            ``(out,)`` bias, or None.
        %(kernel)s

        Returns
        -------
        SparseLinear
            The layer ``x -> x @ weight.T + bias``.

        Raises
        ------
        ValueError
            ``weight`` is not 2-d; an unknown kernel; ``"c_csr_u16"`` with more than 65536
            inputs; ``"torch_bsr"`` with a size not divisible by 4; 2**31 non-zeros or
            more.

        Examples
        --------
        >>> w = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
        >>> sl = SparseLinear.from_weight(w, None, "torch_csr")
        >>> sl.crow_indices.tolist(), sl.col_indices.tolist(), sl.values.tolist()
        ([0, 1, 2], [1, 0], [2.0, 3.0])
        >>> sl(torch.tensor([[1.0, 1.0]]))
        tensor([[2., 3.]])
        """
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
        """The equivalent dense ``nn.Linear`` (same device and dtype).

        Returns
        -------
        torch.nn.Linear
            Its weight is the dense matrix (zeros included), its bias this layer's.

        Examples
        --------
        >>> lin = nn.Linear(5, 2)
        >>> back = SparseLinear.from_linear(lin, "torch_csr").to_linear()
        >>> torch.equal(back.weight, lin.weight), torch.equal(back.bias, lin.bias)
        (True, True)
        """
        like = {"device": self.values.device, "dtype": self.values.dtype}
        lin = nn.Linear(self.in_features, self.out_features, self.bias is not None, **like)
        with torch.no_grad():
            lin.weight.copy_(self.dense_weight())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def dense_weight(self) -> torch.Tensor:
        return self._torch_matrix().to_dense()

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out, in) weight, rebuilt from the sparse arrays at each read (no
        gradient): for code that reads a Linear's weight (its dtype, a tied use, a
        ``F.linear``), which would otherwise stop at the first call of the exported model.
        The forward pass does not use it."""
        return self.dense_weight().detach()

    @property
    def nnz(self) -> int:
        if self.kernel == "torch_bsr":
            return int(torch.count_nonzero(self.values))
        return int(self.values.shape[0]) if self.values.dim() else 0

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
        self.validate()
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
        if self.kernel == "torch_bsr" and x2.requires_grad and torch.is_grad_enabled():
            # torch has no backward through a block-sparse product: the gradient takes the
            # dense weight (the same values)
            return nn.functional.linear(x2, m.to_dense(), self.bias)
        # W (out, in) @ x^T (in, N): torch's CSR-times-dense path
        if self.bias is None:
            return (m @ x2.t()).t()
        return torch.addmm(self.bias.unsqueeze(1), m, x2.t()).t()

    def _c_fn(self, x2: torch.Tensor):
        """The compiled function for this call, or None to use torch's kernels."""
        self.validate()
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
        self._c_cache = (
            val,
            bufs["crow_indices"],
            bufs["col_indices"],
            bufs["bias"],
            self.kernel,
            fn,
        )
        return fn

    def _buffer_key(self) -> tuple:
        b = self._buffers
        return (
            b["crow_indices"],
            b["col_indices"],
            b["values"],
            b["bias"],
            self.kernel,
            self.in_features,
            self.out_features,
        )

    def validate(self) -> None:
        """Raise ValueError unless the buffers are a valid sparse matrix for ``kernel``.

        Every kernel trusts its arrays (torch's CSR kernels read out of bounds, or return
        garbage, on a malformed matrix, like the C ones): shapes, lengths, dtypes, devices,
        row pointers starting at 0 and never decreasing, column indices in range and
        strictly increasing within a row, finite values. Checked once per set of buffers
        (at load, and before the first product after any buffer changed).
        """
        key = self._buffer_key()
        done = getattr(self, "_valid", None)  # pickles of older versions have none
        if done is not None and all(a is b for a, b in zip(done, key)):
            return
        problems = _csr_problems(self)
        if problems:
            raise ValueError(f"invalid sparse layer ({self._describe()}): " + "; ".join(problems))
        self._valid = key

    def _describe(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"kernel={self.kernel!r}"
        )

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
        check_input_dtype(x, self.values.dtype, "SparseLinear")
        _check_cpu_dtype(x, "SparseLinear")
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
        return {
            "kernel": self.kernel,
            "in": self.in_features,
            "out": self.out_features,
            "crc32": self.checksum(),
        }

    def checksum(self) -> int:
        """CRC-32 of the kernel, the sizes and every buffer's bytes: saved with the state dict
        and checked at load, so a damaged checkpoint (a flipped bit in the values) is refused
        instead of computing with it."""
        crc = zlib.crc32(f"{self.kernel}:{self.in_features}:{self.out_features}".encode())
        for t in (self.crow_indices, self.col_indices, self.values, self.bias):
            if t is None:
                crc = zlib.crc32(b"none", crc)
                continue
            t = t.detach().cpu().contiguous()
            crc = zlib.crc32(f"{t.dtype}{tuple(t.shape)}".encode(), crc)
            crc = zlib.crc32(t.view(-1).view(torch.uint8).numpy().tobytes(), crc)
        return crc

    def set_extra_state(self, state) -> None:
        kernel, in_f, out_f = check_extra_state(state)
        self.kernel = kernel
        self.in_features, self.out_features = in_f, out_f
        self._expected_crc = state.get("crc32")
        self._torch_cache = None
        self._c_cache = None
        self._valid = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, *rest):
        # The number of non-zeros (and the index dtype) come from the checkpoint:
        # reshape the buffers to match before the usual copy.
        for name in ("crow_indices", "col_indices", "values", "bias"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                if not isinstance(incoming, torch.Tensor):
                    raise ValueError(
                        f"{prefix}{name} must be a tensor, got {type(incoming).__name__}"
                    )
                device = self.crow_indices.device
                self._buffers[name] = torch.empty_like(incoming, device=device)
        self._torch_cache = None
        self._c_cache = None
        self._valid = None
        n_missing = len(missing)
        self._expected_crc = None
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, *rest)
        if len(missing) == n_missing:  # everything there: the matrix must be valid now
            try:
                self.validate()
                self._verify_checksum()
            except ValueError as e:
                raise ValueError(f"layer {prefix.rstrip('.')!r}: {e}") from None

    def _verify_checksum(self) -> None:
        want = getattr(self, "_expected_crc", None)
        self._expected_crc = None
        if want is not None and want != self.checksum():
            raise ValueError(
                "the buffers do not match the checksum saved with them: the checkpoint was "
                "damaged or altered (to load altered values on purpose, drop 'crc32' from "
                "the layer's _extra_state)"
            )

    def __getstate__(self):
        state = self.__dict__.copy()
        # caches hold a torch sparse copy and raw pointers: rebuilt on first use
        state["_torch_cache"] = None
        state["_c_cache"] = None
        state["_valid"] = None
        return state

    def extra_repr(self) -> str:
        return f"{self._describe()}, nnz={self.nnz}, bias={self.bias is not None}"


def plain_type(mod: nn.Module) -> type:
    """The module's class, or for a ``parametrize``-d one the class it was made from
    (parametrize swaps in a generated subclass that computes the weight, nothing else):
    export takes exact types, since a subclass's forward may compute something else."""
    return type(mod).__bases__[0] if parametrize.is_parametrized(mod) else type(mod)


class SparseConv2d(nn.Module):
    """``nn.Conv2d`` (groups 1, zero padding) as im2col + the sparse (out, C*kh*kw) matrix.

    ``F.unfold`` lays each image out as (C*kh*kw, H'*W'), which is the (in, batch)
    layout of the C kernel: one call per image writes its (out, H'*W') output in place,
    already NCHW. The matrix is a ``SparseLinear`` child (``.matrix``), so the
    kernels, fallback and state handling are the Linear ones. Build one with
    ``from_conv``; the constructor is what ``load_exported`` uses.

    Parameters
    ----------
    conv_args : dict
        ``in_channels``, ``out_channels`` (integers >= 1), ``kernel_size``, ``stride``,
        ``dilation`` (pairs of integers >= 1) and ``padding`` (a pair of integers >= 0).
    matrix : SparseLinear
        The ``(out_channels, in_channels * kh * kw)`` weight matrix (checked at the
        first call, see ``validate``).

    Attributes
    ----------
    in_channels, out_channels : int
        As the ``nn.Conv2d``.
    kernel_size, stride, padding, dilation : tuple of int
        As the ``nn.Conv2d``, as pairs.
    matrix : SparseLinear
        The weight and bias.
    kernel : str
        The matrix's kernel (property).

    Raises
    ------
    ValueError
        ``conv_args`` is not such a dict. At call time: an input that is not
        ``(N, in_channels, H, W)`` or ``(in_channels, H, W)``, or a matrix that does not
        fit the sizes.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> conv = nn.Conv2d(2, 3, 3, padding=1)
    >>> with torch.no_grad():
    ...     _ = conv.weight[:, 0].zero_()  # half of the weights
    >>> sc = SparseConv2d.from_conv(conv, "torch_csr")
    >>> sc.matrix.out_features, sc.matrix.in_features, sc.matrix.nnz
    (3, 18, 27)
    >>> x = torch.randn(2, 2, 5, 5)
    >>> torch.allclose(sc(x), conv(x), atol=1e-6)
    True
    """

    def __init__(self, conv_args: dict, matrix: SparseLinear):
        super().__init__()
        self._set_conv(conv_args)
        self.matrix = matrix

    def _set_conv(self, c) -> None:
        if not isinstance(c, dict) or not set(_CONV_ARGS) <= set(c):
            raise ValueError(f"sparse conv state must be a dict with {_CONV_ARGS}, got {c!r}")
        for k in ("in_channels", "out_channels"):
            if isinstance(c[k], bool) or not isinstance(c[k], int) or not 0 < c[k] < _MAX_FEATURES:
                raise ValueError(f"sparse conv {k} must be an integer >= 1, got {c[k]!r}")
        pairs = {}
        for k, low in (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            v = tuple(c[k]) if isinstance(c[k], list | tuple) else ()
            if len(v) != 2 or not all(
                isinstance(i, int) and not isinstance(i, bool) and low <= i < 1 << 16 for i in v
            ):
                raise ValueError(f"sparse conv {k} must be 2 integers >= {low}, got {c[k]!r}")
            pairs[k] = v
        self.in_channels, self.out_channels = c["in_channels"], c["out_channels"]
        self.kernel_size, self.stride = pairs["kernel_size"], pairs["stride"]
        self.padding, self.dilation = pairs["padding"], pairs["dilation"]

    def validate(self) -> None:
        """Raise ValueError unless the convolution's sizes fit its matrix (and the matrix is
        valid, see ``SparseLinear.validate``)."""
        m = self.matrix
        want = (self.out_channels, self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        if (m.out_features, m.in_features) != want:
            raise ValueError(
                f"sparse conv {self.extra_repr()} needs a {want[0]}x{want[1]} matrix, got "
                f"{m.out_features}x{m.in_features}"
            )
        m.validate()

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (
            plain_type(conv) is nn.Conv2d
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)
        )

    @fill_doc
    @classmethod
    def from_conv(cls, conv: nn.Conv2d, kernel: str) -> SparseConv2d:
        """Build from an ``nn.Conv2d`` (groups 1, zero padding, numeric padding).

        The convolution becomes an unfold, a product with its sparse ``(out, in * k * k)``
        matrix (a ``SparseLinear``) and a fold back to the output's shape.

        Parameters
        ----------
        conv : torch.nn.Conv2d
            A convolution that ``supports`` accepts. The exact zeros of its weight are
            dropped and its bias is copied.
        %(kernel)s

        Returns
        -------
        SparseConv2d
            Unfold, sparse matrix product, fold: the convolution's outputs, up to float
            rounding.

        Raises
        ------
        ValueError
            ``conv`` is not such a convolution (grouped, another padding mode, a
            ``"same"`` padding, a subclass), or the kernel cannot hold its matrix (see
            ``SparseLinear.from_weight``).

        Examples
        --------
        >>> sc = SparseConv2d.from_conv(nn.Conv2d(1, 2, 3, stride=2), "torch_csr")
        >>> sc.stride, sc.kernel, (sc.matrix.out_features, sc.matrix.in_features)
        ((2, 2), 'torch_csr', (2, 9))
        >>> SparseConv2d.supports(nn.Conv2d(2, 2, 3, groups=2))  # from_conv refuses it
        False
        """
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

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out, C, kh, kw) weight, rebuilt from the matrix at each read (no
        gradient), as ``SparseLinear.weight``; the forward pass does not use it."""
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        return self.matrix.weight.reshape(shape)

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
        check_input_dtype(x, self.matrix.values.dtype, "SparseConv2d")
        _check_cpu_dtype(x, "SparseConv2d")
        self.validate()
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
        if not isinstance(state, dict) or "conv" not in state:
            raise ValueError(f"sparse conv state must be a dict with 'conv', got {state!r}")
        self._set_conv(state["conv"])

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
        )


def weight_sparsity(weight: torch.Tensor) -> float:
    """Fraction of exact zeros."""
    return 1.0 - int(torch.count_nonzero(weight)) / max(1, weight.numel())


_MAX_FEATURES = 1 << 31  # int32 row pointers and column indices
_CONV_ARGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation")


def check_extra_state(state) -> tuple[str, int, int]:
    """(kernel, in_features, out_features) of a ``SparseLinear`` extra state, or
    ValueError: a checkpoint's sizes decide allocations, so they are checked first."""
    if not isinstance(state, dict) or not {"kernel", "in", "out"} <= set(state):
        raise ValueError(f"sparse layer state must be a dict with kernel, in, out; got {state!r}")
    crc = state.get("crc32")
    if crc is not None and (isinstance(crc, bool) or not isinstance(crc, int)):
        raise ValueError(f"sparse layer state 'crc32' must be an integer, got {crc!r}")
    kernel = state["kernel"]
    _checks.check_choice("kernel", kernel, KERNELS[1:])
    sizes = []
    for key in ("in", "out"):
        v = state[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < _MAX_FEATURES:
            raise ValueError(
                f"sparse layer state {key!r} must be an integer in [0, 2**31), got {v!r}"
            )
        sizes.append(int(v))
    in_f, out_f = sizes
    if kernel == "c_csr_u16" and in_f > _U16_MAX_COLS:
        raise ValueError(f"kernel 'c_csr_u16' needs in_features <= {_U16_MAX_COLS}, got {in_f}")
    if kernel == "torch_bsr" and (in_f % _BLOCK or out_f % _BLOCK):
        raise ValueError(
            f"kernel 'torch_bsr' needs both sizes divisible by {_BLOCK}, got {out_f}x{in_f}"
        )
    return kernel, in_f, out_f


def _check_cpu_dtype(x: torch.Tensor, layer: str) -> None:
    """TypeError for a half-precision layer on CPU (``model.half()`` after export): neither
    the C kernels nor torch's CPU sparse products take float16 / bfloat16."""
    if x.device.type == "cpu" and x.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"{layer}: {x.dtype} on CPU; its sparse kernels run float32 and float64 only. "
            "Keep the exported model in float32, or densify() it and convert the dense model"
        )


def check_input_dtype(x: torch.Tensor, dtype: torch.dtype, layer: str) -> None:
    """TypeError unless ``x`` has the layer's dtype (the dense layer it stands for refuses
    any other too; the message says which conversion to make)."""
    if x.dtype != dtype:
        raise TypeError(
            f"{layer}: input of dtype {x.dtype}, the layer's is {dtype}; convert the input "
            f"(x.to({dtype})) or the model (model.to(...))"
        )


def _csr_problems(m: SparseLinear) -> list[str]:
    """What is wrong with a sparse layer's buffers (empty when nothing)."""
    crow, col, val, bias = m.crow_indices, m.col_indices, m.values, m.bias
    tensors = {"crow_indices": crow, "col_indices": col, "values": val, "bias": bias}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) and not (name == "bias" and t is None):
            return [f"{name} must be a tensor, got {type(t).__name__}"]
    bsr = m.kernel == "torch_bsr"
    rows = m.out_features // _BLOCK if bsr else m.out_features
    cols = m.in_features // _BLOCK if bsr else m.in_features
    want_col = torch.int16 if m.kernel == "c_csr_u16" else torch.int32
    problems = []
    if crow.dtype != torch.int32 or crow.shape != (rows + 1,):
        problems.append(f"crow_indices must be int32 of shape ({rows + 1},)")
    if col.dtype != want_col or col.dim() != 1:
        problems.append(f"col_indices must be 1-D {want_col} for kernel {m.kernel!r}")
    if not val.is_floating_point() or val.dim() != (3 if bsr else 1):
        problems.append("values must be a floating-point tensor of " + ("3" if bsr else "1") + "-D")
    elif bsr and tuple(val.shape[1:]) != (_BLOCK, _BLOCK):
        problems.append(f"values must be (blocks, {_BLOCK}, {_BLOCK})")
    if bias is not None and (bias.shape != (m.out_features,) or bias.dtype != val.dtype):
        problems.append(f"bias must be ({m.out_features},) of dtype {val.dtype}")
    devices = {t.device for t in tensors.values() if t is not None}
    if len(devices) > 1:
        problems.append(f"buffers must share one device, got {sorted(map(str, devices))}")
    if problems:
        return problems
    if not all(t.is_contiguous() for t in (crow, col, val) + (() if bias is None else (bias,))):
        problems.append("buffers must be contiguous")
    nnz = val.shape[0]
    if int(crow[0]) != 0 or bool((crow[1:] < crow[:-1]).any()):
        problems.append("crow_indices must start at 0 and never decrease")
    elif int(crow[-1]) != nnz or col.numel() != nnz:
        problems.append(
            f"crow_indices[-1] ({int(crow[-1])}), col_indices ({col.numel()}) and values "
            f"({nnz}) must agree on the number of non-zeros"
        )
    elif nnz:
        c = col.to(torch.int64) & 0xFFFF if col.dtype == torch.int16 else col.to(torch.int64)
        if int(c.min()) < 0 or int(c.max()) >= cols:
            problems.append(f"col_indices must lie in [0, {cols})")
        else:
            # strictly increasing within each row: a step down or a repeat starts a row only
            starts = torch.zeros(nnz, dtype=torch.bool, device=c.device)
            starts[crow[:-1][crow[:-1] < nnz].long()] = True
            if bool(((c[1:] <= c[:-1]) & ~starts[1:]).any()):
                problems.append("col_indices must increase strictly within each row")
    if not bool(torch.isfinite(val).all()) or (
        bias is not None and not bool(torch.isfinite(bias).all())
    ):
        problems.append("values and bias must be finite")
    return problems
