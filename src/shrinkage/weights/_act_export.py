"""``export(model, ..., activations=True)``: per layer and batch size, the fastest of dense,
weight-sparse and activation-and-weight-sparse kernels, measured on the model's own
activations.

Runs of ``Linear -> activation -> Linear -> ...`` in any ``nn.Sequential`` (activations
that ``activation_spec`` accepts: ``nn.ReLU`` and the
thresholding modules) are the candidates. One forward pass of ``example_input`` records
each Linear's input (how sparse it is depends on the data, so it must be real data); each
Linear, with its activation, is then timed on ``batch_size`` of those rows under

- ``"dense"``: the Linear and its activation as they are;
- the weight-sparse kernels of ``export`` (``SparseLinear``);
- ``"act_dense"`` / ``"act_csc_u16"`` / ``"act_csc_i32"``: a one-layer
  ``ActivationChain``, which visits only the non-zero
  inputs (the CSC kernels for layers with at least ``min_sparsity`` zero weights);

and the fastest is kept. Consecutive layers on activation kernels become one chain (one
call into C for all of them). The whole model as chosen is then timed against the dense
model and against the weight-sparse-only choice (each layer's fastest non-activation
kernel), on ``batch_size`` rows of ``example_input``, and the fastest is returned; its
output on all of ``example_input`` is checked against the dense model's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._act_chain import ActivationChain, activation_spec
from ._act_chain import available as act_available
from ._autotune import _supported, _time_modules, example_rows
from ._sparse_modules import SparseLinear, weight_sparsity

__all__ = ["export_activations", "find_runs"]

_U16 = 1 << 16


def find_runs(model: nn.Module) -> list[list[tuple[str, str | None]]]:
    """Runs of consecutive ``(Linear name, activation name or None)`` in the model's
    ``nn.Sequential`` containers: a Linear, its activation if the next module is one a
    chain fuses, then the next Linear, and so on."""
    runs = []
    skip = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            skip.update(f"{name}.{c}" if name else c for c, _ in mod.named_children())
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        children = list(mod.named_children())
        run: list = []
        i = 0
        while i < len(children):
            cname, child = children[i]
            full = f"{name}.{cname}" if name else cname
            if type(child) is not nn.Linear or full in skip:
                if run:
                    runs.append(run)
                run = []
                i += 1
                continue
            act = None
            if i + 1 < len(children):
                aname, amod = children[i + 1]
                spec = activation_spec(amod)
                if spec is not None and spec[0] != "none":
                    act = f"{name}.{aname}" if name else aname
            run.append((full, act))
            i += 2 if act is not None else 1
            if act is None:  # the next module is not an activation a chain fuses
                runs.append(run)
                run = []
        if run:
            runs.append(run)
    return runs


def _layer_inputs(model, names, example_input) -> dict[str, torch.Tensor]:
    """Each named Linear's input in one forward pass (2-D: rows x in_features)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        mod = model.get_submodule(name)

        def hook(m, args, name=name):
            seen.setdefault(name, args[0].detach().reshape(-1, args[0].shape[-1]))

        hooks.append(mod.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _layer_candidates(lin, act, ws_cands, min_sparsity):
    """{kernel: module computing act(lin(x))}: dense, weight-sparse, activation kernels."""
    w = lin.weight.detach()
    out_f, in_f = w.shape
    s = weight_sparsity(w)
    act_mod = act if act is not None else nn.Identity()
    mods: dict[str, nn.Module] = {"dense": nn.Sequential(lin, act_mod)}
    if s >= min_sparsity:
        for k in ws_cands:
            if k != "dense" and _supported(k, out_f, in_f, w.device, w.dtype):
                mods[k] = nn.Sequential(SparseLinear.from_linear(lin, k), act_mod)
    if act_available() and w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64):
        kernels = ["act_dense"]
        if s >= min_sparsity:
            kernels.append("act_csc_u16" if out_f <= _U16 else "act_csc_i32")
        for k in kernels:
            mods[k] = ActivationChain.from_layers([lin], [act], [k], ["l"], ["a" if act else None])
    return mods, s


