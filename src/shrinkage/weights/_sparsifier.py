"""The ``Sparsifier``: ST-3 and its relatives on any PyTorch model, via ``parametrize``."""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._checks import check_choice, check_floor, check_open_unit
from ..thresholds import PENALTIES, lam_for_threshold, prox
from . import _prune
from ._flops import flops
from ._methods import METHODS, RECORDS
from ._ops import PRUNABLE, exact_threshold, n_pruned
from ._prune import KthSearch
from ._rigl import drop_fraction, drop_grow, layer_counts, sparse_init_scale
from ._schedules import Constant, Schedule, check_schedule, evaluate
from ._str import decay_rate

__all__ = ["Sparsifier", "METHODS", "PRUNABLE", "PrunedLayerWarning"]


_EMPTY_BUF = {dt: torch.empty(1, dtype=dt) for dt in (torch.float32, torch.float64)}

# str: steps with gradients and no move of any threshold before the frozen-threshold warning
FROZEN_STEPS = 10
# Steps at which a state records its schedule (0, 1, 2, 3, 4, 6, 8, 12, ... 2^31): a resume
# under another schedule, or the default cubic of another number of steps, differs at one.
SCHEDULE_PROBES = sorted({0} | {2**j for j in range(32)} | {3 * 2**j for j in range(31)})


def _mean_over_ranks(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean over the ranks of a torch.distributed group (one all_reduce of all tensors
    together), or the tensors themselves outside one."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    parts = torch.split(flat, [t.numel() for t in tensors])
    return [x.reshape(t.shape) for x, t in zip(parts, tensors)]


class PrunedLayerWarning(UserWarning):
    """A pruned layer has no weight left: the network is disconnected.

    Issued by ``Sparsifier`` (at construction or ``Sparsifier.step``) once per
    layer, the first time the layer's density falls to 0; ``min_density`` prevents it.
    """


def _plain(params: dict) -> dict:
    """Penalty parameters as plain floats (a 0-d tensor given for one compares by value)."""
    return {k: float(v) for k, v in params.items()}


def _same(saved, mine) -> bool:
    """Whether a saved entry is ``mine``: the same type and equal (a damaged entry, a tensor
    say, is not, and never raises here)."""
    try:
        return type(saved) is type(mine) and bool(saved == mine)
    except (RuntimeError, TypeError, ValueError):
        return False


def _split(flat_mask, scores):
    """A mask over the concatenated scores, cut back into one per tensor (None stays None)."""
    if flat_mask is None:
        return [None] * len(scores)
    return list(torch.split(flat_mask, [x.numel() for x in scores]))


class SparseWeight(nn.Module):
    """Parametrization: raw weight -> the weight the forward pass sees.

    Buffers ``tau`` (magnitude threshold), ``lam`` (penalty weight, prox_ste) and ``mask``
    (sticky mask, gmp) are set by ``Sparsifier.step``; they are constants for autograd.
    The transform (and with it the gradient path) is the method's record in
    ``shrinkage.weights._methods``: e.g. ``st3_weight`` of the raw weight at ``tau``
    with a straight-through gradient for ``"st3"``, ``w * mask`` for ``"gmp"``.
    ``Sparsifier`` builds and registers one per pruned tensor; there is no need to
    make one by hand.

    Parameters
    ----------
    weight : torch.Tensor
        The raw weight (its shape, dtype and device size the buffers).
    method : str
        One of ``METHODS``.
    rescale : bool
        ST-3's per-channel rescale (``channel_gamma``) on or off.
    penalty : str
        The prox_ste operator, one of ``PENALTIES`` (read only
        by ``method="prox_ste"``).
    params : dict
        The penalty's parameters (``{}`` for its defaults).

    Attributes
    ----------
    tau : torch.Tensor
        0-d buffer: magnitude threshold, entries with ``|w| <= tau`` read as 0 (0 for gmp,
        whose mask does the pruning).
    lam : torch.Tensor
        0-d buffer: the penalty weight whose prox (step 1) zeroes exactly ``|w| <= tau``
        (prox_ste and hard_ste; 0 otherwise).
    mask : torch.Tensor or None
        Bool buffer of the weight's shape for a sticky method (gmp): the entries kept,
        which only shrinks; None otherwise.
    ties : torch.Tensor or None
        Bool mask of the entries tied at the threshold that are pruned to hit the scheduled
        count exactly (None: no tie, the usual case); kept in the Sparsifier's state, not
        the model's.

    Examples
    --------
    >>> import torch
    >>> from shrinkage.weights import st3_weight
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    >>> sp = Sparsifier(model, sparsity=0.5, rescale=False)
    >>> pm = model[0].parametrizations.weight[0]
    >>> pm
    SparseWeight(method='st3', rescale=False)
    >>> raw = model[0].parametrizations.weight.original
    >>> int((raw.abs() > pm.tau).sum())  # half of the 16 weights are above tau
    8
    >>> torch.equal(model[0].weight, st3_weight(raw, pm.tau, rescale=False))
    True
    """

    def __init__(
        self,
        weight: torch.Tensor,
        method: str,
        rescale: bool,
        penalty: str,
        params,
        s_init: float | None = None,
    ):
        super().__init__()
        self.method = method
        self.rescale = rescale
        self.penalty = penalty
        self.params = dict(params)
        rec = RECORDS[method]
        self.register_buffer("tau", torch.zeros((), dtype=weight.dtype, device=weight.device))
        self.register_buffer("lam", torch.zeros((), dtype=weight.dtype, device=weight.device))
        if rec.mask:
            self.register_buffer("mask", torch.ones_like(weight, dtype=torch.bool))
        else:
            self.mask = None
        if rec.learned:  # STR: the layer's threshold sigmoid(s), learned, and the projection
            self.s = nn.Parameter(
                torch.full((), float(s_init), dtype=weight.dtype, device=weight.device)
            )
            self.register_buffer("shift", torch.zeros((), dtype=weight.dtype, device=weight.device))
        # Tied entries pruned to hit the scheduled count exactly (None: no tie at the
        # threshold, the usual case). Kept in the Sparsifier's state, not the model's.
        self.ties: torch.Tensor | None = None
        # RigL: on an update step the backward keeps dL/dw_hat here (summed over uses).
        self.capture = False
        self.dense_grad: torch.Tensor | None = None

    def store_dense_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach()
        self.dense_grad = g.clone() if self.dense_grad is None else self.dense_grad + g

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        rec = RECORDS[self.method]
        out = rec.forward(self, w)
        if self.ties is not None:
            if rec.gradient == "straight-through":
                out = out - (out * self.ties).detach()  # read as 0, gradient path unchanged
            else:  # masked methods: a pruned entry gets no gradient, tied or not
                out = out.masked_fill(self.ties, 0.0)
        return out

    def extra_repr(self) -> str:
        extra = f", penalty={self.penalty!r}" if RECORDS[self.method].uses_penalty else ""
        return f"method={self.method!r}, rescale={self.rescale}{extra}"


def _own_class(mod: nn.Module) -> None:
    """Give ``mod`` a class of its own before its parametrization goes. The class parametrize
    generated (``ParametrizedLinear``, holding the ``weight`` property) is shared with every
    deep copy of the module, and ``remove_parametrizations`` deletes the property from it:
    squashing one copy would leave the others without a ``weight``."""
    cls = type(mod)
    mod.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))


