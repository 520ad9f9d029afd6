"""Every benchmark script runs end to end with ``--quick`` (tiny sizes) and writes its numbers."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark smoke run

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _main(name):
    return _module(name).main


def test_every_benchmark_is_covered():
    assert {p.stem for p in BENCH.glob("*.py")} == {
        "activation_inference",
        "activations_epochs",
        "activations_probe",
        "activations_speed",
        "activations_variants",
        "activations_width",
        "codes_convergence",
        "codes_error_metric",
        "codes_l0",
        "codes_speed",
        "onnx_speed",
        "sparse_inference",
        "weights_competitors",
        "weights_finetune",
        "weights_overhead",
    }


def test_activation_inference(tmp_path):
    out = tmp_path / "r.json"
    assert _main("activation_inference")(["--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["batch"] for r in res["rows"]] == [1, 1, 16, 1]
    for r in res["rows"]:
        assert r["act_x_dense"] > 0 and 0 < r["share_of_bw_bound"]["act"]
        assert 0.5 < r["activation_zeros_mean"] < 1.0
    if res["trained"] is not None:  # MNIST is bundled; the exported model predicts the same
        assert res["trained"]["agreement"] >= 0.99


def test_activations_probe(tmp_path):
    _main("activations_probe")(["--quick", "--out", str(tmp_path / "r.json")])
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["correlations"]) == 5 and len(res["probes"]) == 2 and len(res["gain"]) == 2
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in res["probes"])
    assert [r["activation"] for r in res["signal"]][0] == "relu" and len(res["signal"]) == 4
    assert res["signal"][3]["q_star"] == 4.0 and res["signal"][3]["m"] == res["signal"][1]["m"]
    for r in res["signal"]:
        assert len(r["input_share_per_layer"]) == 4 and r["logit_sd_across_inputs"] > 0
        assert all(0.0 < v <= 1.0 for v in r["input_share_per_layer"])


def test_activations_width(tmp_path):
    _main("activations_width")(["--quick", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "width.json").read_text())
    assert len(rows) == 6 and (tmp_path / "width.png").stat().st_size > 0
    by = {(r["activation"], r["width"]): r for r in rows}
    for act in ("relu", "crelu", "cst"):
        # the finite-width theory: the gradient spread falls as the width grows
        assert by[(act, 32)]["predicted_log_gain_sd"] < by[(act, 16)]["predicted_log_gain_sd"]
    for act in ("crelu", "cst"):
        assert abs(by[(act, 32)]["test_sparsity"] - 0.85) < 0.1  # a few steps of control
    # a second call with the same recipe reads every run back instead of training again
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")}
    _main("activations_width")(["--quick", "--out", str(tmp_path)])
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")} == stamp


def test_activations_epochs(tmp_path):
    _main("activations_epochs")(["--quick", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "epochs.json").read_text())
    assert [r["activation"] for r in rows] == ["relu", "crelu", "cst"]
    assert (tmp_path / "epochs.png").stat().st_size > 0
    for r in rows:
        assert [c["epoch"] for c in r["curve"]] == [1, 2]
        assert all(0.0 <= c["test_acc"] <= 1.0 for c in r["curve"])
    for r in rows[1:]:  # the sparsity control holds the target in every layer
        assert all(c["worst_layer_error"] < 0.1 for c in r["curve"])
    # a second call reads every finished run back instead of training again
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")}
    _main("activations_epochs")(["--quick", "--out", str(tmp_path)])
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")} == stamp
    # another optimiser is another recipe: trained again, and recorded in each run
    _main("activations_epochs")(["--quick", "--optimizer", "amsgrad", "--out", str(tmp_path)])
    for act in ("relu", "crelu", "cst"):
        res = json.loads((tmp_path / act / "result.json").read_text())
        assert res["recipe"]["optimizer"] == "amsgrad"
    with pytest.raises(ValueError, match="unknown optimizer"):
        _main("activations_epochs")(["--quick", "--optimizer", "lion", "--out", str(tmp_path)])


def test_activations_variants(tmp_path):
    _main("activations_variants")(["--quick", "--out", str(tmp_path)])
    runs = json.loads((tmp_path / "variants.json").read_text())
    assert [r["variant"] for r in runs] == list(_module("activations_variants").VARIANTS)
    for r in runs:
        assert 0.0 <= r["test_acc"] <= 1.0 and 0.0 <= r["dead_units"] <= 1.0
        if r["variant"] != "relu":  # the control holds the target (the ramp's end) everywhere
            assert r["worst_layer_error"] < 0.1
    assert (tmp_path / "variants.png").stat().st_size > 0
    th = {t["variant"]: t for t in json.loads((tmp_path / "theory.json").read_text())}
    # a continuous derivative keeps two inputs apart longer than CReLU's kinked one
    assert th["smoothstep"]["one_minus_rho_50"] > 3 * th["crelu"]["one_minus_rho_50"]
    assert th["relu"]["one_minus_rho_50"] > th["crelu"]["one_minus_rho_50"]
    stamp = (tmp_path / "variants.json").stat().st_mtime_ns  # finished runs are read back
    _main("activations_variants")(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "variants.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="--variants"):
        _main("activations_variants")(["--variants", "gelu", "--out", str(tmp_path)])


def test_activations_variants_constants_by_brute_force():
    """The edge-of-chaos constants of the new variants against a plain Riemann sum."""
    import numpy as np
    import torch
    from scipy.stats import norm

    mod = _module("activations_variants")
    z = np.linspace(-12, 12, 480001)
    w = norm.pdf(z) * (z[1] - z[0])
    for variant, d in (("smoothstep", 0.0), ("jump", 0.1)):
        cfg = mod.config(variant, 0.85, 1.5, d)
        tau, sw2, sb2 = cfg.tau, cfg.sigma_w**2, cfg.sigma_b**2
        act = cfg.module()
        x = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        y = act(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        e2, d2 = float((y.detach().numpy() ** 2 * w).sum()), float((g.numpy() ** 2 * w).sum())
        assert abs(tau - norm.ppf(0.85)) < 1e-12
        assert abs(sw2 - 1 / d2) < 1e-4 * sw2 and abs(sb2 - (1 - e2 / d2)) < 1e-4
        assert abs(float((y.detach().numpy() == 0) @ w) - 0.85) < 1e-4
    with pytest.raises(ValueError, match="jump"):
        mod.config("jump", 0.85, 1.5, 0.5)


def test_activations_speed(tmp_path):
    _main("activations_speed")(["--quick", "--out", str(tmp_path / "r.json")])
    res = json.loads((tmp_path / "r.json").read_text())
    assert all(r["quad_max_rel_err"] < 1e-6 for r in res["moments"])
    assert {r["activation"] for r in res["edge_of_chaos"]} == {"crelu", "cst"}


def test_codes_convergence(tmp_path):
    argv = ["--quick", "--threads", "1", "--out", str(tmp_path / "r.json")]
    summary = _main("codes_convergence")(argv)
    res = json.loads((tmp_path / "r.json").read_text())
    assert set(summary) == {"l1", "cel0", "minibatch"} == set(res["summary"])
    ours = [r for r in res["rows"] if r["learner"] == "SparseCoding"]
    assert {r["penalty"] for r in ours} == {"l1", "cel0"}
    assert all(0.0 <= r["found"] <= 1.0 and r["steps"] >= r["passes"] >= 1 for r in ours)


def test_codes_error_metric(tmp_path, monkeypatch):
    """The re-read codes are the sweep's own (their per-patch mean error is the one the sweep
    recorded), the global error is the energy-weighted one, and a second call re-encodes
    nothing."""
    import numpy as np

    mod = _module("codes_error_metric")
    assert mod.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    res = json.loads((tmp_path / "error_metric.json").read_text())
    assert len(res["rows"]) == 3 * 2 * 4
    for r in res["rows"]:
        assert r["mean_error"] == pytest.approx(r["sweep_error"], rel=1e-9, abs=1e-12)
        assert 0 < r["global_error"] < 1
    # one run by hand: sum of squared residuals over sum of squared signals
    cfg = json.loads((tmp_path / "sweep" / "config.json").read_text())
    X, _ = mod.held_out(cfg["images"], cfg["size"], cfg["n_test"], cfg["n_monitor"], cfg["seed"])
    r = next(r for r in res["rows"] if r["penalty"] == "l1" and r["n_atoms"] == 16)
    run = tmp_path / "sweep" / "runs" / f"l1_16_{r['threshold']:g}"
    D = np.load(run / "D.npy")
    lam = json.loads((run / "result.json").read_text())["lam"]
    Z = mod.encode(X, D, "l1", lam, max_iter=1000, tol=1e-4)
    assert r["global_error"] == pytest.approx(np.sum((X - Z @ D) ** 2) / np.sum(X**2), rel=1e-9)
    for metric in mod.METRICS:
        assert len(res[metric]["levels"]) == 3
        assert any(e.get("l1_over_cel0") for e in res[metric]["matched"])
    assert (tmp_path / "error_metric.png").stat().st_size > 1000
    monkeypatch.setattr(mod, "encode", lambda *a, **k: pytest.fail("re-encoded"))
    assert mod.main([str(tmp_path / "sweep"), "--out", str(tmp_path), "--no-progress"]) == 0


def test_codes_l0(tmp_path):
    _main("codes_l0")(["start", "--quick", "--out", str(tmp_path / "r.json")])
    rows = json.loads((tmp_path / "r.json").read_text())
    assert {r["start"] for r in rows} == {"zero", "continuation", "relaxation"}


def test_codes_speed(tmp_path):
    assert (
        _main("codes_speed")(["--quick", "--threads", "1", "--out", str(tmp_path / "r.json")]) == 0
    )
    res = json.loads((tmp_path / "r.json").read_text())
    assert {"learn", "encode", "stream", "spams"} <= set(res)
    if "skipped" not in res["spams"]:  # spams-bin installed (the bench extra)
        rows = res["spams"]["encode"]
        assert {(r["codes"], r["dtype"]) for r in rows} == {
            (c, d) for c in ("sparse", "dense") for d in ("float32", "float64")
        }
        assert all(abs(r["gap_vs_spams"]) < 1e-2 for r in rows)  # the same problem solved
        (learn,) = res["spams"]["learn"]
        assert learn["atoms"] == 32 and learn["threads"] == 1
        # SPAMS's dictionary re-encoded at our held-out sparsity (bisection on lam)
        assert learn["spams_active_equal_sparsity"] == pytest.approx(learn["ours_active"], rel=0.1)
        (half,) = learn["prefixes"]  # ours on half the patches: time to SPAMS's error
        assert half["fraction"] == 0.5 and half["batches"] == 1
        assert half["reached"] == (half["ours_rel_error"] <= half["spams_rel_error_equal_sparsity"])
        assert learn["spams_error_reached_at_fraction"] in (None, 0.5, 1.0)


def test_codes_speed_without_spams(tmp_path, monkeypatch, capsys):
    """The optional bench extra absent: a message and a skipped entry, not a failure."""
    monkeypatch.setitem(sys.modules, "spams", None)  # import spams raises ImportError
    argv = ["--quick", "--threads", "1", "--skip", "learn", "encode", "stream"]
    assert _main("codes_speed")([*argv, "--out", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["spams"] == {"skipped": "spams not installed"}
    assert "SPAMS rows skipped: spams is not installed" in capsys.readouterr().out


def test_onnx_speed(tmp_path):
    pytest.importorskip("onnxruntime")
    argv = ["--quick", "--sparsities", "0.95", "--batches", "4", "--out", str(tmp_path)]
    assert _main("onnx_speed")(argv) == 0
    rows = json.loads((tmp_path / "onnx_speed.json").read_text())
    assert [r["model"] for r in rows] == ["lenet_300_100", "lenet5"]
    assert all(r["sparsity"] == pytest.approx(0.95, abs=1e-3) for r in rows)
    assert all(set(r["median_ms"]) == {"torch", "ort", "ort_unpruned", "exported"} for r in rows)


def test_sparse_inference(tmp_path):
    assert _main("sparse_inference")(["--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    assert list(tmp_path.glob("*.json"))


def test_weights_overhead(tmp_path):
    res = _main("weights_overhead")(["--quick", "--json", str(tmp_path / "r.json")])
    assert [r["model"] for r in res] == ["lenet_300_100", "lenet5", "resnet_small", "transformer"]
    assert all(r["ratio_to_dense"]["dense"] == 1.0 for r in res)
    variants = {"dense", "st3", "st3sigma", "gmp", "torch_prune", "copy", "noop"}
    assert all(set(r["ms_in_hook"]) == variants for r in res)
    assert all(r["ms_in_hook"]["copy"] == 0.0 for r in res)  # no threshold: only the copy


def test_weights_overhead_floors_train_as_dense():
    """The floors are fair: the copy and no-op parametrizations give the raw weights the
    dense model's gradients (the no-op one reads the weight it was given)."""
    import torch
    import torch.nn.functional as F

    mod = _module("weights_overhead")
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    grads = {}
    for v in ("dense", "copy", "noop"):
        model, _, _ = mod.make(v, mod.lenet_300_100, 0.9)
        F.cross_entropy(model(x), y).backward()
        grads[v] = [p.grad for n, p in model.named_parameters() if "weight" in n]
    for v in ("copy", "noop"):
        assert len(grads[v]) == len(grads["dense"]) == 3
        for a, b in zip(grads[v], grads["dense"]):
            torch.testing.assert_close(a, b)


