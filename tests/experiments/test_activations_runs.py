"""The activations experiments: one run, the reproduction grid and the lever study."""

import json

import pytest
import torch

from shrinkage.experiments import activations as ex
from shrinkage.experiments.activations import ActivationsRecipe, describe, train_run

TINY = dict(depth=6, width=48, epochs=1.0, n_train=3000, n_eval=1000, progress=False)


def test_same_recipe_same_numbers():
    a = train_run("cst", 0.85, **TINY)
    b = train_run(ActivationsRecipe(activation="cst", sparsity=0.85, **TINY))
    assert a["test_acc"] == b["test_acc"] and a["taus"] == b["taus"]
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]


def test_control_holds_every_layer_at_the_target_and_fixed_tau_does_not_move():
    held = train_run("crelu", 0.85, **TINY)
    assert held["sparsity_max_error"] < 0.03
    assert len(set(held["taus"])) > 1  # each layer found its own threshold
    fixed = train_run("crelu", 0.85, control=0.0, **TINY)
    cfg, _ = ActivationsRecipe(activation="crelu", sparsity=0.85, **TINY).config()
    assert fixed["taus"] == pytest.approx([cfg.tau] * TINY["depth"])


def test_history_says_where_units_and_gradients_are(tmp_path):
    res = train_run("crelu", 0.85, out=str(tmp_path), **TINY)
    last = res["history"][-1]
    assert len(last["census"]) == len(last["grad_norm_per_layer"]) == TINY["depth"]
    assert all(g > 0 for g in last["grad_norm_per_layer"])
    c = last["census"][0]
    assert c["zero"] + c["linear"] + c["saturated"] == pytest.approx(1.0)
    assert len(res["init_census"]) == TINY["depth"]
    assert (tmp_path / "diagnostics.png").stat().st_size > 1000


def test_relu_has_no_target_and_no_controller():
    res = train_run("relu", **TINY)
    assert res["target_sparsity"] is None and res["sparsity_max_error"] is None
    assert res["taus"] == [0.0] * TINY["depth"]


def test_divergence_is_flagged_and_said():
    res = train_run("crelu", 0.85, optimizer="sgd", lr=1e4, grad_clip=0.0, **TINY)
    assert {"diverged", "collapsed"} & set(res["flags"])
    assert any(line.startswith("FLAG") for line in describe(res))


def test_unclipped_activation_is_flagged_unstable_at_init():
    res = train_run(
        "shifted_relu",
        0.85,
        depth=40,
        width=64,
        epochs=0.05,
        n_train=1000,
        n_eval=256,
        control=0.0,
        warmup=0.0,
        progress=False,
    )
    assert "unstable_init" in res["flags"] or res["init_q_per_layer"][-1] > 5
    assert res["warnings"] and "half-stable" in res["warnings"][0]


def test_cnn_and_pooled_inputs():
    res = train_run(
        "crelu",
        0.85,
        model="cnn",
        depth=3,
        width=8,
        input_pool=2,
        epochs=0.2,
        n_train=1000,
        n_eval=200,
        warmup=0.0,
        progress=False,
    )
    assert len(res["test_sparsity_per_layer"]) == 3
    assert res["predicted_log_gain_sd"] is None


