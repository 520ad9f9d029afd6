"""Checkpoint fuzzer: damaged exported and training checkpoints, each case in its own process.

    python -m tests._fuzz --cases 300 --seed 0 [--kinds exported,fit,learn] [--json out.json]

Three kinds of checkpoint, each made once here by the library itself:

- ``exported``: ``torch.save(export(model).state_dict())`` of small sparse models (every kernel,
  a SparseConv2d), read back by the user's ``torch.load(weights_only=True)`` and
  :func:`~shrinkage.weights.load_exported`, then run with and without a grad-requiring input;
- ``fit``: the checkpoint of :func:`shrinkage.experiments.loop.fit` (model, optimizer,
  scheduler, Sparsifier) written within an epoch, resumed with ``resume=True``;
- ``learn``: the checkpoint of ``shrinkage.experiments.codes.learn``, resumed likewise.

Each case damages one of them, bytes or elements, and runs the reader in a forked child
(the fixtures are built once, before any fork):

- bytes: bit flips, overwritten or zeroed runs, truncation, a repeated block;
- elements (the file decoded, one entry changed, the file encoded again): NaN/inf, another
  dtype or shape, a truncated or extended tensor or list, a wrong type, a missing or extra
  key. For training checkpoints the file is written either with a fresh digest (a
  structurally wrong file, as another version or a bug would write it: the loader's checks
  must refuse it) or with the original one (damage after writing: the digest must refuse it).
  Changes that leave a plausible checkpoint under a fresh digest are not damage but another
  checkpoint, and are not generated: a value nudged (a weight, a step count, a generator
  state), an entry added to or dropped from an open-ended record (an optimizer's
  per-parameter state, the history of epochs). For exported checkpoints, which carry no
  digest of their own, plausible values are generated too (the layers' CRC-32 must catch
  them).

Outcomes: ``refused`` (a ValueError or TypeError from the library), ``refused by torch.load``
(the user's own ``torch.load`` raised, exported only), ``harmless`` (the result is the
uninterrupted / undamaged one), and the failures: ``silent`` (a different result and no
error), ``unclean`` (another exception type from the library), ``crash`` (the child died of
a signal) and ``hang`` (killed after ``--timeout`` seconds).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from torch import nn

OK = ("refused", "refused by torch.load", "harmless")
FAILURES = ("silent", "unclean", "crash", "hang")
KINDS = ("exported", "fit", "learn")


# -- fixtures ---------------------------------------------------------------------------------
def _sparse_(module, keep=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                m.weight.mul_(torch.rand(m.weight.shape, generator=g) < keep)
    return module


def exported_fixtures():
    """(name, skeleton, file bytes, input, reference output) per exported model."""
    from shrinkage.weights import export

    torch.manual_seed(0)
    out = []
    for kernel in ("torch_csr", "torch_csr_i32", "c_csr_i32", "c_csr_u16"):
        net = _sparse_(nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 8)))
        x = torch.randn(5, 24)
        fast = export(net, min_sparsity=0.5, candidates=(kernel,))
        out.append((f"linear-{kernel}", net, fast, x))
    for kernel in ("torch_csr", "c_csr_i32"):
        net = _sparse_(nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(64, 6)))
        x = torch.randn(3, 2, 6, 6)
        fast = export(net, min_sparsity=0.5, candidates=(kernel,), example_input=x)
        out.append((f"conv-{kernel}", net, fast, x))
    fixtures = []
    for name, net, fast, x in out:
        buf = io.BytesIO()
        torch.save(fast.state_dict(), buf)
        with torch.no_grad():
            ref = net(x)
        fixtures.append((name, net, buf.getvalue(), x, ref))
    return fixtures


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    return x, y


def run_fit(out, resume=None, fail_at=None):
    """A weights-train-like run (SGD, cosine schedule, ST-3 Sparsifier) of 30 steps, 12 an
    epoch, a checkpoint after every step; returns (parameters, history without seconds)."""
    from shrinkage.experiments.loop import fit
    from shrinkage.weights import Cubic, Sparsifier

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    sp = Sparsifier(model, 0.6, method="st3", schedule=Cubic(2, 20))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 30)
    x, y = _problem()

    def before(step):
        if step == fail_at:
            raise KeyboardInterrupt

    res = fit(
        model,
        opt,
        x,
        y,
        batch_size=8,
        total_steps=30,
        per_epoch=12,
        on_epoch=lambda st: {"epoch": st.epoch, "step": st.step, "loss": st.train_loss},
        before_step=[before],
        after_step=[sched.step, sp.step],
        out=out,
        state={"scheduler": sched, "sparsifier": sp},
        key={"run": "fuzz"},
        resume=resume,
        checkpoint_every=0.0,
        stop_on_nonfinite=True,
    )
    params = [p.detach().clone() for p in model.parameters()]
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history]
    return params, history


_LEARN = dict(penalty="l1", lam=0.3, n_atoms=12, n_epochs=2, batch_size=64, analyse=False)


def learn_data():
    from shrinkage.experiments.codes import load_patches

    return load_patches(400, 50, size=6, seed=0)


def run_learn(out, data, resume=None, fail_at=None):
    from shrinkage.codes import _learn as learn_mod
    from shrinkage.experiments import checkpoint
    from shrinkage.experiments.codes import learn

    real, calls = learn_mod.learn_step, []

    def step(*a, **k):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(*a, **k)

    every, checkpoint.EVERY_SECONDS = checkpoint.EVERY_SECONDS, 0.0
    learn_mod.learn_step = step
    try:
        res = learn(data=data, out=out, resume=resume, **_LEARN)
    finally:
        learn_mod.learn_step = real
        checkpoint.EVERY_SECONDS = every
    return res["D"], res["history"]


def training_fixture(kind, folder):
    """(file bytes, reference result, data) of an interrupted fit / learn run."""
    folder = Path(folder)
    if kind == "fit":
        ref = run_fit(folder / "whole")
        try:
            run_fit(folder / "cut", fail_at=17)
        except KeyboardInterrupt:
            pass
        return (folder / "cut" / "checkpoint.pt").read_bytes(), ref, None
    data = learn_data()
    ref = run_learn(folder / "whole", data)
    try:
        run_learn(folder / "cut", data, fail_at=9)
    except KeyboardInterrupt:
        pass
    return (folder / "cut" / "checkpoint.pt").read_bytes(), ref, data


# -- damage -----------------------------------------------------------------------------------
def damage_bytes(raw: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(raw)
    how = rng.choice(["flip", "flip", "overwrite", "zero", "truncate", "repeat"])
    if how == "flip":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == "overwrite":
        at = rng.randrange(len(b))
        for i in range(at, min(len(b), at + rng.randint(1, 16))):
            b[i] = rng.randrange(256)
    elif how == "zero":
        at = rng.randrange(len(b))
        n = min(rng.randint(1, 64), len(b) - at)
        b[at : at + n] = bytes(n)
    elif how == "truncate":
        b = b[: rng.randrange(len(b))]
    else:
        at, n = rng.randrange(len(b)), rng.randint(1, 64)
        b[at:at] = b[at : at + n]
    return bytes(b), f"bytes:{how}"


_JUNK = [None, "junk", [1, 2], 3, -1, 1.5, {"a": 1}]


def _leaves(obj, path=()):
    """Every (path, value) inside nested dicts / lists / tuples, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))


