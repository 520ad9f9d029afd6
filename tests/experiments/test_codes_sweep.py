"""The overcompleteness sweep: resumable runs on streamed patches, and the paper's two
comparisons computed from them."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import skimage.io

from shrinkage.experiments import codes_sweep as sw
from tests.data.test_images_patches import pink_noise

ARGS = dict(
    penalties=("l1", "cel0"),
    atoms=(4, 8),
    thresholds=(0.35, 0.7),
    n_patches=400,
    chunk=200,
    n_test=100,
    n_monitor=50,
    size=6,
    analyse_max=2,
    progress=False,
)


def _images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        img = pink_noise((40, 48), seed=i)
        img = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
        skimage.io.imsave(folder / f"{i}.png", img, check_contrast=False)
    return folder


def test_sweep_writes_runs_resumes_and_refuses_other_configs(tmp_path, monkeypatch):
    """Every (penalty, size, threshold) gets its own folder and result; a second call
    learns nothing (finished runs are read back); a sweep folder of another configuration
    is refused; the summary's numbers come from the runs' files."""
    images = _images(tmp_path)
    out = tmp_path / "sweep"
    res = sw.sweep(out, images=images, **ARGS)
    assert len(res["rows"]) == 8
    for r in res["rows"]:
        run = out / "runs" / sw._key(r["penalty"], r["n_atoms"], r["threshold"])
        D = np.load(run / "D.npy")
        assert D.shape == (r["n_atoms"], 36)
        np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0, atol=1e-6)
        assert r["patches_seen"] == 400 and r["chunks"] == 2
        assert r["analysed_atoms"] == 2
        assert sum(r[f"type_{t}"] for t in ("gabor", "blob", "low-frequency", "unstructured")) == (
            pytest.approx(1.0)
        )
    for f in ("sweep.csv", "sweep.json", "tradeoff_by_atoms.png", "gabor_params.png"):
        assert (out / f).stat().st_size > 100
    assert json.loads((out / "sweep.json").read_text())["rows"] == res["rows"]

    monkeypatch.setattr(sw, "learn_dictionary", lambda *a, **k: pytest.fail("relearned"))
    again = sw.sweep(out, images=images, plots=False, **ARGS)
    assert again["rows"] == res["rows"]
    # An interrupted sweep: a missing run is redone, the others are not.
    monkeypatch.undo()
    gone = out / "runs" / sw._key("cel0", 8, 0.7) / "result.json"
    gone.unlink()
    assert len(sw.sweep(out, images=images, plots=False, **ARGS)["rows"]) == 8 and gone.exists()
    with pytest.raises(ValueError, match="n_patches"):
        sw.sweep(out, images=images, **dict(ARGS, n_patches=800))


def _row(pen, k, nz, err):
    return {"penalty": pen, "n_atoms": k, "nonzeros_per_patch": nz, "relative_error": err}


def test_atoms_l1_needs_worked_by_hand():
    """l1 at 64 and 256 atoms, CEL0 at 64, each with two lam: at 4 non-zeros per patch
    (halfway between 2 and 8 in log) l1's errors are 0.4 (64) and 0.3 (256), CEL0's 0.35;
    interpolating in log atoms l1 needs exp(ln 64 + ln 4 / 2) = 128 atoms: ratio 2."""
    rows = [
        _row("l1", 64, 2, 0.5),
        _row("l1", 64, 8, 0.3),
        _row("l1", 256, 2, 0.4),
        _row("l1", 256, 8, 0.2),
        _row("cel0", 64, 2, 0.45),
        _row("cel0", 64, 8, 0.25),
    ]
    assert sw.error_at_sparsity(rows, "l1", 64, 4) == pytest.approx(0.4)
    need, bound = sw.atoms_to_match(rows, "cel0", 64, 4)
    assert need == pytest.approx(128) and bound is None
    rows[4:] = [_row("cel0", 64, 2, 0.3), _row("cel0", 64, 8, 0.1)]  # better than l1 at 256
    assert sw.atoms_to_match(rows, "cel0", 64, 4) == (256.0, ">")
    assert sw.error_at_sparsity(rows, "l1", 64, 16) is None  # outside the sweep
    assert math.isclose(sw._interp_log([1, 100], [0.0, 1.0], 10), 0.5)


def test_bad_options_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(sw, "run_one", lambda *a, **k: pytest.fail("work started"))
    for kw, match in (
        ({"atoms": (0,)}, "atoms"),
        ({"penalties": ("l3",)}, "penalty"),
        ({"thresholds": (-1.0,)}, "thresholds"),
        ({"chunk": 0}, "chunk"),
        ({"learn_tol": -1.0}, "learn_tol"),
        ({"analyse_max": -1}, "analyse_max"),
    ):
        with pytest.raises(ValueError, match=match):
            sw.sweep(tmp_path / "x", **dict(ARGS, **kw))
    with pytest.raises(FileNotFoundError):
        sw.sweep(tmp_path / "x", images=tmp_path / "missing", **ARGS)
    assert not (tmp_path / "x").exists()


def _result(pen, k, thr, nz):
    return {
        "penalty": pen,
        "n_atoms": k,
        "threshold": thr,
        "relative_error": 1.0 if nz == 0 else 0.5,
        "active_fraction": nz / k,
        "nonzeros_per_patch": nz,
    }


def _write_runs(out, results):
    for r in results:
        run = out / "runs" / sw._key(r["penalty"], r["n_atoms"], r["threshold"])
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(r))


@pytest.mark.filterwarnings("error")  # nothing cryptic either (log axis of zeros)
def test_summary_with_all_zero_codes_is_written(tmp_path):
    """Every run with all-zero codes (a large --thresholds) once failed after all the
    learning with "min() arg is an empty sequence" and no sweep.json. Now the summary is
    written without sparsity levels, with a note that names --thresholds."""
    _write_runs(tmp_path, [_result("l1", 4, 50.0, 0), _result("cel0", 4, 50.0, 0)])
    res = sw.summarise(tmp_path)
    assert res["sparsity_levels"] == [] and res["units"] == [] and res["error_ratio"] == []
    assert "--thresholds" in res["note"]
    assert (tmp_path / "sweep.csv").read_text().count("\n") == 3
    assert json.loads((tmp_path / "sweep.json").read_text())["note"] == res["note"]
    assert (tmp_path / "tradeoff_by_atoms.png").is_file()


@pytest.mark.parametrize(
    "where, text, match",
    [
        ("config.json", "", r"config\.json is not valid JSON; remove it or choose another --out"),
        ("config.json", "[1, 2]", r"holds a run of another command \(not a recipe in its config"),
        ("config.json", '{"lam": 0.3, "n_atoms": 4}', r"another command \(lam, n_atoms in its"),
        ("runs/l1_8_0.7/result.json", '{"penal', r"l1_8_0\.7.result\.json is not valid JSON"),
        ("runs/l1_8_0.7/result.json", "[]", r"result\.json is not a run's result"),
        ("runs/l1_8_0.7/result.json", '{"penalty": "l1"}', r"result\.json is not a run's res"),
    ],
)
def test_damaged_json_under_out_named_before_any_work(tmp_path, monkeypatch, where, text, match):
    """A damaged or foreign config.json, or a damaged result.json of another run, under a
    sweep's --out once gave json's bare message (naming no file) or a traceback, the
    latter after the grid's runs were learned. Now the file and the fix are named before
    any work, and nothing there is replaced."""
    out = tmp_path / "sw"
    (out / where).parent.mkdir(parents=True, exist_ok=True)
    (out / where).write_text(text)
    monkeypatch.setattr(sw, "held_out", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=match) as e:
        sw.sweep(out, **dict(ARGS, penalties=("l1",), atoms=(8,), thresholds=(0.5,)))
    assert str(out / where) in str(e.value) or str(out) in str(e.value)
    assert "--out" in str(e.value)
    assert (out / where).read_text() == text
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [Path(where).name]
