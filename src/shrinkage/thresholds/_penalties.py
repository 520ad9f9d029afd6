"""The penalty family: value G(u), prox, threshold and its inverse, one definition each.

Convention::

    prox(x) = argmin_u 1/2 (u - x)^2 + step * G(u)       (elementwise)

G is the full penalty, lam included. Adding a penalty is one ``Penalty`` given to
``register_penalty``; every pillar (and the operator plots) picks it up by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .._checks import check_choice, check_positive

_C_HALF = 54.0 ** (1.0 / 3.0) / 4.0  # half-threshold constant (Xu et al. 2012)


@dataclass(frozen=True)
class Penalty:
    """One member of the family: a penalty G and its proximal operator, defined once.

    Four callables describe it, written on tensors (``u``, ``x``) and on floats or
    broadcastable tensors (``lam``, ``step`` and the extra parameters ``p``):
    ``value(u, lam, **p)`` is G(u), lam included; ``prox(x, lam, step, **p)`` is
    ``argmin_u 1/2 (u - x)^2 + step * G(u)``; ``threshold(lam, step, **p)`` is the largest
    magnitude the prox maps to exactly 0; ``lam_for(thr, step, **p)`` is its inverse in lam.
    The public functions (``prox``, ``penalty``, ...) check the arguments and then
    call these, so the callables themselves need no checks. The dataclass is frozen: each
    parameter below is also a read-only attribute of the same name.

    Parameters
    ----------
    name : str
        Name the penalty is registered and looked up under (non-empty).
    value : callable
        ``value(u, lam, **p) -> tensor``, the elementwise penalty G(u).
    prox : callable
        ``prox(x, lam, step, **p) -> tensor``, the elementwise proximal operator.
    threshold : callable
        ``threshold(lam, step, **p) -> float``, the zeroing threshold of ``prox``.
    lam_for : callable
        ``lam_for(thr, step, **p) -> float``, the inverse of ``threshold`` in ``lam``.
    params : dict, optional
        Each extra parameter's name mapped to its default (e.g. ``{"gamma": 3.0}``);
        default ``{}``, no extra parameter. Any other keyword is refused by ``prox``.
    doc : str, optional
        One line on the formula, shown by ``describe``; default ``""``.
    check : callable or None, optional
        ``check(p, step)``: raises ``ValueError`` when the parameters ``p`` (all of them,
        defaults filled in) do not suit ``step``; ``step`` is None where no step is
        involved (``penalty``). Default None, no check.

    Examples
    --------
    The built-in l1 penalty, used directly (no argument checks at this level):

    >>> import torch
    >>> l1 = get_penalty("l1")
    >>> l1.name, l1.params
    ('l1', {})
    >>> l1.prox(torch.tensor([-2.0, 0.5]), 1.0, 1.0)
    tensor([-1.,  0.])
    >>> l1.lam_for(l1.threshold(0.3, 2.0), 2.0)
    0.3
    """

    name: str
    value: Callable
    prox: Callable
    threshold: Callable
    lam_for: Callable
    params: dict = field(default_factory=dict)  # parameter name -> default
    doc: str = ""
    check: Callable | None = None


def _sign(x):
    return torch.sign(x)


def _soft(x, t):
    # relu, not clamp(min=0): the same values, and at |x| == t the gradient 0 of an entry
    # that reads as 0 (clamp passes it), as shifted_relu and the clipped forms have it
    return _sign(x) * torch.relu(x.abs() - t)


# -- l1 ---------------------------------------------------------------------------------
def _l1_value(u, lam):
    return lam * u.abs()


def _l1_prox(x, lam, step):
    return _soft(x, step * lam)


# -- l0 ---------------------------------------------------------------------------------
def _l0_value(u, lam):
    out = lam * (u != 0).to(u.dtype)
    # gradient 0 everywhere, but on u's graph: backward of a loss that is this alone works
    return out + u.nan_to_num(0.0, 0.0, 0.0) * 0.0 if u.requires_grad else out


def _power_value(u, lam, p):
    """``lam |u|^p`` (0 < p < 1) with the gradient 0 at u = 0 (abs's convention): the power's
    infinite slope there made 0 * inf = NaN, and one zero weight poisoned a whole update."""
    a = u.abs()
    zero = a == 0
    return lam * torch.where(zero, torch.zeros_like(a), torch.where(zero, 1.0, a) ** p)


def _zero_below(keep, val, x):
    """``val`` where ``keep``, else 0; a NaN of ``x`` stays NaN (as in l1's soft threshold):
    a NaN input is never hidden behind a zero."""
    nan = torch.isnan(x)
    return torch.where(nan, x, torch.where(keep, val, torch.zeros_like(x)))


def _l0_prox(x, lam, step):
    thr = (2.0 * step * lam) ** 0.5
    # Tie |x| = sqrt(2 t): both 0 and x minimise; 0 is returned (the sparser one).
    return _zero_below(x.abs() > thr, x, x)


# -- l1/2 -------------------------------------------------------------------------------
def _lhalf_value(u, lam):
    return _power_value(u, lam, 0.5)


def _lhalf_threshold(lam, step):
    return _C_HALF * (2.0 * step * lam) ** (2.0 / 3.0)


def _wide(x):
    """float16 / bfloat16 computed in float32: the closed forms' powers and trigonometry
    overflow or lose their way in 11 (8) bits."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _lhalf_prox(x, lam, step):
    L = 2.0 * step * lam  # Xu et al. write (u - x)^2 + L |u|^(1/2)
    if not isinstance(L, torch.Tensor) and L == 0:
        return x.clone()  # no penalty: the identity (and its gradient, 1)
    w = _wide(x)
    ax = w.abs()
    thr = _lhalf_threshold(lam, step)
    keep = ax > thr
    safe = torch.where(keep, ax, torch.full_like(ax, 1.0) + thr)
    arg = (L / 8.0) * (safe / 3.0) ** -1.5
    bad = ~torch.isfinite(arg)
    if torch.is_grad_enabled() and (w.requires_grad or getattr(L, "requires_grad", False)):
        # the power's derivative, (safe / 3)^-2.5, overflows before its value (float32 from
        # |x| ~ 1e-15): those entries through logs too, or their gradient is 0 * inf = NaN
        bad = bad | ~torch.isfinite((safe.detach() / 3.0) ** -2.5)
    if bool(bad.any()):
        # (safe / 3)^-1.5 overflowed (a tiny |x|; then L = 0 gave NaN, a tiny L the x / 3 of
        # a clamped arg): the same number through logs, where it is finite (0 when L = 0).
        # The power is taken again on a harmless base there: its overflowed branch, unused,
        # still sent 0 * inf = NaN into the gradient.
        Lt = torch.as_tensor(L, dtype=ax.dtype, device=ax.device) / 8.0
        logs = torch.log(Lt) + 1.5 * (math.log(3.0) - torch.log(safe))
        arg = (L / 8.0) * (torch.where(bad, 3.0, safe) / 3.0) ** -1.5
        arg = torch.where(bad, torch.exp(logs), arg)
    phi = torch.arccos(torch.clamp(arg, -1.0, 1.0))
    val = (2.0 / 3.0) * safe * (1.0 + torch.cos(2.0 * math.pi / 3.0 - (2.0 / 3.0) * phi))
    val = torch.minimum(val, safe)  # a prox shrinks: |prox(x)| <= |x|, rounding included
    return _zero_below(keep, _sign(w) * val, w).to(x.dtype)


def _lhalf_lam_for(thr, step):
    return (thr / _C_HALF) ** 1.5 / (2.0 * step)


# -- l2/3 -------------------------------------------------------------------------------
def _l23_value(u, lam):
    return _power_value(u, lam, 2.0 / 3.0)


def _l23_threshold(lam, step):
    L = 2.0 * step * lam  # Cao, Sun & Xu (2013) write (u - x)^2 + L |u|^(2/3)
    # (2/3) (3 L^3)^(1/4), without forming L^3 (it under- or overflows long before the result)
    return (2.0 / 3.0) * 3.0**0.25 * L**0.75


def _l23_prox(x, lam, step):
    L = 2.0 * step * lam
    if not isinstance(L, torch.Tensor) and L == 0:
        return x.clone()  # no penalty: the identity (the closed form divides by L)
    w = _wide(x)
    ax = w.abs()
    thr = _l23_threshold(lam, step)
    keep = ax > thr
    safe = torch.where(keep, ax, torch.full_like(ax, 1.0) + thr)
    if isinstance(L, torch.Tensor):
        # entries of lam = 0 take the identity below; the closed form runs on L = 1 there,
        # whose unused branch is finite (log(0) = -inf sent NaN into x's gradient)
        L_all = L
        L = torch.where(L > 0, L, torch.ones_like(L))
    # Root of the quartic v^4 - |x| v + L/3 = 0 with u = v^3, in hyperbolic form:
    # theta = arccosh(c), c = 27 x^2 / (16 L^1.5), taken in logs (x^2 overflows float32
    # from |x| ~ 2e19) and as log(2c) once c is large.
    log_l = torch.log(L) if isinstance(L, torch.Tensor) else math.log(L) if L > 0 else 0.0
    log_c = torch.clamp(math.log(27.0 / 16.0) + 2.0 * torch.log(safe) - 1.5 * log_l, min=0.0)
    small = torch.arccosh(torch.exp(torch.clamp(log_c, max=20.0)))
    theta = torch.where(log_c > 20.0, log_c + math.log(2.0), small)
    ph = (2.0 / math.sqrt(3.0)) * L**0.25 * torch.cosh(theta / 3.0).sqrt()
    bad = ~torch.isfinite(ph) | (ph == 0)
    if bool(bad.any()):
        # a tiny L: L^0.25 underflows and cosh overflows in x's dtype (float32 from L ~ 1e-150)
        # while their product is a plain number: the same product through logs
        y = theta / 3.0
        log_cosh = y + torch.log1p(torch.exp(-2.0 * y)) - math.log(2.0)
        logs = math.log(2.0 / math.sqrt(3.0)) + 0.25 * log_l + 0.5 * log_cosh
        ph = torch.where(bad, torch.exp(logs), ph)
    inner = torch.clamp(2.0 * safe / ph - ph**2, min=0.0)
    val = torch.minimum(((ph + inner.sqrt()) / 2.0) ** 3, safe)  # |prox(x)| <= |x|
    out = _zero_below(keep, _sign(w) * val, w)
    # lam = 0 means no penalty: the identity (the formula above is 0 * inf there).
    positive = L_all > 0 if isinstance(L, torch.Tensor) else L > 0
    return torch.where(torch.as_tensor(positive, device=x.device), out, w).to(x.dtype)


def _l23_lam_for(thr, step):
    L = (1.5 * thr) ** (4.0 / 3.0) / 3.0 ** (1.0 / 3.0)  # ((1.5 thr)^4 / 3)^(1/3), no 4th power
    return L / (2.0 * step)


# -- CEL0 -------------------------------------------------------------------------------
def _cel0_value(u, lam, a):
    knee = (2.0 * lam) ** 0.5 / a
    inner = lam - (a**2 / 2.0) * (u.abs() - knee) ** 2
    return torch.where(u.abs() <= knee, inner, torch.as_tensor(lam, dtype=u.dtype, device=u.device))


def _cel0_prox(x, lam, step, a):
    ax = x.abs()
    shrunk = torch.clamp(ax - (2.0 * lam) ** 0.5 * a * step, min=0.0) / (1.0 - a**2 * step)
    return _sign(x) * torch.minimum(ax, shrunk)


def _cel0_check(p, step):
    check_positive("a", p["a"])
    if step is not None:
        a2s = torch.as_tensor(p["a"], dtype=torch.float64) ** 2 * float(step)
        if bool((a2s >= 1).any()):
            a_max = float(torch.as_tensor(p["a"], dtype=torch.float64).max())
            raise ValueError(
                f"cel0 needs a**2 * step < 1 (a is the atom norm), got a**2 * step = "
                f"{float(a2s.max()):g} with a={a_max:g}{' (largest)' if a2s.numel() > 1 else ''}"
                f" and step={float(step):g}: pass a < {float(step) ** -0.5:.6g} (e.g. "
                f"a={0.9 * float(step) ** -0.5:.3g}) or step < {a_max**-2:.6g}"
            )


def _cel0_threshold(lam, step, a):
    return (2.0 * lam) ** 0.5 * a * step


def _cel0_lam_for(thr, step, a):
    return (thr / (a * step)) ** 2 / 2.0


# -- MCP (firm thresholding) -------------------------------------------------------------
def _mcp_value(u, lam, gamma):
    au = u.abs()
    return torch.where(
        au <= gamma * lam, lam * au - au**2 / (2.0 * gamma), 0.5 * gamma * lam**2 + 0 * au
    )


def _mcp_prox(x, lam, step, gamma):
    ax = x.abs()
    t = step * lam
    mid = _sign(x) * torch.clamp(ax - t, min=0.0) / (1.0 - step / gamma)
    return torch.where(ax <= gamma * lam, mid, x)


def _mcp_check(p, step):
    if step is not None and not p["gamma"] > step:
        raise ValueError(f"mcp needs gamma > step, got gamma={p['gamma']!r}, step={step!r}")


# -- SCAD -------------------------------------------------------------------------------
def _scad_value(u, lam, gamma):
    au = u.abs()
    mid = (2.0 * gamma * lam * au - au**2 - lam**2) / (2.0 * (gamma - 1.0))
    flat = 0.5 * (gamma + 1.0) * lam**2 + 0 * au
    return torch.where(au <= lam, lam * au, torch.where(au <= gamma * lam, mid, flat))


def _scad_prox(x, lam, step, gamma):
    ax = x.abs()
    low = _soft(x, step * lam)
    mid = ((gamma - 1.0) * x - _sign(x) * step * gamma * lam) / (gamma - 1.0 - step)
    return torch.where(ax <= (1.0 + step) * lam, low, torch.where(ax <= gamma * lam, mid, x))


def _scad_check(p, step):
    if not math.isfinite(float(p["gamma"])):
        # the middle branch is inf / inf there: NaN, and encode's codes came back all zero
        raise ValueError(f"scad needs a finite gamma, got gamma={p['gamma']!r}")
    if step is not None and not p["gamma"] > 1.0 + step:
        raise ValueError(f"scad needs gamma > 1 + step, got gamma={p['gamma']!r}, step={step!r}")


def _linear_threshold(lam, step, **_):
    return step * lam


def _linear_lam_for(thr, step, **_):
    return thr / step


_REGISTRY: dict[str, Penalty] = {
    p.name: p
    for p in (
        Penalty(
            "l1",
            _l1_value,
            _l1_prox,
            _linear_threshold,
            _linear_lam_for,
            doc="lam |u|; prox: soft threshold at t = step lam",
        ),
        Penalty(
            "l0",
            _l0_value,
            _l0_prox,
            lambda lam, step: (2.0 * step * lam) ** 0.5,
            lambda thr, step: thr**2 / (2.0 * step),
            doc="lam [u != 0]; prox: hard threshold at sqrt(2 step lam)",
        ),
        Penalty(
            "l1/2",
            _lhalf_value,
            _lhalf_prox,
            _lhalf_threshold,
            _lhalf_lam_for,
            doc="lam |u|^(1/2); prox: half threshold (Xu et al. 2012)",
        ),
        Penalty(
            "l2/3",
            _l23_value,
            _l23_prox,
            _l23_threshold,
            _l23_lam_for,
            doc="lam |u|^(2/3); prox: closed form of Cao, Sun & Xu (2013)",
        ),
        Penalty(
            "cel0",
            _cel0_value,
            _cel0_prox,
            _cel0_threshold,
            _cel0_lam_for,
            params={"a": 1.0},
            doc="continuous exact l0 relaxation (Soubies et al. 2015); a: atom norm",
            check=_cel0_check,
        ),
        Penalty(
            "mcp",
            _mcp_value,
            _mcp_prox,
            _linear_threshold,
            _linear_lam_for,
            params={"gamma": 3.0},
            doc="minimax concave penalty; prox: firm threshold (needs gamma > step)",
            check=_mcp_check,
        ),
        Penalty(
            "scad",
            _scad_value,
            _scad_prox,
            _linear_threshold,
            _linear_lam_for,
            params={"gamma": 3.7},
            doc="smoothly clipped absolute deviation (Fan & Li 2001; needs gamma > 1 + step)",
            check=_scad_check,
        ),
    )
}


class _Names(Sequence):
    """The registered penalty names in registration order, read live from the registry: a
    penalty registered later is in it, wherever it was imported."""

    def __getitem__(self, i):
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self):
        return iter(tuple(_REGISTRY))

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in _REGISTRY

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


PENALTIES: Sequence[str] = _Names()


def get_penalty(name: str) -> Penalty:
    """Look up the registered ``Penalty`` called ``name``.

    Parameters
    ----------
    name : str
        A registered name: one of ``PENALTIES`` (``"l1"``, ``"l0"``, ``"l1/2"``,
        ``"l2/3"``, ``"cel0"``, ``"mcp"``, ``"scad"`` and any added by
        ``register_penalty``).

    Returns
    -------
    Penalty
        The registered record itself (not a copy).

    Raises
    ------
    ValueError
        If ``name`` is not a registered name (or not a str); the message lists the known
        names.

    Examples
    --------
    >>> get_penalty("l1").threshold(0.5, 2.0)
    1.0
    >>> get_penalty("scad").params
    {'gamma': 3.7}
    """
    pen = _REGISTRY.get(name) if isinstance(name, str) else None
    if pen is None:
        check_choice("penalty name", name, PENALTIES)
    return pen


def register_penalty(penalty: Penalty, *, replace: bool = False) -> Penalty:
    """Add ``penalty`` to the family under ``penalty.name``.

    From then on ``prox``, ``penalty``, ``threshold``, the weights pillar
    (``Sparsifier(method="prox_ste", penalty=name)``), the codes pillar (``encode``,
    dictionary learning) and the operator plots accept the name. A name already taken is
    refused unless ``replace=True``, so a typo cannot silently shadow a built-in penalty.

    Parameters
    ----------
    penalty : Penalty
        The definition to register; its ``value``, ``prox``, ``threshold`` and ``lam_for``
        must be callable.
    replace : bool, optional
        Allow replacing a penalty already registered under the same name. Default False.

    Returns
    -------
    Penalty
        ``penalty`` itself.

    Raises
    ------
    ValueError
        If ``penalty`` is not a ``Penalty``, its name is not a non-empty str, one of
        its four functions is not callable, or the name is taken and ``replace`` is False.

    Examples
    --------
    A penalty 2 lam |u|, whose prox is a soft threshold at 2 step lam:

    >>> import torch
    >>> double_l1 = Penalty(
    ...     "double_l1",
    ...     value=lambda u, lam: 2 * lam * u.abs(),
    ...     prox=lambda x, lam, step: torch.sign(x) * torch.clamp(x.abs() - 2 * step * lam, min=0),
    ...     threshold=lambda lam, step: 2 * step * lam,
    ...     lam_for=lambda thr, step: thr / (2 * step),
    ... )
    >>> _ = register_penalty(double_l1)
    >>> "double_l1" in PENALTIES
    True
    >>> from shrinkage.thresholds import prox
    >>> prox("double_l1", torch.tensor([-3.0, 1.0, 5.0]), lam=1.0)
    tensor([-1.,  0.,  3.])
    >>> _ = unregister_penalty("double_l1")
    """
    if not isinstance(penalty, Penalty):
        raise ValueError(f"penalty must be a Penalty, got {type(penalty).__name__}")
    if not isinstance(penalty.name, str) or not penalty.name:
        raise ValueError(f"a penalty's name must be a non-empty str, got {penalty.name!r}")
    for attr in ("value", "prox", "threshold", "lam_for"):
        if not callable(getattr(penalty, attr)):
            raise ValueError(f"penalty {penalty.name!r}: {attr} must be callable")
    if penalty.name in _REGISTRY and not replace:
        raise ValueError(
            f"penalty {penalty.name!r} is already registered; pass replace=True to replace it"
        )
    _REGISTRY[penalty.name] = penalty
    return penalty


def unregister_penalty(name: str) -> Penalty:
    """Remove a registered penalty (the built-in ones included).

    Parameters
    ----------
    name : str
        A registered name, one of ``PENALTIES``.

    Returns
    -------
    Penalty
        The removed record, so it can be registered again with ``register_penalty``.

    Raises
    ------
    ValueError
        If ``name`` is not a registered name.

    Examples
    --------
    A copy of l1 under another name, added and removed again (the built-in penalties are
    left alone, so their order in ``PENALTIES`` stays as it is):

    >>> import dataclasses
    >>> _ = register_penalty(dataclasses.replace(get_penalty("l1"), name="lasso"))
    >>> unregister_penalty("lasso").name
    'lasso'
    >>> "lasso" in PENALTIES
    False
    """
    return _REGISTRY.pop(get_penalty(name).name)