def export_activations(
    model, min_sparsity, batch_size, ws_cands, rounds, example_input, return_timings
):
    if example_input is None:
        raise ValueError(
            "export(..., activations=True) needs example_input: real inputs (how sparse "
            "each layer's input is depends on the data), e.g. a batch of the test set"
        )
    ex = example_input
    if isinstance(ex, tuple | list):  # a chain takes one tensor: a 1-tuple is that tensor
        if len(ex) != 1 or not isinstance(ex[0], torch.Tensor):
            raise ValueError(
                "export(..., activations=True) needs example_input as one tensor (the input "
                f"of an nn.Sequential), got a {type(ex).__name__} of {len(ex)} items"
            )
        ex = ex[0]
    ex = torch.as_tensor(ex)
    out = copy.deepcopy(model)
    runs = find_runs(out)
    names = [n for run in runs for n, _ in run]
    inputs = _layer_inputs(out, names, ex)
    report: dict[str, dict] = {}
    ws_model = copy.deepcopy(out)
    for run in runs:
        choice, best_ws = [], []
        for lname, aname in run:
            lin = out.get_submodule(lname)
            act = out.get_submodule(aname) if aname else None
            x = inputs.get(lname)
            if x is None or lin.in_features == 0 or lin.out_features == 0:
                choice.append("dense")
                best_ws.append(("dense", None))
                continue
            mods, s = _layer_candidates(lin, act, ws_cands, min_sparsity)
            xb = example_rows(x, batch_size)
            ms = _time_modules(mods, xb, rounds)
            kernel = min(ms, key=ms.get)
            ws_only = {k: v for k, v in ms.items() if not k.startswith("act_")}
            wk = min(ws_only, key=ws_only.get)
            report[lname] = {
                "sparsity": s,
                "input_zeros": float((x == 0).float().mean()),
                "kernel": kernel,
                "ms": ms,
            }
            choice.append(kernel)
            best_ws.append((wk, mods[wk][0] if wk != "dense" else None))
        _apply_run(out, run, choice)
        for (lname, _), (_wk, mod) in zip(run, best_ws):
            if mod is not None:
                _set(ws_model, lname, copy.deepcopy(mod))
    out = _best_whole(model, out, ws_model, report, ex, batch_size, rounds)
    _check_output(model, out, ex)
    return (out, report) if return_timings else out


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def _apply_run(model, run, choice) -> None:
    """Replace the run's modules by the chosen ones: consecutive activation-kernel layers
    become one ActivationChain at the first one's place (the others nn.Identity)."""
    i = 0
    while i < len(run):
        kernel = choice[i]
        lname, aname = run[i]
        if not kernel.startswith("act_"):
            if kernel != "dense":
                _set(model, lname, SparseLinear.from_linear(model.get_submodule(lname), kernel))
            i += 1
            continue
        j = i
        while j < len(run) and choice[j].startswith("act_"):
            j += 1
        group = run[i:j]
        lins = [model.get_submodule(n) for n, _ in group]
        acts = [model.get_submodule(a) if a else None for _, a in group]
        chain = ActivationChain.from_layers(
            lins, acts, choice[i:j], [n for n, _ in group], [a for _, a in group]
        )
        _set(model, group[0][0], chain)
        for name in chain.covers:
            _set(model, name, nn.Identity())
        i = j


def _best_whole(model, chosen, ws_model, report, ex, batch_size, rounds):
    """The whole model as chosen, weight-sparse only, and dense, timed on batch_size rows
    of example_input; the fastest is kept (the choice recorded in the report)."""
    alts = {"chosen": chosen, "dense": model, "weights_only": ws_model}
    x = example_rows(ex, batch_size)
    ms = _time_modules(alts, x, rounds)
    best = min(ms, key=ms.get)
    for entry in report.values():
        entry["whole_model_ms"] = ms
        entry["whole_model_choice"] = best
    if best == "chosen":
        return chosen
    for entry in report.values():
        if best == "dense":
            entry["kernel"] = "dense"
    return copy.deepcopy(model) if best == "dense" else ws_model


def _check_output(model, exported, ex) -> None:
    """The exported model's output on example_input against the dense model's."""
    with torch.no_grad():
        ref = model(ex)
        got = exported(ex)
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    err = float((got - ref).abs().max()) if ref.numel() else 0.0
    if not err <= 1e-3 * (scale + 1e-6):
        raise RuntimeError(
            f"the exported model's output differs from the dense model's by {err:.3g} "
            f"(output scale {scale:.3g}): a kernel bug, please report it"
        )