def test_reproduce_writes_tables_and_reuses_only_matching_runs(tmp_path, monkeypatch):
    rows = (
        ("relu_d4", "relu", None, "mlp", 4, 1, {}),
        ("crelu_0.85_d4", "crelu", 0.85, "mlp", 4, 2, {"width": 20}),
    )
    base = ActivationsRecipe(width=24, epochs=0.5, n_train=1000, n_eval=300)
    summary = ex.reproduce(tmp_path, base, rows=rows, progress=False)
    assert [(r["label"], r["seed"]) for r in summary] == [
        ("relu_d4", 0),
        ("crelu_0.85_d4", 0),
        ("crelu_0.85_d4", 1),
    ]
    assert summary[1]["width"] == 20 and summary[0]["width"] == 24
    for name in ("summary.json", "summary.csv", "table.md", "reproduce.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "crelu_0.85_d4" in (tmp_path / "table.md").read_text()
    calls = []
    real = ex.train_run
    monkeypatch.setattr(ex, "train_run", lambda r: calls.append(r) or real(r))
    again = ex.reproduce(tmp_path, base, rows=rows, progress=False)
    assert calls == [] and again == summary  # read back: same recipe
    ex.reproduce(tmp_path, base.replace(lr=1e-4), rows=rows, progress=False)
    assert len(calls) == 3  # another recipe: every run again, never a stale one
    stored = json.loads((tmp_path / "relu_d4" / "seed0" / "result.json").read_text())
    assert stored["recipe"]["lr"] == 1e-4


def test_reproduce_skips_a_run_whose_checkpoint_is_unusable_and_goes_on(tmp_path, monkeypatch):
    rows = (
        ("relu_d3", "relu", None, "mlp", 3, 1, {}),
        ("crelu_0.85_d3", "crelu", 0.85, "mlp", 3, 2, {}),
    )
    base = ActivationsRecipe(width=16, epochs=0.25, n_train=600, n_eval=200)
    # an older version's checkpoint (no header) in the way of one run
    stale = tmp_path / "crelu_0.85_d3" / "seed0"
    stale.mkdir(parents=True)
    (stale / "checkpoint.pt").write_bytes(b"PK\x03\x04 an old torch.save zip")
    trained = []
    real = ex.train_run
    monkeypatch.setattr(ex, "train_run", lambda r: trained.append(r.out) or real(r))
    with pytest.warns(ex.RunSkippedWarning, match="crelu_0.85_d3 seed 0 skipped.*remove"):
        summary = ex.reproduce(tmp_path, base, rows=rows, progress=False)
    # the run after the unusable one was still made, and the grid says what it left out
    assert [(r["label"], r["seed"]) for r in summary] == [("relu_d3", 0), ("crelu_0.85_d3", 1)]
    assert len(trained) == 3
    skipped = json.loads((tmp_path / "skipped.json").read_text())
    assert [(s["label"], s["seed"]) for s in skipped] == [("crelu_0.85_d3", 0)]
    assert "not a shrinkage checkpoint" in skipped[0]["error"]
    assert "Not run: crelu_0.85_d3 seed 0" in (tmp_path / "table.md").read_text()
    # the unusable file is left as it was: nothing already written is lost
    assert (stale / "checkpoint.pt").read_bytes().startswith(b"PK")
    # removed, the run is made on the next call and the list empties
    (stale / "checkpoint.pt").unlink()
    (tmp_path / "relu_d3" / "seed0" / "result.json").write_text("{ damaged")
    again = ex.reproduce(tmp_path, base, rows=rows, progress=False)
    assert [(r["label"], r["seed"]) for r in again] == [
        ("relu_d3", 0),
        ("crelu_0.85_d3", 0),
        ("crelu_0.85_d3", 1),
    ]
    # the damaged result was made again; the intact one was read back
    assert trained[3:] == [str(tmp_path / "relu_d3" / "seed0"), str(stale)]
    assert json.loads((tmp_path / "skipped.json").read_text()) == []


def test_reproduce_refuses_unknown_labels_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "train_run", lambda r: pytest.fail("a run was started"))
    with pytest.raises(ValueError, match=r"only: unknown row label\(s\) 'crelu_085_d50'.*relu_d50"):
        ex.reproduce(tmp_path, only=["relu_d50", "crelu_085_d50"])
    with pytest.raises(ValueError, match="only: .*none given"):
        ex.reproduce(tmp_path, only=[])
    assert "cst_0.90_d100" in ex.grid_labels()
    assert list(tmp_path.iterdir()) == []


