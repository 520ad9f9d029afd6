"""The sparsifier's per-step work made cheap: the exact threshold, ST-3's forward weight and
gmp's mask, each in one or two passes over the weights.

The threshold. ``KthSearch`` finds the k-th smallest score ``v`` (the value
``torch.kthvalue(scores, k)`` returns) and the number ``n_le`` of scores ``<= v``
(``n_le > k`` means ties at ``v``). It remembers the last answer ``g`` and a width ``w``;
the next call counts, in one pass, the scores below each of a few edges around ``g``
(``g +- w`` and ``g +- 4w``) and keeps the scores of ``[g - w, g + w)``. The counts say where
the k-th smallest lies: among the few scores kept (a selection among them) or between two
other edges (a second pass keeps that interval); for weight tensors without a mask that
usual case (four edges, the k-th in the central interval) is one C call over all of them,
pass and selection (``WeightScores.kth_step``). When the last answer was tied (gmp's
pruned scores, all -1), the scores equal to ``g`` are counted and not kept, so that the
answer ``g`` needs no selection at all. The first call takes ``g`` and ``w`` from a strided
sample. Nothing is approximate: the edges only decide how much is read and selected from.

The scores are read from a source: ``TensorScores`` (a flat tensor of scores, torch
operations: CUDA, other dtypes, no compiler) or ``WeightScores`` (the weight tensors
themselves on CPU float32/float64, the scores ``|w| * scale`` or gmp's masked ``|w|``
made on the fly by the C pass, with no buffer: ``_native/prune.c``, compiled at first
use). Both also report the largest score of each tensor and whether one is not finite.

ST-3's forward weight (``st3_forward``), gmp's (``masked``) and gmp's mask update
(``gmp_update``) are C passes too. ST-3's forward computes each entry with the same
operations, in the same order, as the torch expression
``w + (gamma sign(w) max(|w| - tau, 0) - w)``: the same values but for the per-channel
means behind gamma, summed in another order (they may differ from torch's in the last bit).
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import torch

from .. import _native

__all__ = [
    "KthSearch",
    "TensorScores",
    "WeightScores",
    "NonFiniteScores",
    "available",
    "usable",
    "st3_forward",
    "masked",
    "gmp_update",
]

_SMALL = 4096  # below this a plain torch.kthvalue is as cheap as anything
_SAMPLE = 8192  # entries of the strided sample of a first call
_TARGET = 512  # scores the central interval should hold (the width adapts to it)


class _Lib:
    """ctypes handle: ``scan``, ``select``, ``st3``, ``gmp_update``: dtype -> C function."""

    def __init__(self, lib: ctypes.CDLL, path: Path, flags: list[str]):
        self.lib, self.path, self.flags = lib, path, flags
        self.scan, self.select, self.st3, self.gmp_update, self.mask_mul = {}, {}, {}, {}, {}
        self.kth_step = {}
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        for dt, name, ct in (
            (torch.float32, "f32", ctypes.c_float),
            (torch.float64, "f64", ctypes.c_double),
        ):
            f = getattr(lib, f"shrinkage_scan_{name}")
            f.restype = i64
            f.argtypes = [vp, i64, ctypes.c_double, vp, vp, ctypes.c_int, vp, vp, ct, ct, ct]
            f.argtypes += [vp, i64, i64, vp, vp]
            self.scan[dt] = f
            f = getattr(lib, f"shrinkage_select_{name}")
            f.restype = ct
            f.argtypes = [vp, i64, i64, vp, vp]
            self.select[dt] = f
            f = getattr(lib, f"shrinkage_kth_step_{name}")
            f.restype = ctypes.c_int
            f.argtypes = [vp, vp, vp, ctypes.c_int, ctypes.c_double, ctypes.c_double, i64, vp]
            f.argtypes += [i64, vp, vp, vp, vp, vp]
            self.kth_step[dt] = f
            f = getattr(lib, f"shrinkage_st3_forward_{name}")
            f.restype = None
            f.argtypes = [vp, vp, i64, i64, ctypes.c_double, ctypes.c_int, ctypes.c_int]
            self.st3[dt] = f
            f = getattr(lib, f"shrinkage_mask_mul_{name}")
            f.restype = None
            f.argtypes = [vp, vp, vp, i64]
            self.mask_mul[dt] = f
            f = getattr(lib, f"shrinkage_gmp_update_{name}")
            f.restype = None
            f.argtypes = [vp, vp, ctypes.c_double, i64]
            self.gmp_update[dt] = f


_LIB = _native.NativeLibrary("prune", _Lib, "compiled sparsifier kernels", "torch operations")


def load() -> _Lib | None:
    return _LIB.load()


def available() -> bool:
    return load() is not None


# looked up once: usable() runs on every forward of a pruned layer
_IS_WRAPPED = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)


def _transformed(w: torch.Tensor) -> bool:
    """``w`` is a torch.func (grad, vmap, jacrev) wrapper: the C passes' autograd Functions
    have no rule for those transforms (torch's own error before), the torch path does."""
    return _IS_WRAPPED is not None and bool(_IS_WRAPPED(w))


def usable(w: torch.Tensor) -> bool:
    """Whether the C kernels take ``w`` (CPU, contiguous, float32/float64, not while
    torch.compile traces or under a torch.func transform) and are built."""
    return (
        w.device.type == "cpu"
        and w.dtype in (torch.float32, torch.float64)
        and w.dim() >= 1
        and w.is_contiguous()
        and not torch.compiler.is_compiling()
        and not _transformed(w)
        and load() is not None
    )


# -- ST-3's forward and gmp's update ------------------------------------------------------
class _StraightThrough(torch.autograd.Function):
    """Forward: ST-3's straight-through weight computed in C; backward: the identity (the
    gradient of ``w + (y - w).detach()``)."""

    @staticmethod
    def forward(ctx, w, tau, rescale):
        out = torch.empty_like(w, memory_format=torch.contiguous_format)
        rows = w.shape[0]
        load().st3[w.dtype](
            w.data_ptr(),
            out.data_ptr(),
            rows,
            w.numel() // max(rows, 1),
            float(tau),
            int(rescale),
            torch.get_num_threads(),
        )
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def st3_forward(w: torch.Tensor, tau: torch.Tensor, rescale: bool) -> torch.Tensor:
    """``w + (st3_weight(w, tau, rescale) - w).detach()`` in two passes (see the module
    docstring); ``w`` must pass ``usable``."""
    return _StraightThrough.apply(w, tau, rescale)


class _MaskMul(torch.autograd.Function):
    """``w * mask`` (a bool mask) and its gradient ``grad * mask``, each one C pass with the
    values torch's multiplication by a bool tensor gives."""

    @staticmethod
    def forward(ctx, w, mask):
        out = torch.empty_like(w)
        load().mask_mul[w.dtype](w.data_ptr(), mask.data_ptr(), out.data_ptr(), w.numel())
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        if not usable(grad) or torch.is_grad_enabled():
            # a non-contiguous gradient, or a backward that records a graph (create_graph:
            # a gradient penalty, a Hessian-vector product): the C pass is not differentiable
            return grad * mask, None
        out = torch.empty_like(grad)
        load().mask_mul[grad.dtype](grad.data_ptr(), mask.data_ptr(), out.data_ptr(), grad.numel())
        return out, None


def masked(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``w * mask`` for gmp's forward (``w`` usable, ``mask`` a contiguous bool tensor of its
    shape)."""
    return _MaskMul.apply(w, mask)


def gmp_update(w: torch.Tensor, mask: torch.Tensor, tau: float) -> None:
    """gmp's step in one pass: ``mask = where(mask, |w|, -1) > tau``, then ``w[~mask] = 0``
    (``w`` usable, ``mask`` a contiguous bool tensor of its shape)."""
    load().gmp_update[w.dtype](w.data_ptr(), mask.data_ptr(), tau, w.numel())
    # written behind autograd's back: a graph that saved them must see the change, as it
    # would after masked_fill_
    torch.autograd.graph.increment_version(mask)
    torch.autograd.graph.increment_version(w)


# -- where the scores come from ---------------------------------------------------------
class NonFiniteScores(ValueError):
    """A pass met a NaN or infinite score (the caller names the layer)."""


class _Scan:
    """What one pass found: counts below each edge, the count equal to the skipped value,
    the scores kept (a buffer that may hold fewer than ``n_kept``), their number."""

    __slots__ = ("lt", "eq", "kept", "n_kept")

    def __init__(self, lt, eq, kept, n_kept):
        self.lt, self.eq, self.kept, self.n_kept = lt, eq, kept, n_kept


class TensorScores:
    """A flat tensor of finite scores, read with torch operations (any device, any dtype)."""

    use_c = False

    def __init__(self, flat: torch.Tensor):
        self.flat = flat
        self.numel = flat.numel()
        self.dtype, self.device = flat.dtype, flat.device

    def sample(self, stride: int) -> torch.Tensor:
        return self.flat[::stride]

    def scan(self, edges, lo, hi, skip, count_eq, buf) -> _Scan:
        f = self.flat
        e = torch.tensor(edges, dtype=f.dtype, device=f.device)
        lt = (f.unsqueeze(0) < e.unsqueeze(1)).sum(1)
        mask = (f >= lo) & (f < hi)
        if count_eq:
            mask &= f != skip
            eq = (f == skip).sum().reshape(1)
            counts = torch.cat([lt, eq]).tolist()
            lt, eq = counts[:-1], counts[-1]
        else:
            lt, eq = lt.tolist(), 0
        kept = f[mask]
        return _Scan(lt, eq, kept, kept.numel())

    def gather(self, lo, hi, count, buf) -> torch.Tensor:
        return self.flat[(self.flat >= lo) & (self.flat < hi)]

    def materialize(self) -> torch.Tensor:
        return self.flat


class WeightScores:
    """The scores of weight tensors made on the fly by the C pass: ``|w| * scale`` per
    tensor (``scale`` 1.0 reads ``|w|``), or with a mask (gmp) ``|w|`` where it is set and -1
    elsewhere. All CPU, contiguous, one dtype (float32 / float64). After each pass
    ``smax[i]`` is tensor i's largest score; a non-finite score raises
    ``NonFiniteScores``."""

    use_c = True

    def __init__(self, weights, scales, masks):
        self.weights = [w.detach() for w in weights]
        self.scales = [float(s) for s in scales]
        self.masks = list(masks)
        self.numel = sum(w.numel() for w in self.weights)
        self.dtype, self.device = self.weights[0].dtype, self.weights[0].device
        self.smax: list[float] = []
        self._fn = load().scan[self.dtype]

    def _run(self, edges, lo, hi, skip, count_eq, buf, cap):
        m = len(edges)
        e = torch.tensor(edges, dtype=self.dtype) if m else None
        lt = (ctypes.c_int64 * max(m, 1))()
        eq, bad = ctypes.c_int64(0), ctypes.c_int64(0)
        n_kept = 0
        smax = []
        for w, scale, mask in zip(self.weights, self.scales, self.masks):
            mx = (ctypes.c_float if self.dtype == torch.float32 else ctypes.c_double)(-math.inf)
            n_kept = self._fn(
                w.data_ptr(),
                w.numel(),
                scale,
                None if mask is None else mask.data_ptr(),
                None if e is None else e.data_ptr(),
                m,
                lt,
                ctypes.byref(eq) if count_eq else None,
                lo,
                hi,
                skip,
                buf.data_ptr(),
                cap,
                n_kept,
                ctypes.byref(mx),
                ctypes.byref(bad),
            )
            smax.append(mx.value)
        if bad.value:
            raise NonFiniteScores(f"{bad.value} non-finite scores")
        self.smax = smax
        return list(lt)[:m], int(eq.value), int(n_kept)

    def kth_step(self, g: float, w: float, k: int, buf: torch.Tensor):
        """The usual search step in one C call (``KthSearch._search`` with four edges, the
        k-th inside the central interval): ``(v, n_le, n_lt, n_kept)``, or None when the
        general search must answer (it redoes the pass; also for a non-finite score, which
        it names). Tensors with a mask (gmp) always take the general search."""
        if any(m is not None for m in self.masks):
            return None
        nt = len(self.weights)
        ct = ctypes.c_float if self.dtype == torch.float32 else ctypes.c_double
        ws = (ctypes.c_void_p * nt)(*[x.data_ptr() for x in self.weights])
        ns = (ctypes.c_int64 * nt)(*[x.numel() for x in self.weights])
        scales = (ctypes.c_double * nt)(*self.scales)
        smax = (ct * nt)()
        v, n_le, n_lt, n_kept = ct(0), ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_int64(0)
        status = load().kth_step[self.dtype](
            ws, ns, scales, nt, g, w, k, buf.data_ptr(), buf.numel(),
            ctypes.byref(v), ctypes.byref(n_le), ctypes.byref(n_lt), ctypes.byref(n_kept), smax,
        )  # fmt: skip
        if status != 0:
            return None
        self.smax = list(smax)
        return v.value, int(n_le.value), int(n_lt.value), int(n_kept.value)

    def scan(self, edges, lo, hi, skip, count_eq, buf) -> _Scan:
        lt, eq, n_kept = self._run(edges, lo, hi, skip, count_eq, buf, buf.numel())
        return _Scan(lt, eq, buf, n_kept)

    def gather(self, lo, hi, count, buf) -> torch.Tensor:
        _, _, n = self._run([], lo, hi, math.nan, False, buf, count)
        if n != count:  # pragma: no cover - two passes over the same weights disagree
            raise RuntimeError(f"threshold selection: {n} scores in [{lo}, {hi}), not {count}")
        return buf[:count]

    def sample(self, stride: int) -> torch.Tensor:
        return self.materialize()[::stride]

    def materialize(self) -> torch.Tensor:
        """All scores as one flat tensor (first calls and rare fallbacks)."""
        parts = []
        for w, scale, mask in zip(self.weights, self.scales, self.masks):
            a = w.abs().reshape(-1)
            if mask is not None:
                a = torch.where(mask.reshape(-1), a, torch.full_like(a, -1.0))
            elif scale != 1.0:
                a = a * scale
            parts.append(a)
        return torch.cat(parts)


# -- the search ---------------------------------------------------------------------------
class KthSearch:
    """Exact k-th smallest score of sources that change little between calls.

    ``search(scores, k)`` -> ``(v, n_le)``: ``v`` a 0-d tensor equal to
    ``torch.kthvalue(all scores, k).values``, ``n_le`` the number of scores ``<= v``;
    ``scores`` a 1-d tensor of finite scores, a ``TensorScores`` or a
    ``WeightScores``; ``1 <= k <=`` their number. One instance per sequence of related
    calls (one per threshold): it holds the last answer and a width, hints that make the
    next call cheap and never change its result.

    Examples
    --------
    >>> s = KthSearch()
    >>> x = torch.arange(100000.0).flip(0)
    >>> v, n_le = s(x, 7)
    >>> float(v), n_le
    (6.0, 7)
    >>> float(s(x + 0.5, 9)[0])   # the next call starts from the last answer
    8.5
    """

    def __init__(self):
        self.center: float | None = None
        self.width: float | None = None
        self.tied = False  # the last answer had ties: count the scores equal to it
        self._buf: torch.Tensor | None = None
        self.passes = 0  # passes over the scores so far (tests and benchmarks read it)

    def reset(self) -> None:
        self.center = self.width = None
        self.tied = False

    def __call__(self, scores, k: int) -> tuple[torch.Tensor, int]:
        src = TensorScores(scores) if isinstance(scores, torch.Tensor) else scores
        n = src.numel
        if not 1 <= k <= n:
            raise ValueError(f"k must be in [1, {n}], got k={k}")
        if n < _SMALL or self.center is None:
            flat = src.materialize()
            if isinstance(src, WeightScores):
                self._check(src, flat)
            if n < _SMALL:
                self.passes += 1
                v, n_le, n_lt = self._full(flat, k)
                self.center, self.tied = float(v), n_le - n_lt > 1
                self.width = self._min_width(self.center, 0.0)
                return v, n_le
            self._start(flat, k)
        elif not self.tied and isinstance(src, WeightScores):
            got = src.kth_step(self.center, self.width, k, self._scratch(self._cap(n), src))
            if got is not None:  # the usual step, in one C call
                self.passes += 1
                v, n_le, n_lt, n_kept = got
                self._adapt(v, n_kept)
                self.tied = n_le - n_lt > 1
                return self._scalar(v, src), n_le
        v, n_le, n_lt, n_kept = self._search(src, k)
        self._adapt(float(v), n_kept)
        self.tied = n_le - n_lt > 1
        return v, n_le

    @staticmethod
    def _full(flat, k):
        v = torch.kthvalue(flat, k).values
        return v, int((flat <= v).sum()), int((flat < v).sum())

    @staticmethod
    def _check(src, flat) -> None:
        if not bool(torch.isfinite(flat).all()):
            raise NonFiniteScores("non-finite scores")
        parts = torch.split(flat, [w.numel() for w in src.weights])
        src.smax = [float(p.max()) if p.numel() else -math.inf for p in parts]

    def _search(self, src, k):
        """(v, #scores <= v, #scores < v, #scores the first pass kept)."""
        g, w, n = self.center, self.width, src.numel
        use_c = src.use_c
        count_eq = self.tied
        # the C pass counts four edges at once: g +- w, g +- 4w, or g +- w and g when tied
        offsets = (-4.0, -1.0, 1.0, 4.0) if use_c and not count_eq else (-1.0, 1.0)
        edges = self._edges(g, w, offsets, src.dtype)
        if count_eq:  # g is an edge, its ties counted apart and not kept
            edges = sorted(set(edges) | {g})
        lo = max((e for e in edges if e < g), default=-math.inf)
        hi = min((e for e in edges if e > g), default=math.inf)
        skip = g if count_eq else math.nan
        buf = self._scratch(self._cap(n), src) if use_c else None
        self.passes += 1
        sc = src.scan(edges, lo, hi, skip, count_eq, buf)
        lt, m = sc.lt, len(edges)
        if count_eq:
            ig = edges.index(g)
            if lt[ig] < k <= lt[ig] + sc.eq:  # the k-th smallest is g itself
                return self._scalar(g, src), lt[ig] + sc.eq, lt[ig], sc.n_kept
        j = sum(1 for c in lt if c < k) - 1  # the k-th lies in [e_j, e_j+1)
        e_lo = edges[j] if j >= 0 else -math.inf
        e_hi = edges[j + 1] if j + 1 < m else math.inf
        complete = not use_c or sc.n_kept <= sc.kept.numel()
        if lo <= e_lo and e_hi <= hi and complete:  # among what the pass kept
            base = lt[edges.index(lo)] if lo > -math.inf else 0
            if count_eq and e_lo >= g:
                base += sc.eq  # the scores equal to g were not kept
            v, c_le, c_lt = self._select(sc.kept[: sc.n_kept], k - base, use_c)
            return v, base + c_le, base + c_lt, sc.n_kept
        # a second pass keeps the interval [e_j, e_j+1)
        base = lt[j] if j >= 0 else 0
        inside = (lt[j + 1] if j + 1 < m else n) - base
        self.passes += 1
        if inside > max(4 * _TARGET, n >> 3):  # too many: select over everything
            v, n_le, n_lt = self._full(src.materialize(), k)
            return v, n_le, n_lt, sc.n_kept
        kept = src.gather(e_lo, e_hi, inside, self._scratch(inside, src) if use_c else None)
        v, c_le, c_lt = self._select(kept, k - base, use_c)
        return v, base + c_le, base + c_lt, sc.n_kept

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _cap(n: int) -> int:
        """Scores a first pass stores (the central interval holds about _TARGET)."""
        return min(n, max(4 * _TARGET, n >> 6))

    def _start(self, flat: torch.Tensor, k: int) -> None:
        """Center and width from a strided sample (no RNG: every rank and rerun agrees)."""
        n = flat.numel()
        stride = max(1, n // _SAMPLE)
        sample = flat[::stride]
        ms = sample.numel()
        j = (k - 1) / max(n - 1, 1) * (ms - 1)
        margin = 2.0 * math.sqrt(ms) + 4.0
        lo = float(torch.kthvalue(sample, max(1, int(j - margin) + 1)).values)
        mid = float(torch.kthvalue(sample, min(ms, int(j) + 1)).values)
        hi = float(torch.kthvalue(sample, min(ms, int(j + margin) + 1)).values)
        self.center = mid
        self.width = self._min_width(mid, max(mid - lo, hi - mid, 0.0))
        self.tied = lo == hi  # a sample full of one value (gmp's -1): count its ties

    @staticmethod
    def _min_width(g: float, w: float) -> float:
        # edges must stay distinct after rounding to the scores' precision
        floor = abs(g) * 1e-5 + 1e-30
        return w if math.isfinite(w) and w > floor else floor

    @staticmethod
    def _edges(g, w, offsets, dtype) -> list[float]:
        """Sorted distinct finite edges ``g + o w`` rounded to ``dtype``."""
        raw = torch.tensor([g + o * w for o in offsets], dtype=dtype).tolist()
        return sorted({v for v in raw if math.isfinite(v)})

    @staticmethod
    def _scalar(v: float, src) -> torch.Tensor:
        return torch.tensor(v, dtype=src.dtype, device=src.device)

    def _scratch(self, size: int, src) -> torch.Tensor:
        b = self._buf
        if b is None or b.numel() < size or b.dtype != src.dtype:
            b = torch.empty(max(size, 1), dtype=src.dtype)
            self._buf = b
        return b[:size]

    def _select(self, kept: torch.Tensor, r: int, use_c: bool):
        """(r-th smallest of ``kept``, #entries <= it, #entries < it); ``kept`` may be
        reordered."""
        if use_c:
            n_le, n_lt = ctypes.c_int64(0), ctypes.c_int64(0)
            v = load().select[kept.dtype](
                kept.data_ptr(), kept.numel(), r, ctypes.byref(n_le), ctypes.byref(n_lt)
            )
            return torch.tensor(v, dtype=kept.dtype), int(n_le.value), int(n_lt.value)
        return self._full(kept, r)

    def _adapt(self, v: float, n_kept: int) -> None:
        """Next center: this answer; next width: wide enough for twice this move, narrow
        enough that the central interval holds about _TARGET scores."""
        w = self.width
        moved = abs(v - self.center)
        if n_kept > 4 * _TARGET:
            w = w / 2
        elif n_kept < _TARGET // 4:
            w = w * 2
        self.center = v
        self.width = self._min_width(v, max(w, 2.0 * moved))