class _Unit:
    """One unique pruned tensor: its raw parameter, the modules that use it, its parametrization.

    ``modules`` are the pruned layers holding it as ``weight``; ``readers`` are the other
    modules holding the same Parameter (a tied input embedding, say), as ``(name, module,
    attribute)``: they get the same parametrization, so every module sees one effective weight.
    """

    def __init__(self, name, param, modules, pm):
        self.name = name
        self.param = param
        self.modules = modules  # list of (name, module)
        self.readers: list[tuple[str, nn.Module, str]] = []
        self.pm = pm
        self.orders: list[list[str]] = []  # each holder's parameter order before registration
        # sigma scoring: S_l = sum of the weight's dimensions (C_out + C_in + k_h + k_w)
        self.sqrt_s = math.sqrt(sum(param.shape))
        self._mask_buf: torch.Tensor | None = None

    def scratch_mask(self) -> torch.Tensor:
        """A bool tensor shaped like the weight, reused from step to step (gmp's complement)."""
        b = self._mask_buf
        p = self.param
        if b is None or b.shape != p.shape or b.device != p.device:
            b = self._mask_buf = torch.empty(p.shape, dtype=torch.bool, device=p.device)
        return b

    def holders(self) -> list[tuple[str, nn.Module, str]]:
        return [(n, m, "weight") for n, m in self.modules] + self.readers


def _scopes(name: str) -> list[str]:
    """A layer's name and those of the modules holding it (``"a.b.c"``: ``"a.b.c"``,
    ``"a.b"``, ``"a"``): a name pattern of a container covers every layer inside it."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _matches(name: str, module: nn.Module, patterns) -> bool:
    for p in patterns:
        if isinstance(p, type):
            if isinstance(module, p):
                return True
        elif isinstance(p, str):
            if any(fnmatch.fnmatchcase(n, p) for n in _scopes(name)):
                return True
        else:
            raise ValueError(
                f"include/exclude entries must be module types or name patterns (str), got {p!r}"
            )
    return False


def _check_patterns(model: nn.Module, patterns, label: str) -> None:
    """A name pattern that matches no module is a typo that would prune (or spare) a layer
    silently: refused, with the prunable layers' names."""
    names = [n for n, _ in model.named_modules()]
    for p in patterns:
        if isinstance(p, str) and not any(fnmatch.fnmatchcase(n, p) for n in names):
            layers = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
            shown = ", ".join(map(repr, layers[:8])) + (", ..." if len(layers) > 8 else "")
            raise ValueError(
                f"{label} pattern {p!r} matches no module of the model; its prunable layers: "
                f"{shown or 'none'}"
            )


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, str | type):
        return [x]
    return list(x)


def _check_static(scope, schedule) -> None:
    """rigl's options: one global budget, at the final sparsity from step 0."""
    if scope != "global":
        raise ValueError(
            f"rigl spreads its density over layers by method_params['distribution'] "
            f"('erk' or 'uniform'); scope must stay 'global', got scope={scope!r}"
        )
    if not (isinstance(schedule, Constant) and schedule.start == 0):
        raise ValueError(
            "rigl trains at the final sparsity from step 0 (static sparse training); "
            f"schedule must be None or Constant(), got {schedule!r}"
        )