def _set(obj, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, tuple):
        obj = list(obj)
        obj[head] = _set(obj[head], rest, value)
        return tuple(obj)
    obj[head] = _set(obj[head], rest, value)
    return obj


def _damage_tensor(t: torch.Tensor, rng: random.Random, values: bool):
    hows = ["dtype", "truncate", "extend", "reshape", "junk"]
    if t.is_floating_point():
        hows += ["nonfinite", "nonfinite"]
    if values and t.numel():
        hows += ["value", "value"]
    how = rng.choice(hows)
    t = t.clone()
    if how == "nonfinite" and t.numel():
        t.view(-1)[rng.randrange(t.numel())] = rng.choice([float("nan"), float("inf")])
    elif how == "value" and t.numel():  # exported only: a plausible number, checksum's job
        v = rng.choice([-1, 0, 1, 7, 2**31 - 1, -(2**31), 65535, -32768, 1e30, 0.5])
        flat = t.view(-1)
        flat[rng.randrange(t.numel())] = v if t.is_floating_point() else int(v) % 2**15
    elif how == "dtype":
        choices = [torch.int64, torch.int32, torch.int16, torch.float16, torch.float64]
        t = t.to(rng.choice([d for d in choices if d != t.dtype]))
    elif how == "truncate" and t.numel():
        t = t.reshape(-1)[: rng.randrange(t.numel())].clone()
    elif how == "extend":
        t = torch.cat([t.reshape(-1), t.reshape(-1)[:3] if t.numel() else torch.zeros(2)])
    elif how == "reshape" and t.numel() % 2 == 0 and t.numel():
        t = t.reshape(2, -1) if t.dim() == 1 else t.reshape(-1)
    else:
        return rng.choice(_JUNK), "tensor->junk"
    return t, f"tensor:{how}"