def test_cli_reproduce_prints_skipped_runs_and_fails(tmp_path, capsys):
    from shrinkage.cli import main

    for seed in range(3):  # the row's three seeds, each with an unusable checkpoint
        stale = tmp_path / "relu_d50" / f"seed{seed}"
        stale.mkdir(parents=True)
        (stale / "checkpoint.pt").write_bytes(b"not a checkpoint")
    opts = ["--width", "16", "--epochs", "0.25", "--n-train", "600", "--n-eval", "200"]
    rc = main(
        [
            "activations",
            "reproduce",
            "--only",
            "relu_d50",
            "--no-progress",
            *opts,
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "SKIPPED relu_d50 seed 0: " in out and "not a shrinkage checkpoint" in out
    assert out.count("SKIPPED relu_d50 seed") == 3 and "3 run(s) skipped" in out


def test_lever_study_one_change_at_a_time(tmp_path):
    levers = (
        ("base", {}),
        ("fixed thresholds", {"control": 0.0}),
        ("half the safe m", {"m": "0.5safe"}),
    )
    rows = ex.lever_study(tmp_path, ActivationsRecipe(**TINY), levers=levers, progress=False)
    assert [r["lever"] for r in rows] == ["base", "fixed thresholds", "half the safe m"]
    assert float(rows[2]["change"]["m"]) > 0
    table = (tmp_path / "levers.md").read_text()
    assert "| base |" in table and "+0.00" in table


def test_defaults_learn_hold_sparsity_and_close_the_gap_with_width():
    """The documented recipe on a 6,000-image subset (depth 6, two epochs): CReLU and CST learn
    (more than six times chance) with every layer within 0.05 of 85 %, and, as the finite-width
    theory predicts (the gradient noise per layer is (3 / p - 1) / N), the gap to ReLU at the
    same width shrinks when the width grows."""
    kw = dict(depth=6, epochs=2.0, n_train=6000, n_eval=2000, batch_size=64, progress=False)
    gaps = []
    for width in (96, 384):
        relu = train_run("relu", width=width, **kw)["test_acc"]
        crelu = train_run("crelu", 0.85, width=width, **kw)
        gaps.append(relu - crelu["test_acc"])
        assert crelu["sparsity_max_error"] < 0.05
    assert crelu["test_acc"] > 0.6
    assert gaps[1] < gaps[0] - 0.05, gaps
    cst = train_run("cst", 0.85, width=384, **kw)
    assert cst["test_acc"] > 0.6 and cst["sparsity_max_error"] < 0.05


def test_amsgrad_is_adam_with_the_largest_second_moment_kept():
    """--optimizer amsgrad: torch's Adam with amsgrad=True, the same rate and decay; a run
    with it trains (one tiny epoch) and records the choice in its recipe."""
    net = torch.nn.Linear(3, 2)
    opt = ex._optimizer(ActivationsRecipe(optimizer="amsgrad", lr=1e-4, weight_decay=0.01), net)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["amsgrad"] is True
    assert opt.defaults["lr"] == 1e-4 and opt.defaults["weight_decay"] == 0.01
    assert ex._optimizer(ActivationsRecipe(), net).defaults["amsgrad"] is False
    r = ActivationsRecipe(
        optimizer="amsgrad", depth=3, width=16, epochs=1, n_train=128, n_eval=64, progress=False
    )
    res = train_run(r)
    assert res["recipe"]["optimizer"] == "amsgrad" and not res["diverged"]
    with pytest.raises(ValueError, match="optimizer"):
        ActivationsRecipe(optimizer="adamw").check()


@pytest.mark.parametrize(
    "device,match",
    [
        ("gpu0", "device must be a torch device"),
        ("meta", "holds no data"),
        ("cuda:63", "not available"),
    ],
)
def test_a_device_the_machine_lacks_is_refused_before_any_work(device, match, monkeypatch):
    """torch's own errors (an AssertionError from a CPU-only build, a RuntimeError listing
    every backend) came from inside the run; now a ValueError naming --device, first."""
    if device.startswith("cuda") and torch.cuda.device_count() > 63:  # pragma: no cover
        pytest.skip("a machine with 64 GPUs has cuda:63")
    monkeypatch.setattr(ex, "_train", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=match):
        train_run(ActivationsRecipe(device=device, depth=3, width=8, progress=False))


def test_train_refuses_a_folder_holding_another_recipes_finished_run(tmp_path):
    """`activations train --out o` a second time with another sparsity wrote its config and
    results over the first run's; now refused before any work. The same recipe runs again
    (threads and progress are not the recipe)."""
    base = ActivationsRecipe(
        activation="crelu", depth=3, width=16, epochs=0.25, n_train=256, n_eval=128,
        progress=False, out=str(tmp_path / "o"),
    )  # fmt: skip
    ex.train_run(base.replace(sparsity=0.9))
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    with pytest.raises(ValueError, match="holds a run of another recipe.*sparsity"):
        ex.train_run(base.replace(sparsity=0.85))
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    assert ex.train_run(base.replace(sparsity=0.9, threads=2))["test_acc"] >= 0.0