def test_weights_competitors(tmp_path):
    argv = ["--quick", "--methods", "st3,rigl", "--lrs", "0.05,0.1", "--threads", "1"]
    argv += ["--variants", "st3:scope=layer"]
    assert _main("weights_competitors")([*argv, "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "lenet_300_100_summary.json").read_text())
    assert set(res["tuned"]) == {"st3", "rigl", "dense"}
    for m, t in res["tuned"].items():  # the chosen lr is the best on the validation images
        assert t["val_acc"][str(t["lr"])] == max(t["val_acc"].values()), m
    cells = res["summary"]["cells"]
    assert set(cells) == {"st3@0.98", "st3/scope=layer@0.98", "rigl@0.98"}
    assert cells["rigl@0.98"]["st3_minus"] and cells["st3/scope=layer@0.98"]["st3_minus"]
    assert (tmp_path / "lenet_300_100_acc_vs_macs.png").stat().st_size > 1000
    table = (tmp_path / "lenet_300_100_table.md").read_text()
    assert "| st3 |" in table and "Tuning (validation accuracy %" in table
    config = json.loads(
        (
            tmp_path / "tune/lenet_300_100/lr0.1/lenet_300_100_st3_s0.99_seed0/config.json"
        ).read_text()
    )
    assert config["eval_split"] == "val" and config["lr"] == 0.1
    # --report-only trains nothing: a grid with one more seed and a variant never run
    # tables what is finished, the same numbers
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")}
    more = ["--seeds", "0,1", "--variants", "st3:scope=layer,rigl:rigl_init=sparse"]
    again = [*argv[:-2], *more, "--report-only", "--out", str(tmp_path)]
    assert _main("weights_competitors")(again) == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("result.json")} == stamp
    res2 = json.loads((tmp_path / "lenet_300_100_summary.json").read_text())
    assert res2["summary"]["cells"] == cells and res2["tuned"] == res["tuned"]


def test_weights_competitors_marks_diverged_runs():
    """A run whose loss blew up keeps its (stopped) accuracy in the table, says so, and never
    counts as within 0.5 point of dense."""
    spec = importlib.util.spec_from_file_location("bench_wc", BENCH / "weights_competitors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(method, s, acc, diverged=False):
        return {"method": method, "sparsity": s, "seed": 0, "test_acc": acc, "diverged": diverged,
                "sparse_macs": 100 * (1 - s), "dense_macs": 100}  # fmt: skip

    rows = [row("dense", 0.0, 0.98), row("st3", 0.5, 0.979), row("gmp", 0.5, 0.979, "True")]
    summ = mod.summary(rows)
    assert (
        summ["cells"]["gmp@0.5"]["diverged"] == [0] and summ["cells"]["st3@0.5"]["diverged"] == []
    )
    assert summ["macs_within_half_point"] == {"st3": 50.0, "gmp": None}
    tuned = {m: {"lr": 0.1, "val_acc": {0.1: 0.9}} for m in ("st3", "gmp", "dense")}
    table = mod.table("m", summ, tuned)
    assert "| gmp | 0.1 | 97.90 (0.1k, diverged: seed 0) |" in table
    assert "| st3 | 0.1 | 97.90 (0.1k) |" in table


def test_weights_finetune(tmp_path):
    argv = ["--quick", "--models", "lenet_300_100", "--methods", "st3,oneshot"]
    assert _main("weights_finetune")([*argv, "--sparsities", "0.9", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "finetune.json").read_text())
    assert {r["method"] for r in res["rows"]} == {"st3", "oneshot"}
    assert [r["epoch"] for r in res["rows"] if r["method"] == "st3"] == [0.0, 0.5, 1.0]
    assert (tmp_path / "finetune.png").stat().st_size > 1000
    table = (tmp_path / "finetune_table.md").read_text().splitlines()
    assert table[0] == "| model (dense acc) | method | 90 %: ep 0 / 1 |"