def damage_elements(obj, rng: random.Random, values: bool, skip=(), open_ended=()):
    """One entry of a decoded checkpoint changed (see the module docstring). Nothing under
    ``skip`` is changed; the containers under ``open_ended`` (maps and records whose entries
    come and go as a run goes: an optimizer's per-parameter state) keep their entries."""

    def under(p, prefixes):
        return any(p[: len(s)] == s for s in prefixes)

    leaves = [(p, v) for p, v in _leaves(obj) if p and not under(p, skip)]
    path, v = rng.choice(leaves)
    if isinstance(v, dict | list | tuple) and under(path, open_ended):
        new, how = rng.choice(_JUNK[:3]), "container->junk"
    elif isinstance(v, torch.Tensor):
        new, how = _damage_tensor(v, rng, values)
    elif isinstance(v, dict):
        if v and rng.random() < 0.5:
            new = dict(v)
            del new[rng.choice(list(new))]
            how = "dict:drop"
        else:
            new, how = {**v, "junk_key": 1}, "dict:extra"
    elif isinstance(v, list | tuple):
        r = rng.random()
        if v and r < 0.4:
            new, how = type(v)(list(v)[:-1]), "list:truncate"
        elif r < 0.8:
            new, how = type(v)([*v, "junk"]), "list:extend"
        else:
            new, how = {"not": "a list"}, "list->dict"
    elif isinstance(v, bool):
        new, how = rng.choice([1, "true", None]), "bool:type"
    elif isinstance(v, int):
        new, how = (
            rng.choice(["12", None, 1.5, [1]])
            if not values
            else rng.choice(["12", None, 1.5, -5, 2**40]),
            "int:junk",
        )
    elif isinstance(v, float):
        new, how = rng.choice([float("nan"), float("inf"), "0.1", None]), "float:junk"
    else:
        new, how = rng.choice(_JUNK), f"{type(v).__name__}:junk"
    return _set(obj, path, new), f"elements:{how}@{'/'.join(map(str, path))}"


# -- one case ---------------------------------------------------------------------------------
def _outcome_of_exception(e: BaseException) -> str:
    return "refused" if isinstance(e, ValueError | TypeError) else "unclean"


def run_exported(data: bytes, skeleton, x, ref) -> tuple[str, str]:
    from shrinkage.weights import load_exported

    try:
        sd = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # the user's own call: torch's error, not ours
        return "refused by torch.load", type(e).__name__
    try:
        model = load_exported(skeleton, sd)
        outs = []
        with torch.no_grad():
            outs.append(model(x))
        outs.append(model(x.clone().requires_grad_(True)).detach())
    except Exception as e:
        return _outcome_of_exception(e), f"{type(e).__name__}: {str(e)[:200]}"
    same = all(o.shape == ref.shape and torch.allclose(o, ref, atol=1e-5) for o in outs)
    return ("harmless", "") if same else ("silent", "loaded, output differs")


def run_training(kind, data: bytes, ref, extra) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        folder = Path(tmp)
        (folder / "checkpoint.pt").write_bytes(data)
        try:
            if kind == "fit":
                got = run_fit(folder, resume=True)
            else:
                got = run_learn(folder, extra, True)
        except Exception as e:
            return _outcome_of_exception(e), f"{type(e).__name__}: {str(e)[:200]}"
    a, b = got, ref
    if kind == "fit":
        same = all(torch.equal(p, q) for p, q in zip(a[0], b[0])) and a[1] == b[1]
    else:
        same = bool((a[0] == b[0]).all()) and a[1] == b[1]
    return ("harmless", "") if same else ("silent", "resumed, result differs")


