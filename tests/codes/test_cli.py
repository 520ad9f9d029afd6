"""``shrinkage codes learn|compare`` on tiny sizes: files written and numbers consistent."""

import argparse
import csv
import json

import numpy as np
import pytest

from shrinkage.cli import codes as cli
from shrinkage.codes import encode, relative_error
from shrinkage.experiments.codes import load_patches


def _run(argv):
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_learn_writes_dictionary_metrics_and_figures(tmp_path):
    out = tmp_path / "x"
    rc = _run(
        [
            "codes",
            "learn",
            "--penalty",
            "cel0",
            "--lam",
            "0.05",
            "--atoms",
            "12",
            "--patches",
            "512",
            "--test",
            "64",
            "--size",
            "8",
            "--epochs",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    D = np.load(out / "dictionary.npy")
    assert D.shape == (12, 64)
    m = json.loads((out / "metrics.json").read_text())
    # The reported held-out error is the one the saved dictionary gives on those patches.
    _, Xte = load_patches(512, 64, 8, seed=0)
    Z = encode(Xte, D, "cel0", 0.05, max_iter=1000, tol=1e-4)
    assert abs(m["relative_error"] - relative_error(Xte, D, Z)) < 1e-6
    assert 0 <= m["v1"]["gabor_fraction"] <= 1
    for f in ("atoms.png", "nxny.png", "orientations.png", "tuning.png", "gabor.json"):
        assert (out / f).stat().st_size > 500


@pytest.mark.slow
def test_compare_table_and_matching(tmp_path):
    out = tmp_path / "c"
    rc = _run(
        [
            "codes",
            "compare",
            "--penalties",
            "l1,cel0",
            "--atoms",
            "8",
            "--thresholds",
            "0.2,0.6,1.2",
            "--patches",
            "400",
            "--test",
            "64",
            "--size",
            "6",
            "--no-analysis",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert len(rows) == 6 and {r["penalty"] for r in rows} == {"l1", "cel0"}
    for pen in ("l1", "cel0"):
        errs = [float(r["relative_error"]) for r in rows if r["penalty"] == pen]
        afs = [float(r["active_fraction"]) for r in rows if r["penalty"] == pen]
        # Larger lam: sparser codes and larger error.
        assert afs[0] > afs[-1] and errs[0] < errs[-1]
    res = json.loads((out / "compare.json").read_text())
    for m in res["matched"]:
        if m["l1"] and m["cel0"]:
            assert abs(m["l1_over_cel0"] - m["l1"] / m["cel0"]) < 1e-12
    assert (out / "tradeoff.png").stat().st_size > 1000
    # Another comparison into the same folder replaced its tables and left its dictionaries
    # among the new ones; it is refused now, naming what differs (the same recipe may rerun).
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match=r"holds a comparison of another recipe \(atoms \[16\]"):
        _run(["codes", "compare", "--penalties", "l1,cel0", "--atoms", "16", "--thresholds",
              "0.2,0.6,1.2", "--patches", "400", "--test", "64", "--size", "6",
              "--no-analysis", "--out", str(out)])  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == before
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds a run of another command"):
        _run(["codes", "compare", "--atoms", "8", "--out", str(tmp_path / "w")])


@pytest.mark.slow
def test_l0_codes_come_from_the_cel0_relaxation_unless_told_otherwise(tmp_path):
    """compare: l0 is encoded from its CEL0 relaxation by default (its held-out energy is
    lower than from zero on the same kind of data), ``--no-relax`` turns it off; other
    penalties are never relaxed."""
    energies = {}
    for flag in ([], ["--no-relax"]):
        out = tmp_path / ("plain" if flag else "relaxed")
        args = ["codes", "compare", "--penalties", "l0,l1", "--atoms", "12"]
        args += ["--thresholds", "0.5", "--patches", "400", "--test", "64", "--size", "6"]
        assert _run(args + ["--no-analysis", *flag, "--out", str(out)]) == 0
        res = json.loads((out / "compare.json").read_text())
        assert res["config"]["relax"] is (not flag)
        relaxed = {r["penalty"]: r["relaxed"] for r in res["rows"]}
        assert relaxed == {"l0": not flag, "l1": False}
        energies[bool(flag)] = next(r["objective"] for r in res["rows"] if r["penalty"] == "l0")
    assert energies[False] < energies[True]


def test_learn_resumes_bitwise_after_an_interruption(tmp_path, monkeypatch):
    """codes learn killed after some batches keeps a checkpoint; --resume ends with the
    dictionary of the uninterrupted run, bit for bit (checkpoints after every batch here)."""
    from shrinkage.codes import _learn as learn_mod
    from shrinkage.experiments import checkpoint
    from shrinkage.experiments.codes import learn, load_patches

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    data = load_patches(600, 100, size=8, seed=0)
    kw = dict(penalty="l1", lam=0.3, n_atoms=16, n_epochs=2, batch_size=64, analyse=False)
    whole = learn(data=data, out=tmp_path / "a", **kw)
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    real, calls = learn_mod.learn_step, []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 13:  # in the second epoch
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(learn_mod, "learn_step", dies)
    with pytest.raises(KeyboardInterrupt):
        learn(data=data, out=tmp_path / "b", **kw)
    monkeypatch.setattr(learn_mod, "learn_step", real)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    with pytest.raises(ValueError, match="pass --resume"):
        learn(data=data, out=tmp_path / "b", resume=False, **kw)
    with pytest.raises(ValueError, match=r"another run \(lam: 0.2 now, 0.3 there"):
        learn(data=data, out=tmp_path / "b", resume=True, **{**kw, "lam": 0.2})
    resumed = learn(data=data, out=tmp_path / "b", resume=True, **kw)
    assert np.array_equal(resumed["D"], whole["D"]) and resumed["history"] == whole["history"]
    assert resumed["metrics"] == whole["metrics"]


@pytest.mark.parametrize("die_at", [19, 56, None])
def test_learn_that_stops_on_convergence_resumes_bitwise(tmp_path, monkeypatch, die_at):
    """With --learn-tol the run ends on convergence (10 of at most 60 passes here); killed
    at the end of a pass before its convergence check (step 18), after a resampling (step
    55), or while the learned dictionary is evaluated (None), --resume ends with the
    uninterrupted run's dictionary, energies and metrics (passes, converged, resampled)."""
    from shrinkage.codes import _learn as learn_mod
    from shrinkage.experiments import checkpoint, codes
    from shrinkage.experiments.codes import learn, load_patches

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    data = load_patches(600, 100, size=8, seed=0)
    kw = dict(penalty="l1", lam=0.3, n_atoms=16, n_epochs=60, batch_size=64, analyse=False)
    kw.update(learn_tol=1e-2, monitor=100)
    whole = learn(data=data, out=tmp_path / "a", **kw)
    assert whole["metrics"]["converged"] and whole["metrics"]["epochs_run"] == 10
    if die_at is None:
        real = codes.evaluate

        def dies(*a, **k):
            monkeypatch.setattr(codes, "evaluate", real)
            raise KeyboardInterrupt

        monkeypatch.setattr(codes, "evaluate", dies)
    else:
        real, calls = learn_mod.learn_step, []

        def dies(*a, **k):
            calls.append(1)
            if len(calls) == die_at:
                raise KeyboardInterrupt
            return real(*a, **k)

        monkeypatch.setattr(learn_mod, "learn_step", dies)
    with pytest.raises(KeyboardInterrupt):
        learn(data=data, out=tmp_path / "b", **kw)
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    resumed = learn(data=data, out=tmp_path / "b", resume=True, **kw)
    assert np.array_equal(resumed["D"], whole["D"]) and resumed["history"] == whole["history"]
    assert resumed["metrics"] == whole["metrics"]


@pytest.mark.slow
def test_learn_stops_on_convergence_and_reports_it(tmp_path):
    """--learn-tol turns --epochs into a cap: the run stops once converged (judged on
    --monitor fixed patches) and metrics.json says how many passes ran and how many atoms
    were resampled."""
    out = tmp_path / "conv"
    argv = ["codes", "learn", "--penalty", "l1", "--lam", "0.3", "--atoms", "8"]
    argv += ["--patches", "600", "--test", "64", "--size", "6", "--epochs", "100"]
    argv += ["--learn-tol", "1e-3", "--monitor", "200", "--no-analysis", "--out", str(out)]
    assert _run(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["converged"] is True and 4 <= m["epochs_run"] < 100
    assert m["batches"] == m["epochs_run"] * (600 // 256)
    assert m["resampled_atoms"] >= 0


def test_bad_stopping_options_are_refused_before_work(tmp_path, monkeypatch):
    from shrinkage.experiments import codes

    monkeypatch.setattr(codes, "load_patches", lambda *a, **k: pytest.fail("work"))
    for flag, value in (("--learn-tol", "-1"), ("--max-no-improvement", "0"), ("--monitor", "-5")):
        for action in ("learn", "compare"):
            argv = ["codes", action, flag, value, "--out", str(tmp_path / "bad")]
            # the recipe's field, as the library call names it
            with pytest.raises(ValueError, match=flag[2:].replace("-", "_")):
                _run(argv)


def test_sweep_command_refuses_bad_sizes_before_work(tmp_path):
    with pytest.raises(ValueError, match="atoms"):
        _run(["codes", "sweep", "--atoms", "0,64", "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_compare_reports_gabor_parameters_and_atom_types(tmp_path):
    out = tmp_path / "ca"
    argv = ["codes", "compare", "--penalties", "l1,cel0", "--atoms", "3", "--thresholds"]
    argv += ["0.5", "--patches", "300", "--test", "50", "--size", "6", "--out", str(out)]
    assert _run(argv) == 0
    rows = [r for r in csv.DictReader(open(out / "compare.csv")) if r.get("type_gabor")]
    assert {r["penalty"] for r in rows} == {"l1", "cel0"}
    for r in rows:
        fr = [float(r[f"type_{t}"]) for t in ("gabor", "blob", "low-frequency", "unstructured")]
        assert abs(sum(fr) - 1) < 1e-9 and all(f * 3 == round(f * 3) for f in fr)
    assert (out / "gabor_params.png").stat().st_size > 1000


def test_learn_refuses_a_folder_holding_another_run(tmp_path):
    """A second ``codes learn`` with another lam (or into a weights run's folder) once wrote
    its results over the first run's, exit 0."""
    small = ["--atoms", "4", "--patches", "200", "--test", "40", "--size", "4", "--epochs", "1"]
    small += ["--no-analysis", "--penalty", "l1"]
    out = tmp_path / "c"
    assert _run(["codes", "learn", *small, "--lam", "0.1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match="another recipe \\(lam 0.3 here, 0.1 there"):
        _run(["codes", "learn", *small, "--lam", "0.3", "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = tmp_path / "w"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model": "lenet5", "sparsity": 0.9}))
    with pytest.raises(ValueError, match="another command \\(model, sparsity"):
        _run(["codes", "learn", *small, "--lam", "0.1", "--out", str(other)])
