"""Initialise modules from an edge-of-chaos config and measure activation sparsity on data."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from .._checks import check_int_at_least
from .._init import gaussian_init_
from ..thresholds import CST, SoftThreshold, Thresholding
from ._cfg import check_config
from ._gauss import Erf, _Lambda


def init_(module: nn.Module, cfg, readout: nn.Module | None = None) -> nn.Module:
    """Initialise every Linear / Conv weight as N(0, sigma_w^2 / fan_in) and bias N(0, sigma_b^2).

    ``cfg`` is an ``EoCConfig`` (or anything with ``sigma_w`` and ``sigma_b``). Returns the
    module (in place, like ``torch.nn.init``). fan_in is the number of inputs of one output
    unit (in_features, or in_channels x kernel size for a conv). Other layers, the
    activations' taus included, are left as they are.

    Parameters
    ----------
    module : torch.nn.Module
        The layer or network to initialise (every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` in
        it).
    cfg : EoCConfig
        Supplies ``sigma_w`` and ``sigma_b``.
    readout : torch.nn.Module or None, optional
        The network's last (classifier) layer, a submodule of ``module``: its weight is
        drawn from ``cfg`` like the others, its bias set to zero (a random readout bias only
        shifts the logits; the models of ``shrinkage.models`` do the same). Default None.

    Returns
    -------
    torch.nn.Module
        ``module`` itself, initialised in place.

    Raises
    ------
    ValueError
        If ``readout`` is not a submodule of ``module``.
    TypeError
        If ``module`` is not a module, or ``cfg`` has no ``sigma_w`` and ``sigma_b`` (for
        example the activation's name).

    Examples
    --------
    >>> import torch
    >>> from shrinkage.activations import edge_of_chaos
    >>> cfg = edge_of_chaos("crelu", 0.85)
    >>> _ = torch.manual_seed(0)
    >>> lin = init_(nn.Linear(300, 300), cfg)
    >>> abs(float(lin.weight.detach().std()) * 300**0.5 / cfg.sigma_w - 1) < 0.02
    True
    """
    check_config(cfg, ("sigma_w", "sigma_b"))
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if readout is not None and not any(readout is m for m in module.modules()):
        raise ValueError(f"readout={readout!r} is not a submodule of module")
    lazy = [
        n or "<root>" for n, p in module.named_parameters() if isinstance(p, UninitializedParameter)
    ]
    if lazy:
        raise ValueError(
            f"module has uninitialised (lazy) parameters {lazy[:3]}: run one forward pass "
            "first, so their sizes (the fan-in) are known"
        )
    gaussian_init_(module, cfg.sigma_w, cfg.sigma_b)
    if readout is not None and getattr(readout, "bias", None) is not None:
        nn.init.zeros_(readout.bias)
    return module


_ACT_TYPES = (Thresholding, nn.ReLU, nn.Tanh, Erf, _Lambda, nn.Hardtanh, nn.Softshrink)


def is_activation(mod: nn.Module) -> bool:
    return isinstance(mod, _ACT_TYPES)


def _iterable(x) -> bool:
    try:
        iter(x)
    except TypeError:
        return False
    return True


class _CountHook:
    """The forward hook on measured layer ``i`` (an object, not a closure: see
    ``control._QuantileHook``; a deep copy of the model counts into a copy of the meter)."""

    def __init__(self, meter, i: int):
        self.meter, self.i = meter, i

    def __call__(self, mod, inp, out):
        if mod is self.meter.layers[self.i]:
            self.meter._count(self.i, out)


class ActivationSparsity:
    """Forward hooks that count exact zeros at the output of every activation layer.

    ``per_layer`` is the fraction of exact zeros per activation module (in forward order) over
    all batches seen since the last ``reset``; ``mean`` averages the layers. The hooks
    count only while attached: inside a ``with`` block, or between ``attach`` and
    ``remove``.

    Parameters
    ----------
    model : torch.nn.Module
        The network; its activation layers are the thresholding modules of
        ``shrinkage.thresholds`` and ``nn.ReLU``, ``nn.Tanh``, ``nn.Hardtanh``,
        ``nn.Softshrink`` (and the modules made for ``erf`` and callables).
    layers : iterable of torch.nn.Module or None, optional
        The modules to measure instead; None (default) finds them in ``model``.

    Attributes
    ----------
    layers : list of torch.nn.Module
        The measured modules.
    per_layer : list of float
        Fraction of exact zeros of each layer's output (NaN for a layer that saw nothing).
    mean : float
        Mean of ``per_layer`` over the layers that saw data (NaN if none did).

    Raises
    ------
    ValueError
        If there is no activation layer to measure.

    Examples
    --------
    >>> import torch
    >>> from shrinkage.thresholds import ShiftedReLU, SoftThreshold
    >>> net = nn.Sequential(ShiftedReLU(0.0), SoftThreshold(2.5))
    >>> with ActivationSparsity(net) as sp:
    ...     _ = net(torch.tensor([[-1.0, 2.0, -3.0, 4.0]]))
    >>> sp.per_layer, sp.mean
    ([0.5, 0.75], 0.625)
    """

    def __init__(self, model: nn.Module, layers=None):
        if layers is not None and (isinstance(layers, nn.Module | str) or not _iterable(layers)):
            raise ValueError(
                f"layers must be a list of modules of the model or None, got {layers!r:.80}"
            )
        self.layers = (
            [m for m in model.modules() if is_activation(m)] if layers is None else list(layers)
        )
        if not self.layers:
            raise ValueError("model has no activation layers to measure")
        own = {id(m) for m in model.modules()}
        for m in self.layers:
            if not isinstance(m, nn.Module) or id(m) not in own:
                # its hook would never run: a NaN per_layer entry instead of a measurement
                raise ValueError(f"layers must be modules of the model, got {m!r:.80}")
        self._handles = []
        self.reset()

    def reset(self):
        self._zeros = [0] * len(self.layers)
        self._total = [0] * len(self.layers)
        return self

    def _count(self, i: int, out: torch.Tensor) -> None:
        self._zeros[i] += int((out.detach() == 0).sum())
        self._total[i] += out.numel()

    def attach(self):
        if not self._handles:
            self._handles = [
                m.register_forward_hook(_CountHook(self, i)) for i, m in enumerate(self.layers)
            ]
        return self

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.remove()
        return False

    @property
    def per_layer(self) -> list[float]:
        return [z / t if t else float("nan") for z, t in zip(self._zeros, self._total)]

    @property
    def mean(self) -> float:
        v = [x for x in self.per_layer if x == x]
        return sum(v) / len(v) if v else float("nan")


def unit_census(model: nn.Module, x, batch: int = 1000) -> list[dict]:
    """Where the units of every thresholding activation of ``model`` sit on the inputs ``x``.

    Per activation layer (forward order): ``zero`` (fraction of pre-activations below the
    threshold: exact zeros), ``linear`` (inside the window tau < |h| < tau + m, where the
    gradient flows), ``saturated`` (|h| >= tau + m: clipped, no gradient), ``dead`` (units zero
    on every input: neither they nor their incoming weights get any gradient), ``always``
    (units non-zero on every input) and ``q`` (mean square pre-activation). The window is
    taken on |h| for the odd activations (soft threshold, CST). Returns a list of dicts.
    The model runs in eval mode without gradients, then gets its mode back.

    Parameters
    ----------
    model : torch.nn.Module
        A network holding thresholding modules of ``shrinkage.thresholds`` (other
        activations are not counted).
    x : torch.Tensor
        The inputs, batch first.
    batch : int, optional
        Inputs per forward pass. Default 1000.

    Returns
    -------
    list of dict
        One dict per thresholding module, with keys ``zero``, ``linear``, ``saturated``
        (fractions of all pre-activations, summing to 1), ``dead``, ``always`` (fractions of
        units; a conv channel counts as one unit) and ``q``.

    Examples
    --------
    A threshold far above every pre-activation leaves every unit dead:

    >>> from shrinkage.thresholds import CReLU
    >>> net = nn.Sequential(nn.Linear(4, 8), CReLU(tau=100.0, m=1.0))
    >>> unit_census(net, torch.randn(16, 4))[0]["dead"]
    1.0
    """
    batch = check_int_at_least("batch", batch, 1)
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or len(x) == 0:
        raise ValueError(f"x must be a non-empty tensor of inputs, batch first, got {x!r:.80}")
    layers = [m for m in model.modules() if isinstance(m, Thresholding)]
    stats = [dict(n=0, zero=0, linear=0, sat=0, sq=0.0, on=None) for _ in layers]

    def hook(i):
        def fn(mod, args):
            h = args[0].detach()
            odd = isinstance(mod, (SoftThreshold, CST))
            a = h.abs() if odd else h
            tau = mod.tau.clamp(min=0.0).to(h.dtype)
            m = float("inf") if mod.m is None else mod.m
            zero, sat = a <= tau, a >= tau + m
            s = stats[i]
            s["n"] += h.numel()
            s["zero"] += int(zero.sum())
            s["sat"] += int(sat.sum())
            s["linear"] += int((~zero & ~sat).sum())
            s["sq"] += float(h.double().pow(2).sum())
            on = (~zero).flatten(2).any(2) if h.dim() > 2 else ~zero  # (batch, units)
            seen = torch.stack([on.any(0), on.all(0)])
            s["on"] = (
                seen
                if s["on"] is None
                else torch.stack([s["on"][0] | seen[0], s["on"][1] & seen[1]])
            )

        return fn

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(layers)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                model(x[i : i + batch])
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return [
        {
            "zero": s["zero"] / s["n"],
            "linear": s["linear"] / s["n"],
            "saturated": s["sat"] / s["n"],
            "dead": float((~s["on"][0]).float().mean()),
            "always": float(s["on"][1].float().mean()),
            "q": s["sq"] / s["n"],
        }
        for s in stats
    ]