def make_cases(kind, fixtures, n, seed):
    """(name, damaged bytes, how, fixture) for ``n`` cases of one kind."""
    from shrinkage.experiments.checkpoint import _MAGIC, load_checkpoint, save_checkpoint

    rng = random.Random(f"{seed}-{kind}")
    for i in range(n):
        if kind == "exported":
            fixture = fixtures[i % len(fixtures)]
            name, raw = fixture[0], fixture[2]
        else:
            fixture, name, raw = fixtures, kind, fixtures[0]
        if rng.random() < 0.5:
            data, how = damage_bytes(raw, rng)
        elif kind == "exported":
            sd = torch.load(io.BytesIO(raw), weights_only=True)
            bad, how = damage_elements(sd, rng, values=True)
            buf = io.BytesIO()
            torch.save(bad, buf)
            data = buf.getvalue()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "c.pt"
                path.write_bytes(raw)
                key, payload = load_checkpoint(path)
                skip = [("run", "history")] if kind == "fit" else []
                open_ended = [("objects", "optimizer", "state")]
                bad, how = damage_elements(payload, rng, False, skip, open_ended)
                save_checkpoint(path, key, bad)
                data = path.read_bytes()
            if rng.random() < 0.5:  # damage after writing: the original digest stays
                head = raw.partition(b"\n")[0] + b"\n"
                data = head + data.partition(b"\n")[2]
                how += "+old-digest"
            else:
                assert data.startswith(_MAGIC)
        yield f"{kind}:{name}:{i}", data, how, fixture


def run_case(kind, data, fixture, timeout) -> tuple[str, str]:
    """The case in a forked child: (outcome, detail)."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(r)
        code = 1
        try:
            if kind == "exported":
                _, skeleton, _, x, ref = fixture
                outcome, detail = run_exported(data, skeleton, x, ref)
            else:
                outcome, detail = run_training(kind, data, fixture[1], fixture[2])
            os.write(w, json.dumps([outcome, detail]).encode())
            code = 0
        except BaseException:
            os.write(w, json.dumps(["unclean", traceback.format_exc()[-400:]]).encode())
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return "hang", f"over {timeout}s"
        time.sleep(0.002)
    with os.fdopen(r, "rb") as fh:
        msg = fh.read()
    if os.WIFSIGNALED(status):
        return "crash", f"signal {os.WTERMSIG(status)}"
    try:
        outcome, detail = json.loads(msg)
    except ValueError:
        return "unclean", f"exit status {os.WEXITSTATUS(status)}, no report"
    return outcome, detail


def fuzz(cases: int, seed: int = 0, kinds=KINDS, timeout: float = 120.0, log=None) -> dict:
    """Run ``cases`` cases split over ``kinds``; returns the counts and the failing cases."""
    torch.set_num_threads(1)  # no thread pool alive across fork()
    counts = {k: dict.fromkeys(OK + FAILURES, 0) for k in kinds}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for j, kind in enumerate(kinds):
            n = cases // len(kinds) + (1 if j < cases % len(kinds) else 0)
            if kind == "exported":
                fixtures = exported_fixtures()
            else:
                fixtures = training_fixture(kind, Path(tmp) / kind)
            for name, data, how, fixture in make_cases(kind, fixtures, n, seed):
                outcome, detail = run_case(kind, data, fixture, timeout)
                counts[kind][outcome] += 1
                if outcome in FAILURES:
                    failures.append(
                        {"case": name, "damage": how, "outcome": outcome, "detail": detail}
                    )
                    if log:
                        log(f"{name} {how}: {outcome} {detail}")
    return {"seed": seed, "cases": cases, "counts": counts, "failures": failures}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests._fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=int(os.environ.get("SHRINKAGE_FUZZ_CASES", 300)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--json", default=None, help="write the report here")
    args = p.parse_args(argv)
    report = fuzz(
        args.cases,
        args.seed,
        tuple(args.kinds.split(",")),
        args.timeout,
        log=lambda s: print(s, file=sys.stderr),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    for kind, c in report["counts"].items():
        print(f"{kind:9s} " + "  ".join(f"{k}={v}" for k, v in c.items()))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
