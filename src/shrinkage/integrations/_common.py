"""What the callbacks share: optional-extra imports, the Sparsifier's arguments checked
early, plain state_dict keys while a Sparsifier is active, and the sparsity / MACs to log."""

from __future__ import annotations

import importlib
import warnings
import zlib
from collections.abc import Callable

import torch
from torch import nn

from .._checks import check_choice, check_open_unit
from ..weights import METHODS, Constant, Cubic, Schedule, Sparsifier
from ..weights._schedules import evaluate

SIDECAR = "shrinkage_sparsifier.pt"
"""File holding the Sparsifier's state in a Hugging Face checkpoint folder."""


def require(module: str, extra: str, user: str):
    """Import ``module`` or raise a one-line ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModuleNotFoundError(
            f"{user} needs {module}: pip install 'shrinkage[{extra}]'", name=module
        ) from None


class SparsifierSpec:
    """The Sparsifier's arguments, checked when a callback is made, used at train begin."""

    def __init__(
        self,
        sparsity: float,
        method: str = "st3",
        schedule: Schedule | Callable[[int], float] | None = None,
        **kwargs,
    ):
        self.sparsity = check_open_unit("sparsity", sparsity, closed_low=True)
        self.method = check_choice("method", method, METHODS)
        if schedule is not None and not callable(schedule):
            raise ValueError(
                "schedule must be a Schedule, a callable step -> sparsity or None (cubic over "
                f"the first half of training), got {schedule!r}"
            )
        allowed = (
            "scope",
            "include",
            "exclude",
            "penalty",
            "penalty_params",
            "rescale",
            "min_density",
            "method_params",
        )
        for k in kwargs:
            if k not in allowed:
                raise ValueError(f"unknown Sparsifier argument {k!r}; known: {', '.join(allowed)}")
        if "scope" in kwargs:
            check_choice("scope", kwargs["scope"], ("global", "layer"))
        self.schedule = schedule
        self.kwargs = kwargs
        self._dry_run()

    def _dry_run(self) -> None:
        """Every other check of Sparsifier's (penalty and its parameters, rescale,
        min_density against sparsity, method_params) now, on a throwaway layer, instead of
        at train begin after the model and data are loaded; include / exclude name the
        user's model and wait for it."""
        kwargs = {k: v for k, v in self.kwargs.items() if k not in ("include", "exclude")}
        if self.method == "rigl":  # update_end waits for the number of steps (build)
            params = kwargs.get("method_params") or {}
            kwargs["method_params"] = {"update_end": 2**40, **params}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a 2 x 2 layer pruned away warns
            # the user's schedule too (a class, a two-argument callable, a value above the
            # sparsity); None is the cubic of build, a valid one
            schedule = self.schedule or Constant()
            Sparsifier(nn.Linear(2, 2), self.sparsity, self.method, schedule, **kwargs)

    def build(self, model: nn.Module, total_steps: int | None) -> Sparsifier:
        schedule = self.schedule
        kwargs = dict(self.kwargs)
        if self.method == "rigl":  # static sparsity; masks updated over 75 % of training
            params = dict(kwargs.get("method_params") or {})
            if "update_end" not in params:
                if not total_steps or total_steps < 1:
                    raise ValueError(
                        "rigl's default update_end (75 % of training) needs the number of "
                        "training steps; pass method_params={'update_end': ...}"
                    )
                params["update_end"] = max(1, int(round(0.75 * total_steps)))
            kwargs["method_params"] = params
            return Sparsifier(model, self.sparsity, "rigl", schedule or Constant(), **kwargs)
        if schedule is None:
            if not total_steps or total_steps < 1:
                raise ValueError(
                    "the default schedule (cubic over the first half of training) needs the "
                    "number of training steps; pass schedule=shrinkage.weights.Cubic(start, end)"
                )
            schedule = Cubic(0, max(1, total_steps // 2))
        elif total_steps and total_steps >= 1:
            reached = evaluate(schedule, total_steps, self.sparsity)
            if reached < self.sparsity - 1e-12:
                warnings.warn(
                    f"the schedule reaches sparsity {reached:g} at the last training step "
                    f"({total_steps}), not {self.sparsity:g}: the model ends there; end the "
                    "schedule within training (e.g. Cubic(0, max_steps // 2))",
                    UserWarning,
                    stacklevel=3,
                )
        return Sparsifier(model, self.sparsity, self.method, schedule, **kwargs)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return (
            f"sparsity={self.sparsity}, method={self.method!r}, schedule={self.schedule!r}{extra}"
        )


class PlainKeys:
    """While ``sp`` is active, ``model.state_dict()`` has the keys of the model without
    shrinkage (raw weights under ``name.weight``, no threshold buffers: those live in the
    Sparsifier's own state) and ``model.load_state_dict`` accepts such a dict.

    So a framework checkpoint written mid-training loads into the plain model *before* the
    Sparsifier is rebuilt on resume (Hugging Face loads the weights before ``on_train_begin``),
    and the framework's own key checks (tied weights, safetensors) see the usual names.
    """

    def __init__(self, model: nn.Module, sp: Sparsifier):
        self.entries = []  # (plain suffix, parametrized suffix, buffer prefix)
        for u in sp.units:
            group = []
            for name, _, attr in u.holders():
                base = f"{name}." if name else ""
                group.append((f"{base}{attr}", f"{base}parametrizations.{attr}.original"))
            self.entries.append((group, u.pm))
        self.buffer_prefixes = tuple(
            f"{n}.parametrizations.{a}.0." if n else f"parametrizations.{a}.0."
            for u in sp.units
            for n, _, a in u.holders()
        )

        # plain functions: torch tags a state_dict hook with an attribute (not on a bound method)
        def after_save(*args):
            self._after_save(*args)

        def before_load(*args):
            self._before_load(*args)

        self.handles = [
            model.register_state_dict_post_hook(after_save),
            model.register_load_state_dict_pre_hook(before_load),
        ]

    def _after_save(self, module, state_dict, prefix, local_metadata) -> None:
        rename = {prefix + p: prefix + plain for group, _ in self.entries for plain, p in group}
        drop = tuple(prefix + b for b in self.buffer_prefixes)
        items = list(state_dict.items())
        state_dict.clear()
        for k, v in items:
            if k.startswith(drop):
                continue
            state_dict[rename.get(k, k)] = v

    def _before_load(self, module, state_dict, prefix, *args) -> None:
        for group, pm in self.entries:
            found = [prefix + plain for plain, _ in group if prefix + plain in state_dict]
            if not found:
                continue
            value = state_dict[found[0]]
            for plain, p in group:
                state_dict.pop(prefix + plain, None)
                state_dict[prefix + p] = value
                base = p[: -len("original")] + "0."
                # the parametrization's own tensors (buffers, and STR's learned threshold s)
                # are the callback's state, restored right after: the current ones fill in
                for buf, t in [*pm.named_buffers(), *pm.named_parameters()]:
                    state_dict.setdefault(prefix + base + buf, t.detach().clone())

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@torch.no_grad()
def weight_stats(model: nn.Module, sp: Sparsifier) -> dict[str, float]:
    """Sparsity of the pruned weights and the MACs of Linear layers per position (token):
    a Linear applied to one position costs one multiply-accumulate per weight, so dense MACs
    = its weights, sparse MACs = its nonzero weights (counted through the Sparsifier)."""
    dense = sparse = 0
    for mod in model.modules():
        if isinstance(mod, nn.Linear):  # a tied weight used by two layers costs twice
            dense += mod.weight.numel()
            sparse += int(torch.count_nonzero(mod.weight))
    out = {"sparsity": round(1.0 - sp.density(), 6), "target_sparsity": sp.current_sparsity}
    if dense:
        out["dense_macs_per_token"] = dense
        out["sparse_macs_per_token"] = sparse
    return out


def weights_crc32(sp: Sparsifier) -> int:
    """CRC-32 of the pruned (raw) weights' bytes: which weights a saved Sparsifier state
    belongs to."""
    crc = 0
    for u in sp.units:
        raw = u.param.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # any dtype
        crc = zlib.crc32(raw.numpy().tobytes(), crc)
    return crc