class Sparsifier:
    """Make a model's Conv and Linear weights sparse during ordinary training.

    Registers a ``torch.nn.utils.parametrize`` parametrization on the ``weight`` of every
    ``Conv{1,2,3}d`` and ``Linear`` (first and last included, as ST-3 does). The raw weights
    stay the model's parameters (same objects, so an optimizer made before or after works);
    the forward pass sees the thresholded weight. Call ``step`` after each optimizer step.

    Tied weights: a Parameter shared by several pruned layers is pruned once; any other
    module holding it (a tied input embedding, say) gets the same parametrization, so every
    reader sees one effective weight and ``squash`` changes no output. A tied layer that
    ``include``/``exclude`` leaves out is refused, naming both layers.

    Methods (all operators from ``shrinkage.thresholds``; each is one record of
    ``shrinkage.weights._methods``: scores, forward transform, gradient path):

    - ``st3``: global threshold tau = the s(t)-quantile of |w| (k-th value selection), forward
      ``gamma_c * sign(w) * max(|w| - tau, 0)`` with ST-3's per-channel rescale, straight-through
      backward (pruned raw weights keep learning). Vanderschueren & De Vleeschouwer, WACV 2023.
    - ``st3sigma``: scores ``|w| * sqrt(S_l)`` (S_l = sum of the weight's dims), global quantile
      theta, layer threshold ``theta / sqrt(S_l)``.
    - ``hard_ste``: hard threshold (prox of l0), straight-through, no rescale.
    - ``soft_nograd``: st3 without straight-through (pruned entries get zero gradient).
    - ``gmp``: gradual magnitude pruning (Zhu & Gupta 2017) with sticky masks: pruned raw
      weights are zeroed at each step and never come back, whatever the optimizer's momentum.
    - ``prox_ste``: ``prox(penalty, w, lam)`` for any penalty in
      ``PENALTIES``, lam set each step by ``lam_for_threshold`` so
      that exactly the scheduled fraction is zero; straight-through; rescale by default.
    - ``str``: STR (Kusupati et al., ICML 2020): one learned parameter s_l per layer, forward
      ``sign(w) * relu(|w| - sigmoid(s_l))``, ordinary autograd (s_l learns; pruned weights get
      no gradient); its sparsity comes from a decay of s_l towards 0, whose rate a controller
      sets so that STR's own thresholds follow the schedule (``._str``); one common shift of
      all thresholds (a projection, usually small) then makes the count exact. The s_l are
      parameters of the model: build the optimizer after the Sparsifier, or add
      ``threshold_parameters``, with no weight decay of its own.
    - ``rigl``: RigL (Evci et al., ICML 2020): static sparsity from step 0 on a random mask
      (per-layer densities ERK or uniform), every ``update_every`` steps until ``update_end``
      each layer drops ``floor(f(t) * n_active)`` active weights of smallest magnitude and
      grows as many of largest dense-gradient magnitude (new ones start at 0), ``f(t) =
      drop_fraction / 2 * (1 + cos(pi t / update_end))``. The dense gradient dL/dw_hat is kept
      only in the backward pass before an update step (averaged over DDP ranks); between
      updates inactive weights get no gradient and are held at exactly 0.

    Parameters
    ----------
    model : torch.nn.Module
        The model to sparsify (modified in place).
    sparsity : float
        Final fraction of pruned weights, in [0, 1).
    method : str, default "st3"
        One of ``METHODS`` (above).
    schedule : Schedule or callable, optional
        ``Cubic``, ``Linear``, ``Constant`` (default: ``Constant()``, the
        final sparsity at once) or a callable ``step -> sparsity``; its values must lie in
        [0, 1).
    scope : {"global", "layer"}, default "global"
        ``"global"``: one threshold over all pruned weights; ``"layer"``: each layer at the
        scheduled sparsity. rigl takes ``"global"`` only: exactly floor(s N) weights pruned
        in all, spread over layers by ``method_params["distribution"]``.
    include, exclude : type, str or iterable of them, optional
        Module types or ``fnmatch`` name patterns (``"features.*"``): only the matching
        layers are pruned (include), the matching layers are left dense (exclude). A name
        pattern matches a layer or a module holding it (``"head"`` covers ``head.0`` and
        ``head.2``); a type matches the layers themselves and must be prunable
        (``PRUNABLE``).
    penalty : str, optional
        The prox_ste operator, one of ``PENALTIES`` (default
        l1). Refused with another method (where it would be ignored).
    penalty_params : dict, optional
        Its parameters (``a`` for cel0, ``gamma`` for mcp / scad); the prox step is 1, so
        they must suit step 1. Refused with another method.
    rescale : bool, optional
        ST-3's per-channel rescale on/off (default: on for st3, st3sigma, soft_nograd and
        prox_ste, off for hard_ste and str; gmp and rigl have none to turn on).
    method_params : dict, optional
        Options of ``str`` and ``rigl`` (refused with another method):

        - str: ``s_init`` (-8.0, the initial s_l), ``control`` (True: a controller sets the
          decay rate of s_l at every step; False keeps it fixed, STR's own rule, and leaves
          the target to the projection alone), ``decay`` (0.0, that fixed rate per step in
          [0, 1); only with ``control=False``, refused otherwise);
        - rigl: ``update_end`` (required: the step from which the mask is frozen; RigL uses
          75 % of training), ``update_every`` (100), ``drop_fraction`` (0.3),
          ``distribution`` (``"erk"`` or ``"uniform"``), ``init`` (``"dense"``: the model's
          weights masked, as the paper; ``"sparse"``: each unit's kept weights multiplied by
          sqrt(fan_in / kept fan_in) when the mask is drawn, Evci et al. 2022, so that very
          sparse layers start at the dense signal scale), ``seed`` (0, the initial random
          mask; the same on every DDP rank).
    min_density : float, default 0.0
        A floor in [0, 1): every pruned tensor keeps at least this fraction of its
        weights (at least one when > 0), its largest scores, whatever the global threshold
        (the total sparsity then ends a little below the target). A layer pruned to density
        0 disconnects the network: it is warned about (``PrunedLayerWarning``, once
        per layer) and listed by ``empty_layers``.

    Attributes
    ----------
    model : torch.nn.Module
        The model, parametrized until ``squash``.
    sparsity, method, scope, schedule, min_density
        As given (``schedule`` is ``Constant()`` when None was given).
    penalty : str
        The prox operator, ``"l1"`` when None was given.
    penalty_params : dict
        As given (``{}`` when None).
    rescale : bool
        As given, or the method's default.
    current_sparsity : float
        The target sparsity now in force: the schedule at ``step_count``.
    step_count : int
        Number of ``step`` calls so far (property).
    layer_names : list of str
        The pruned layers, one name per unique weight tensor (property).
    empty_layers : list of str
        Layers with no weight left after the last step.

    Raises
    ------
    ValueError
        ``model`` is not a module; ``sparsity`` or ``min_density`` is not in [0, 1), or
        ``min_density > 1 - sparsity`` (a floor that makes the target unreachable); an
        unknown ``method``, ``scope`` or ``penalty``; ``schedule`` is not callable or its
        value at step 0 is not in [0, 1); ``penalty`` or ``penalty_params`` given with a
        method other than prox_ste, or parameters the penalty does not take or that do
        not suit step 1 (mcp needs ``gamma > 1``); an ``include`` type that is not
        prunable, an include / exclude entry that is neither a type nor a str; no prunable
        layer left; a layer whose weight is already parametrized (sparsified twice); a
        weight that is not a floating-point Parameter; a tied weight whose other layer is
        left out, or read through another parametrization; a weight holding NaN or inf.

    Warns
    -----
    PrunedLayerWarning
        A layer is pruned to density 0 (once per layer, here or at ``step``).

    Notes
    -----
    Exactly ``floor(s * n)`` weights are pruned at each step, ties at the threshold included
    (broken by position: the first tied entries go), so all-equal weights at 0.5 end half
    pruned, not all. rigl needs the schedule ``Constant()`` (static sparsity is the method).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    >>> sp = Sparsifier(model, sparsity=0.5)
    >>> round(sp.density(), 3)
    0.5

    Gradual magnitude pruning, each layer on its own, over three steps of a training loop
    (an SGD step by hand), then the plain model:

    >>> from shrinkage.weights import Linear
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    >>> sp = Sparsifier(
    ...     model, 0.75, method="gmp", schedule=Linear(start=0, end=3), scope="layer"
    ... )
    >>> for _ in range(3):
    ...     model.zero_grad()
    ...     model(torch.randn(4, 8)).square().sum().backward()
    ...     with torch.no_grad():
    ...         for p in model.parameters():
    ...             p -= 0.1 * p.grad
    ...     s = sp.step()
    >>> s, sp.density()  # 48 of 64 and 12 of 16 weights pruned
    (0.75, 0.25)
    >>> {name: int(m.sum()) for name, m in sp.masks().items()}
    {'0': 16, '1': 4}
    >>> plain = sp.squash()
    >>> type(plain[0].weight).__name__, sorted(plain.state_dict())
    ('Parameter', ['0.bias', '0.weight', '1.bias', '1.weight'])
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        method: str = "st3",
        schedule: Schedule | Callable[[int], float] | None = None,
        scope: str = "global",
        include: Iterable | None = None,
        exclude: Iterable | None = None,
        penalty: str | None = None,
        penalty_params: dict | None = None,
        rescale: bool | None = None,
        min_density: float = 0.0,
        method_params: dict | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.sparsity = check_open_unit("sparsity", sparsity, closed_low=True)
        self.method = check_choice("method", method, METHODS)
        self.scope = check_choice("scope", scope, ("global", "layer"))
        if schedule is None:
            schedule = Constant()
        check_schedule(schedule)
        self.schedule = schedule
        self._m = RECORDS[method]
        self._set_penalty(penalty, penalty_params)
        if rescale is not None:
            if type(rescale).__name__ not in ("bool", "bool_"):  # Python's or numpy's
                # "no" from a config file was read as True
                raise ValueError(f"rescale must be True, False or None, got rescale={rescale!r}")
            rescale = bool(rescale)
        if rescale and not self._m.rescale_applies:
            raise ValueError(
                f"rescale=True does not apply to method={method!r} (its forward weight is "
                "w * mask, there is no threshold to compensate); leave rescale unset"
            )
        self.rescale = self._m.rescale if rescale is None else rescale
        self.method_params = self._method_params(method_params)
        if self._m.dynamic:
            _check_static(scope, schedule)
        self.min_density = check_open_unit("min_density", min_density, closed_low=True)
        check_floor(self.min_density, self.sparsity)
        evaluate(schedule, 0, self.sparsity)  # a schedule that is broken at step 0 fails now
        self._warned_empty: set[str] = set()
        self.empty_layers: list[str] = []
        # str: the decay controller's state (ln d units) and the decay rate of the next step
        self._decay = self.method_params.get("decay", 0.0)
        self.learned_sparsity: float | None = None  # str: the sparsity of its own thresholds
        self._s_after: list[torch.Tensor] | None = None  # str: s as step() left it
        self._frozen_checked = False  # str: the optimizer holds s (checked until it moves)
        self._frozen_steps = 0

        self.model = model
        self._step = 0
        self._squashed = False
        self.units = self._collect(model, _as_list(include), _as_list(exclude))
        self._check_finite([u.param.detach() for u in self.units])
        self._check_penalty_dtypes()
        for u in self.units:
            for _, mod, attr in u.holders():
                u.orders.append(list(mod._parameters))
                parametrize.register_parametrization(mod, attr, u.pm)
        if self._m.dynamic:
            self._rigl_init(min_density)
        self._apply()

    def _set_penalty(self, penalty, penalty_params) -> None:
        """prox_ste's penalty (default l1) and its parameters, checked; refused elsewhere."""
        if penalty is not None and not self._m.uses_penalty:
            raise ValueError(
                f"penalty only applies to method='prox_ste' (it would be ignored), got "
                f"penalty={penalty!r} with method={self.method!r}"
            )
        self.penalty = check_choice("penalty", "l1" if penalty is None else penalty, PENALTIES)
        if penalty_params is not None and not isinstance(penalty_params, dict):
            raise ValueError(
                f"penalty_params must be a dict of the penalty's parameters, got {penalty_params!r}"
            )
        self.penalty_params = dict(penalty_params or {})
        if self._m.uses_penalty:
            # validates the penalty parameters before any work
            try:
                lam_for_threshold(self.penalty, 1.0, step=1.0, **self.penalty_params)
            except (TypeError, RuntimeError) as e:
                raise ValueError(f"penalty_params {self.penalty_params!r}: {e}") from None
        elif self.penalty_params:
            raise ValueError(
                f"penalty_params only apply to method='prox_ste', got method={self.method!r}"
            )

    def _check_penalty_dtypes(self) -> None:
        """prox_ste's penalty parameters in the weights' own dtypes (scad's gamma = inf
        overflows float32: NaN weights, not an error, at the first forward pass)."""
        if not self._m.uses_penalty:
            return
        for dtype in {u.param.dtype for u in self.units}:
            # every branch of the thresholds: below, between and far above lam
            probe = torch.tensor([0.5, 1.5, 3.0, 30.0, 3e4], dtype=dtype)
            try:
                prox(self.penalty, probe, 1.0, step=1.0, **self.penalty_params)
            except (TypeError, RuntimeError, ValueError) as e:
                raise ValueError(
                    f"penalty={self.penalty!r}, penalty_params={self.penalty_params!r} on the "
                    f"{dtype} weights: {e}"
                ) from None

    def _method_params(self, given) -> dict:
        defaults = self._m.params
        if given is not None and not isinstance(given, dict):
            raise ValueError(
                f"method_params must be a dict of options or None, got {type(given).__name__} "
                f"{given!r}"
            )
        given = dict(given or {})
        if given and not defaults:
            with_params = ", ".join(repr(k) for k, r in RECORDS.items() if r.params)
            raise ValueError(
                f"method_params only apply to methods {with_params}, got method={self.method!r}"
            )
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ValueError(
                f"unknown method_params {', '.join(map(repr, unknown))} for method "
                f"{self.method!r}; known: {', '.join(map(repr, defaults))}"
            )
        return self._m.check_params({**defaults, **given}) if defaults else {}

    # -- selection ---------------------------------------------------------------------
    def _collect(self, model, include, exclude) -> list[_Unit]:
        for label, given in (("include", include), ("exclude", exclude)):
            for p in given:
                if isinstance(p, type) and not issubclass(p, PRUNABLE):
                    raise ValueError(
                        f"{label} type {p.__name__} is not prunable (a type matches the layers "
                        "themselves, not the modules holding them); allowed: "
                        + ", ".join(t.__name__ for t in PRUNABLE)
                        + f"; to {label} the layers inside a container, give its name"
                    )
        _check_patterns(model, include, "include")
        _check_patterns(model, exclude, "exclude")
        groups: dict[int, list] = {}
        order: list[int] = []
        for name, mod in model.named_modules():
            if not isinstance(mod, PRUNABLE):
                continue
            if include and not _matches(name, mod, include):
                continue
            if exclude and _matches(name, mod, exclude):
                continue
            if parametrize.is_parametrized(mod, "weight"):
                raise ValueError(
                    f"layer {name!r} already has a parametrization on its weight "
                    "(sparsified twice?); squash() the first Sparsifier or use a fresh model"
                )
            w = mod.weight
            if not isinstance(w, nn.Parameter) or not w.is_floating_point():
                raise ValueError(f"layer {name!r} has no floating-point weight Parameter")
            if w.device.type == "meta":
                raise ValueError(
                    f"layer {name!r} is on the 'meta' device: its weights hold no values to "
                    "threshold; materialise the model first (to_empty + init, or load_state_dict)"
                )
            if w.numel() == 0:
                continue  # no weight to prune (a layer with a zero-size dimension)
            key = id(w)
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append((name, mod))
        if not order:
            raise ValueError(
                "model has no prunable layer (Conv1d/2d/3d or Linear) left after include="
                f"{include!r}, exclude={exclude!r}"
            )
        units = []
        for key in order:
            mods = groups[key]
            w = mods[0][1].weight
            pm = SparseWeight(
                w,
                self.method,
                self.rescale,
                self.penalty,
                self.penalty_params,
                self.method_params.get("s_init"),
            )
            units.append(_Unit(mods[0][0], w, mods, pm))
        self._find_readers(model, units, exclude)
        return units

    @staticmethod
    def _find_readers(model: nn.Module, units: list[_Unit], exclude=()) -> None:
        """Every other module holding a pruned Parameter reads it through the same
        parametrization (a tied input embedding then sees the thresholded weight, as the
        output layer does, and squash() changes no output); a module that cannot, or that
        ``exclude`` names, is refused."""
        by_id = {id(u.param): u for u in units}
        for name, mod in model.named_modules():
            for attr, p in mod._parameters.items():
                u = by_id.get(id(p)) if p is not None else None
                if u is None or any(m is mod for _, m in u.modules):
                    continue
                if isinstance(mod, PRUNABLE) and attr == "weight":
                    raise ValueError(
                        f"layer {name!r} shares its weight with pruned layer {u.name!r} but "
                        f"include/exclude leave {name!r} out: a tied weight is pruned for all "
                        f"its layers or none; exclude both ({u.name!r} and {name!r}) or neither"
                    )
                if exclude and _matches(name, mod, exclude):
                    raise ValueError(
                        f"exclude names {name!r}, but it shares its {attr!r} with pruned layer "
                        f"{u.name!r} and would read it pruned; a tied weight is pruned for all "
                        f"its modules or none: exclude {u.name!r} too, or neither"
                    )
                if parametrize.is_parametrized(mod, attr) or attr == "original":
                    raise ValueError(
                        f"module {name!r} reads the weight of pruned layer {u.name!r} through "
                        f"its own parametrization of {attr!r}; the two cannot see one effective "
                        f"weight. Leave the layer dense with exclude=[{u.name!r}]"
                    )
                u.readers.append((name, mod, attr))

    # -- thresholds --------------------------------------------------------------------
    def _check_finite(self, tensors) -> None:
        for u, w in zip(self.units, tensors):
            if not bool(torch.isfinite(w).all()):
                raise ValueError(
                    f"weight of layer {u.name!r} contains NaN or inf; the threshold is undefined "
                    "(check the learning rate / loss)"
                )

    def _scores(self, u: _Unit) -> torch.Tensor:
        return self._m.scores(u, u.param.detach().abs())

    def _score_buffer(self) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
        """(flat, views): every unit's scores written into one buffer kept from step to step
        (one extra copy of the pruned weights; no allocation, no concatenation per step),
        or None when the weights do not share a dtype and device or the method has no such
        scores (then fresh tensors)."""
        params = [u.param for u in self.units]
        like = params[0]
        if self._m.scores_into is None:
            return None
        if any(p.dtype != like.dtype or p.device != like.device for p in params):
            return None
        buf = getattr(self, "_flat", None)
        total = sum(p.numel() for p in params)
        if (
            buf is None
            or buf.numel() != total
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = self._flat = torch.empty(total, dtype=like.dtype, device=like.device)
        views, start = [], 0
        for u, p in zip(self.units, params):
            v = buf[start : start + p.numel()].view(p.shape)
            self._m.scores_into(u, p.detach(), v)
            views.append(v)
            start += p.numel()
        return buf, views

    def _searches(self, n: int) -> list[KthSearch]:
        """The threshold searches (one per threshold), kept between steps: each starts from
        its previous answer (a hint for speed; the threshold is exact whatever it is)."""
        found = getattr(self, "_search_list", None)
        if found is None or len(found) != n:
            found = self._search_list = [KthSearch() for _ in range(n)]
        return found

    @torch.no_grad()
    def _apply(self) -> None:
        s = evaluate(self.schedule, self._step, self.sparsity)
        self.current_sparsity = s
        m = self._m
        if m.dynamic:
            self._check_finite([u.param.detach() for u in self.units])
            self._rigl_step()
            return
        found = self._thresholds_compiled(s) if self._compiled_ready() else None
        if found is None:
            found = self._thresholds(s)
        thetas, tie_list, scores, kept_any = found
        for i, (u, theta, ties) in enumerate(zip(self.units, thetas, tie_list)):
            sc = None if scores is None else scores[i]
            m.update(u, m.to_tau(theta, u), sc)
            if ties is not None:
                ties = ties.reshape(u.param.shape)
                if m.sticky:  # gmp: the tied entries leave the mask for good
                    u.pm.mask &= ~ties
                    u.param.masked_fill_(ties, 0.0)
                    ties = None
            u.pm.ties = ties
        self._note_empty(kept_any)
        if m.learned:
            self._control(scores, s)

    def _thresholds(self, s):
        """(thetas, ties, scores, kept_any) with torch operations: any device and dtype."""
        m = self._m
        packed = self._score_buffer()
        if packed is None:
            scores = [self._scores(u) for u in self.units]
            flat = None
        else:
            flat, scores = packed
        empty = m.empty  # below every score of a kept weight
        if self.scope == "global":
            if flat is None:
                flat = torch.cat([x.reshape(-1) for x in scores])
            # one reduction instead of an elementwise check; NaN/inf propagate into the sum
            if not bool(torch.isfinite(flat.sum())):
                self._check_finite(scores)
            search = self._searches(1)[0]
            theta, ties = exact_threshold(flat, n_pruned(s, flat.numel()), empty, search)
            thetas = [theta] * len(scores)
            tie_list = _split(ties, scores)
        else:
            self._check_finite(scores)
            searches = self._searches(len(scores))
            pairs = [
                exact_threshold(x.reshape(-1), n_pruned(s, x.numel()), empty, se)
                for x, se in zip(scores, searches)
            ]
            thetas, tie_list = [p[0] for p in pairs], [p[1] for p in pairs]
        if self.min_density > 0:
            thetas, tie_list = self._floor(scores, thetas, tie_list, empty)
        kept_any = []
        for x, theta, ties in zip(scores, thetas, tie_list):
            if ties is None:  # something is kept iff the largest score is above theta
                kept_any.append(x.numel() > 0 and bool(x.amax() > theta))
            else:
                kept_any.append(bool(((x > theta) & ~ties.reshape(x.shape)).any()))
        return thetas, tie_list, scores, kept_any

    def _compiled_ready(self) -> bool:
        """Whether the compiled step applies: a method with compiled scores, no floor, every
        weight a CPU float32/float64 contiguous tensor of one dtype, the kernels built."""
        if self._m.compiled_scores is None or self.min_density > 0:
            return False
        dtype = self.units[0].param.dtype
        for u in self.units:
            p = u.param
            if p.dtype != dtype or not _prune.usable(p):
                return False
            if u.pm.mask is not None and not u.pm.mask.is_contiguous():
                return False
        return True

    def _thresholds_compiled(self, s):
        """The same thresholds in one C pass over the weights (scores made on the fly, no
        buffer), from the previous step's threshold, ties broken by ``exact_threshold``;
        None sends the step to ``_thresholds`` (a non-finite weight, to be named)."""
        m = self._m
        kind = m.compiled_scores
        units = self.units
        scales = [u.sqrt_s if kind == "sigma" else 1.0 for u in units]
        masks = [u.pm.mask if kind == "unpruned" else None for u in units]
        empty = m.empty
        groups = (
            [list(range(len(units)))]
            if self.scope == "global"
            else [[i] for i in range(len(units))]
        )
        searches = self._searches(len(groups))
        thetas: list = [None] * len(units)
        ties: list = [None] * len(units)
        kept_any: list = [None] * len(units)
        like = units[0].param
        try:
            for group, search in zip(groups, searches):
                src = _prune.WeightScores(
                    [units[i].param for i in group],
                    [scales[i] for i in group],
                    [masks[i] for i in group],
                )
                k = n_pruned(s, src.numel)
                if k <= 0:
                    src.scan([], math.inf, math.inf, math.nan, False, _EMPTY_BUF[like.dtype])
                    theta = torch.full((), empty, dtype=like.dtype, device=like.device)
                else:
                    theta, n_le = search(src, k)
                if k > 0 and n_le != k:
                    # ties straddle the k-th score (about one step in a hundred at 266k
                    # float32 weights): exact_threshold's tie-break, on the k-th score found
                    flat = src.materialize()
                    known = lambda f, kk, found=(theta, n_le): found  # noqa: E731
                    theta, tie_mask = exact_threshold(flat, k, empty, known)
                    parts = flat.split([units[i].param.numel() for i in group])
                    for i, x, t in zip(group, parts, _split(tie_mask, parts)):
                        thetas[i], ties[i] = theta, t
                        keep = x > theta if t is None else (x > theta) & ~t
                        kept_any[i] = bool(keep.any())
                    continue
                for i, sm in zip(group, src.smax):
                    thetas[i], kept_any[i] = theta, sm > float(theta)
        except _prune.NonFiniteScores:
            return None  # _thresholds names the layer
        return thetas, ties, None, kept_any

    # -- str: the decay of the learned thresholds and its controller -------------------------
    def _control(self, margins, s: float) -> None:
        """The sparsity of STR's own thresholds (margin <= 0 pruned), and the decay rate of
        the next step (``decay_rate``)."""
        n = sum(x.numel() for x in margins)
        self.learned_sparsity = 1.0 - sum(int((x > 0).sum()) for x in margins) / n
        if self.method_params["control"]:
            self._decay = decay_rate(
                [float(u.pm.s) for u in self.units],
                [float(u.pm.tau) for u in self.units],
                [x.numel() for x in margins],
            )

    @torch.no_grad()
    def _decay_thresholds(self) -> None:
        """s_l <- (1 - d) s_l: decoupled weight decay, towards 0, i.e. a higher threshold."""
        params = self.threshold_parameters()
        if self._s_after is not None and not self._frozen_checked:
            # One update can be below float resolution (a small lr times sigmoid'(s) at s=-8,
            # the end of a cosine schedule), so the check waits for FROZEN_STEPS steps with
            # gradients and no move at all, and stops at the first move.
            moved = any(not torch.equal(p, q) for p, q in zip(params, self._s_after))
            learning = any(p.grad is not None and bool((p.grad != 0).any()) for p in params)
            if moved:
                self._frozen_checked = True
            elif learning:
                self._frozen_steps += 1
                if self._frozen_steps >= FROZEN_STEPS:
                    self._frozen_checked = True
                    warnings.warn(
                        f"str's thresholds got gradients for {FROZEN_STEPS} steps but the "
                        "optimizer never moved them: build the optimizer after the Sparsifier, "
                        "or add sp.threshold_parameters() to it (with weight_decay=0)",
                        UserWarning,
                        stacklevel=4,
                    )
        for p in params:
            p.mul_(1.0 - self._decay)
        self._s_after = [p.detach().clone() for p in params]

    def threshold_parameters(self) -> list[nn.Parameter]:
        """The Sparsifier's own learned parameters: STR's s_l, one per pruned tensor (they
        live in the model, so ``model.parameters()`` lists them too); empty for the other
        methods. Give them to the optimizer without weight decay: their decay is the
        Sparsifier's (see ``shrinkage.weights._str``)."""
        return [u.pm.s for u in self.units] if self._m.learned else []

    # -- rigl: a random mask at the layer densities, then drop / grow -------------------------
    @torch.no_grad()
    def _rigl_init(self, min_density: float) -> None:
        p = self.method_params
        shapes = [tuple(u.param.shape) for u in self.units]
        counts = layer_counts(shapes, self.sparsity, p["distribution"])
        if min_density > 0:
            counts = [
                max(c, math.ceil(min_density * u.param.numel() - 1e-9))
                for c, u in zip(counts, self.units)
            ]
        gen = torch.Generator().manual_seed(p["seed"])  # CPU: the same mask on every device
        for u, c in zip(self.units, counts):
            u.n_keep = c
            keep = torch.randperm(u.param.numel(), generator=gen)[:c].to(u.param.device)
            mask = torch.zeros(u.param.numel(), dtype=torch.bool, device=u.param.device)
            mask[keep] = True
            u.pm.mask.copy_(mask.reshape(u.param.shape))
            if p["init"] == "sparse" and u.param.dim() >= 2:
                with torch.no_grad():
                    u.param.mul_(sparse_init_scale(u.pm.mask).to(u.param.dtype))

    def _rigl_update_at(self, step: int) -> bool:
        p = self.method_params
        return step > 0 and step % p["update_every"] == 0 and step < p["update_end"]

    def _rigl_step(self) -> None:
        """At an update step, drop / grow every layer that has room (a dense layer has none);
        at every step hold inactive raw weights at 0 (the optimizer's momentum may move
        them), and arm the gradient capture if the next step updates."""
        p = self.method_params
        update = self._rigl_update_at(self._step)
        if update:
            missing = [u.name for u in self.units if u.pm.dense_grad is None]
            if missing:
                raise RuntimeError(
                    f"rigl updates its mask at step {self._step} from the dense gradient, but "
                    f"layer(s) {', '.join(map(repr, missing))} got none: call loss.backward() "
                    "(and opt.step()) before every sp.step()"
                )
            grads = _mean_over_ranks([u.pm.dense_grad for u in self.units])
            frac = drop_fraction(self._step, p["drop_fraction"], p["update_end"])
            for u, g in zip(self.units, grads):
                if u.n_keep < u.param.numel():
                    drop_grow(u.param, u.pm.mask, g, math.floor(frac * u.n_keep))
        for u in self.units:
            u.param.masked_fill_(~u.pm.mask, 0.0)
            u.pm.dense_grad = None
            u.pm.capture = self._rigl_update_at(self._step + 1)
        self._warn_empty([bool(u.pm.mask.any()) for u in self.units])

    def _floor(self, scores, thetas, tie_list, empty):
        """Per-layer thresholds lowered so that each layer keeps ``min_density``."""
        out_t, out_ties = [], []
        for x, theta, ties in zip(scores, thetas, tie_list):
            flat = x.reshape(-1)
            most = flat.numel() - math.ceil(self.min_density * flat.numel() - 1e-9)
            pruned = int((flat <= theta).sum()) + (0 if ties is None else int(ties.sum()))
            if pruned > most:
                theta, ties = exact_threshold(flat, most, empty)
            out_t.append(theta)
            out_ties.append(ties)
        return out_t, out_ties

    def _note_empty(self, kept_any: list[bool]) -> None:
        """Layers with no weight left (a disconnected network): listed, warned once each."""
        self._warn_empty(kept_any)

    def _warn_empty(self, alive: list[bool]) -> None:
        empty = [u.name for u, a in zip(self.units, alive) if not a]
        self.empty_layers = empty
        new = [n for n in empty if n not in self._warned_empty]
        if new:
            self._warned_empty.update(new)
            warnings.warn(
                f"layer(s) {', '.join(map(repr, new))} pruned to density 0 at step "
                f"{self._step} (sparsity {self.current_sparsity:g}): the network is "
                "disconnected; pass min_density (e.g. 0.01) to keep a floor per layer",
                PrunedLayerWarning,
                stacklevel=6,  # _warn_empty, _note_empty*, _apply, no_grad, step / __init__
            )

    def step(self) -> float:
        """Advance one optimizer step: recompute thresholds (and gmp masks) at s(step).

        Call it after each ``optimizer.step()``. The step counter goes up by one and the
        threshold is recomputed from the raw weights at the schedule's sparsity for it
        (exactly ``floor(s * n)`` weights pruned, see the class Notes).

        Returns
        -------
        float
            The target sparsity now in force (``current_sparsity``).

        Raises
        ------
        RuntimeError
            The Sparsifier was squashed (its model is plain and dense now).
        ValueError
            A weight holds NaN or inf (the threshold is undefined), or the schedule
            returns a sparsity outside [0, 1).

        Warns
        -----
        PrunedLayerWarning
            A layer falls to density 0 for the first time.

        Examples
        --------
        >>> import torch
        >>> from shrinkage.weights import Linear
        >>> model = torch.nn.Sequential(torch.nn.Linear(10, 10))
        >>> sp = Sparsifier(model, 0.8, schedule=Linear(start=0, end=4))
        >>> [round(sp.step(), 6) for _ in range(5)]
        [0.2, 0.4, 0.6, 0.8, 0.8]
        >>> sp.step_count, round(sp.density(), 6)
        (5, 0.2)
        """
        if self._squashed:
            raise RuntimeError("this Sparsifier was squashed; its model is a plain dense model now")
        self._step += 1
        if self._m.learned:
            self._decay_thresholds()
        self._apply()
        return self.current_sparsity

    @property
    def step_count(self) -> int:
        """Number of ``step`` calls so far (the schedule's t)."""
        return self._step

    # -- inspection --------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return [u.name for u in self.units]

    @torch.no_grad()
    def effective_weights(self) -> dict[str, torch.Tensor]:
        """Layer name -> the weight the forward pass sees (one entry per unique tensor).

        Returns
        -------
        dict of str to torch.Tensor
            Detached copies, in ``layer_names`` order.
        """
        return {u.name: u.modules[0][1].weight.detach().clone() for u in self.units}

    def masks(self) -> dict[str, torch.Tensor]:
        """Layer name -> bool mask of the nonzero entries of the effective weight.

        Returns
        -------
        dict of str to torch.Tensor
            Bool tensors of the weights' shapes, in ``layer_names`` order.
        """
        return {k: v != 0 for k, v in self.effective_weights().items()}

    def density(self) -> float:
        """Fraction of nonzero effective weights over all pruned tensors (each counted once).

        Returns
        -------
        float
            ``nonzero / total`` over the pruned tensors (layers left out by include /
            exclude do not count), about ``1 - current_sparsity``.

        Examples
        --------
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 5))
        >>> sp = Sparsifier(model, 0.9, exclude=["1"])
        >>> sp.layer_names, sp.density()
        (['0'], 0.1)
        """
        eff = self.effective_weights().values()
        nz = sum(int(torch.count_nonzero(w)) for w in eff)
        return nz / sum(w.numel() for w in eff)

    def report(self, input_shape):
        """Per-layer shape, density, dense and sparse MACs, totals (see ``flops``).

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one input, batch dimension included (entries >= 1).

        Returns
        -------
        FlopsReport
            Every Conv / Linear layer of the model; the ones this Sparsifier prunes are
            marked ``pruned``, the others ``(dense)`` in the table.

        Raises
        ------
        ValueError
            ``input_shape`` is empty, has an entry < 1, or is not a shape the model can run.

        Examples
        --------
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 5))
        >>> rep = Sparsifier(model, 0.9, exclude=["1"]).report((1, 10))
        >>> rep.dense_macs, rep.sparse_macs, [r["pruned"] for r in rep.layers]
        (150, 60.0, [True, False])
        """
        return flops(self.model, input_shape, pruned=self.layer_names)

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Step counter, configuration and per-layer thresholds / masks (plain tensors).

        Save it beside the model's and optimizer's state to resume a run; the schedule
        itself is not saved (it is a pure function of the step), only its values at a few
        steps, which ``load_state_dict`` compares.

        Returns
        -------
        dict
            ``step``, ``sparsity``, ``min_density``, ``method``, ``scope``, ``penalty``,
            ``penalty_params``, ``rescale``, ``layers`` (names), ``schedule_at`` (the target
            sparsity at steps 0, 1, 2, 3, 4, 6, ... 2^31, compared on load), and per layer,
            in that order: ``tau``, ``lam`` (0-d tensors), ``mask`` (bool tensor or None),
            ``ties`` (bool tensor or None).

        Examples
        --------
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4))
        >>> sp = Sparsifier(model, 0.5)
        >>> sp.step()
        0.5
        >>> state = sp.state_dict()
        >>> state["step"], state["method"], state["layers"], state["tau"][0].shape
        (1, 'st3', ['0'], torch.Size([]))
        """
        return {
            "step": self._step,
            "sparsity": self.sparsity,
            "min_density": self.min_density,
            "method": self.method,
            "scope": self.scope,
            "penalty": self.penalty,
            "penalty_params": _plain(self.penalty_params),
            "rescale": self.rescale,
            "layers": self.layer_names,
            "shapes": [list(u.param.shape) for u in self.units],
            "tau": [u.pm.tau.detach().clone() for u in self.units],
            "lam": [u.pm.lam.detach().clone() for u in self.units],
            "mask": [None if u.pm.mask is None else u.pm.mask.clone() for u in self.units],
            "ties": [None if u.pm.ties is None else u.pm.ties.clone() for u in self.units],
            "schedule_at": {"steps": list(SCHEDULE_PROBES), "values": self._schedule_values()},
            **self._extra_state(),
        }

    def _schedule_values(self, steps=SCHEDULE_PROBES) -> list:
        """The target sparsity at each step, None where the schedule fails there (a table
        that ends, say): what a saved state compares on load."""
        out = []
        for t in steps:
            try:
                out.append(evaluate(self.schedule, t, self.sparsity))
            except Exception:  # a user's schedule may fail past its end: recorded as such
                out.append(None)
        return out

    def _check_schedule_record(self, rec) -> None:
        """A state's ``schedule_at`` against this Sparsifier's schedule: the first step where
        they differ is named."""
        ok = isinstance(rec, dict) and isinstance(rec.get("steps"), list | tuple)
        steps = rec.get("steps") if ok else None
        values = rec.get("values") if ok else None
        if not (
            ok
            and isinstance(values, list | tuple)
            and len(values) == len(steps)
            and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in steps)
            and all(
                v is None or (isinstance(v, float | int) and not isinstance(v, bool))
                for v in values
            )
        ):
            raise ValueError(
                "sparsifier state 'schedule_at' must be {'steps': [int, ...], 'values': "
                f"[float or None, ...]}} of one length, got {rec!r}"
            )
        for t, v, mine in zip(steps, values, self._schedule_values(list(steps))):
            if (v is None) != (mine is None) or (v is not None and not abs(v - mine) <= 1e-9):
                raise ValueError(
                    f"sparsifier state was saved under a schedule at sparsity {v!r} at step "
                    f"{t}, this Sparsifier's schedule gives {mine!r} there: another schedule "
                    "(or, for a default one, another number of training steps); "
                    "load_state_dict(state, strict=False) loads it anyway"
                )

    def _extra_state(self) -> dict:
        """What str and rigl add (nothing for the other methods, whose states stay as they
        were): the method's options, STR's thresholds and its controller."""
        if not self.method_params:
            return {}
        extra: dict = {"method_params": dict(self.method_params)}
        if self._m.learned:
            extra["s"] = [p.detach().clone() for p in self.threshold_parameters()]
            # the projection's shift, a buffer of the model's parametrization: a state saved
            # without the parametrizations' keys (the Lightning callback's plain checkpoints)
            # restores it from here
            extra["shift"] = [u.pm.shift.detach().clone() for u in self.units]
            extra["controller"] = {"decay": self._decay}
        return extra

    def _check_layer_state(self, state: dict) -> dict:
        """The per-layer lists of a saved state (tau, lam, mask, ties), checked against the
        layers of this Sparsifier before anything is loaded."""
        n = len(self.units)
        lists = {k: state.get(k) for k in ("tau", "lam", "mask")}
        lists["ties"] = state.get("ties", [None] * n)
        for key, values in lists.items():
            if not isinstance(values, list | tuple) or len(values) != n:
                got = len(values) if isinstance(values, list | tuple) else type(values).__name__
                raise ValueError(f"sparsifier state {key!r} must hold {n} entries, got {got}")
        shapes = state.get("shapes")  # absent from states saved before it was recorded
        if shapes is not None and [list(x) for x in shapes] != [
            list(u.param.shape) for u in self.units
        ]:
            have = [tuple(u.param.shape) for u in self.units]
            raise ValueError(
                f"sparsifier state of weights shaped {[tuple(x) for x in shapes]}, this "
                f"Sparsifier's are {have}: a state of another model"
            )
        for u, tau, lam, mask, ties in zip(self.units, *lists.values()):
            for key, t in (("tau", tau), ("lam", lam)):
                if (
                    not isinstance(t, torch.Tensor)
                    or not t.is_floating_point()
                    or t.numel() != 1
                    or not bool(torch.isfinite(t))
                    or bool(t < 0)
                ):
                    raise ValueError(
                        f"sparsifier state {key} of layer {u.name!r} must be one finite "
                        f"floating-point number >= 0, got {t!r}"
                    )
            for key, t, need in (("mask", mask, u.pm.mask is not None), ("ties", ties, False)):
                if t is None and not need:
                    continue
                if (
                    not isinstance(t, torch.Tensor)
                    or t.dtype != torch.bool
                    or t.shape != u.param.shape
                ):
                    raise ValueError(
                        f"sparsifier state {key} of layer {u.name!r} must be a bool tensor of "
                        f"shape {tuple(u.param.shape)}, got {getattr(t, 'shape', t)!r}"
                    )
        return lists

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Restore a ``state_dict``.

        Its configuration (method, scope, penalty and its parameters, rescale, layers,
        sparsity, min_density) must be
        this Sparsifier's and every entry well formed (one finite threshold per layer,
        masks of the weights' shapes): ValueError otherwise, and nothing is changed. The
        step counter and the current sparsity follow the state; load the model's weights
        as well (this restores the thresholds, not the weights).

        Parameters
        ----------
        state : dict
            A ``state_dict`` (a state saved before ``min_density`` existed counts as
            ``min_density=0``, one without ``ties`` as no ties).
        strict : bool, default True
            Also compare the schedule: the state records the target sparsity at steps 0, 1,
            2, 3, 4, 6, 8, ... 2^31, and this Sparsifier's schedule must give the same values
            there (a resume under another schedule, or the default cubic of a run with
            another number of steps, would otherwise go on silently). False loads a state
            under a schedule changed on purpose.

        Raises
        ------
        ValueError
            ``state`` is not a dict; its configuration differs from this Sparsifier's; its
            step is not an integer >= 0; with ``strict``, its schedule gives another
            sparsity at a recorded step; a per-layer list does not hold one entry per
            layer; the weights' shapes differ (a state of another model); a threshold is not
            one finite floating-point number >= 0; a mask is not a bool tensor of the
            weight's shape (or is missing for gmp).
        RuntimeError
            The Sparsifier was squashed (its model is plain and dense now).

        Examples
        --------
        >>> import torch
        >>> from shrinkage.weights import Cubic
        >>> make = lambda: torch.nn.Sequential(torch.nn.Linear(4, 4))
        >>> sp = Sparsifier(make(), 0.5, schedule=Cubic(start=0, end=10))
        >>> _ = [sp.step() for _ in range(5)]
        >>> again = Sparsifier(make(), 0.5, schedule=Cubic(start=0, end=10))
        >>> again.load_state_dict(sp.state_dict())
        >>> again.step_count, again.current_sparsity == sp.current_sparsity
        (5, True)
        >>> Sparsifier(make(), 0.6).load_state_dict(sp.state_dict())
        Traceback (most recent call last):
        ...
        ValueError: sparsifier state has sparsity=0.5, this Sparsifier has 0.6
        """
        if self._squashed:
            raise RuntimeError("this Sparsifier was squashed; its model is a plain dense model now")
        if not isinstance(state, dict):
            raise ValueError(f"sparsifier state must be a dict, got {type(state).__name__}")
        absent = {"min_density": 0.0, "method_params": {}}
        for key in ("method", "scope", "penalty", "layers", "sparsity", "min_density"):
            mine = self.layer_names if key == "layers" else getattr(self, key)
            theirs = state.get(key, absent.get(key))
            if theirs != mine:
                raise ValueError(
                    f"sparsifier state has {key}={theirs!r}, this Sparsifier has {mine!r}"
                )
        # absent from states saved before they were recorded: not compared then
        for key, mine in (
            ("penalty_params", _plain(self.penalty_params)),
            ("rescale", self.rescale),
        ):
            if key in state and not _same(state[key], mine):
                raise ValueError(
                    f"sparsifier state has {key}={state[key]!r}, this Sparsifier has {mine!r}"
                )
        if state.get("method_params", {}) != self.method_params:
            raise ValueError(
                f"sparsifier state has method_params={state.get('method_params', {})!r}, this "
                f"Sparsifier has {self.method_params!r}"
            )
        learned = self._check_learned_state(state)
        if not isinstance(strict, bool):
            raise ValueError(f"strict must be True or False, got {strict!r}")
        if strict and "schedule_at" in state:  # absent from states saved before it was recorded
            self._check_schedule_record(state["schedule_at"])
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"sparsifier state step must be an integer >= 0, got {step!r}")
        lists = self._check_layer_state(state)
        with torch.no_grad():
            for u, tau, lam, mask, ties in zip(self.units, *lists.values()):
                u.pm.tau.copy_(tau.reshape(()))
                u.pm.lam.copy_(lam.reshape(()))
                if u.pm.mask is not None:
                    u.pm.mask.copy_(mask)
                u.pm.ties = None if ties is None else ties.to(u.param.device).clone()
                u.pm.dense_grad = None
            if learned is not None:
                values, ctl = learned
                for p, v in zip(self.threshold_parameters(), values):
                    p.copy_(v.reshape(()))
                shifts = state.get("shift")  # absent from states saved before it was kept
                if isinstance(shifts, list | tuple) and len(shifts) == len(self.units):
                    for u, v in zip(self.units, shifts):
                        if isinstance(v, torch.Tensor) and v.numel() == 1 and bool(v.isfinite()):
                            u.pm.shift.copy_(v.reshape(()))
                self._decay = float(ctl["decay"])
                self._s_after = [p.detach().clone() for p in self.threshold_parameters()]
        self._step = step
        self.current_sparsity = evaluate(self.schedule, self._step, self.sparsity)
        if self._m.dynamic:
            for u in self.units:
                u.pm.capture = self._rigl_update_at(step + 1)

    def _check_learned_state(self, state: dict):
        """STR's part of a state: ``(thresholds, controller)``, checked; None for the others."""
        if not self._m.learned:
            return None
        values, ctl = state.get("s"), state.get("controller")
        n = len(self.units)
        if not isinstance(values, list | tuple) or len(values) != n:
            raise ValueError(f"sparsifier state 's' must hold {n} thresholds, got {values!r}")
        for u, v in zip(self.units, values):
            if not isinstance(v, torch.Tensor) or v.numel() != 1 or not bool(torch.isfinite(v)):
                raise ValueError(
                    f"sparsifier state s of layer {u.name!r} must be one finite number, got {v!r}"
                )
        d = ctl.get("decay") if isinstance(ctl, dict) else None
        if isinstance(d, bool) or not isinstance(d, float | int) or not 0 <= d < 1:
            raise ValueError(
                f"sparsifier state 'controller' must hold a decay rate in [0, 1), got {ctl!r}"
            )
        return values, ctl

    # -- the end -----------------------------------------------------------------------
    @torch.no_grad()
    def squash(self) -> nn.Module:
        """Bake the effective weights in and remove the parametrizations; returns the model.

        Parameters keep their identity, the outputs are unchanged (same values), and the
        state_dict keys are those of the unpruned model, so a model built without shrinkage
        loads it. Calling it again returns the model; ``step`` refuses to run after it.

        Returns
        -------
        torch.nn.Module
            The same model object, plain: its pruned weights hold exact zeros.

        Examples
        --------
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
        >>> sp = Sparsifier(model, 0.5)
        >>> x = torch.randn(3, 6)
        >>> before = model(x)
        >>> plain = sp.squash()
        >>> plain is model, torch.equal(plain(x), before)
        (True, True)
        >>> int((plain[0].weight == 0).sum() + (plain[2].weight == 0).sum())  # half of 48
        24
        >>> fresh = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
        >>> fresh.load_state_dict(plain.state_dict())
        <All keys matched successfully>
        """
        if self._squashed:
            return self.model
        eff = [u.modules[0][1].weight.detach().clone() for u in self.units]
        for u, w in zip(self.units, eff):
            for (_, mod, attr), order in zip(u.holders(), u.orders):
                _own_class(mod)
                parametrize.remove_parametrizations(mod, attr, leave_parametrized=False)
                if order:  # put "weight" back in its place, so state_dict keys keep their order
                    items = dict(mod._parameters)
                    mod._parameters.clear()
                    mod._parameters.update({k: items[k] for k in order if k in items})
                    mod._parameters.update(items)
            u.param.copy_(w)
        self._squashed = True
        return self.model

    def __repr__(self) -> str:
        return (
            f"Sparsifier(method={self.method!r}, sparsity={self.sparsity}, scope={self.scope!r}, "
            f"schedule={self.schedule!r}, layers={len(self.units)}, step={self._step})"
        )
