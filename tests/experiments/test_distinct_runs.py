"""A list of runs that names one run twice is refused before any work: it would train the
run twice, or read one run's result for the other."""

import pytest

from shrinkage.experiments.codes import CompareRecipe
from shrinkage.experiments.codes_sweep import SweepRecipe
from shrinkage.experiments.weights import TrainConfig, sweep


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("atoms", (64, 128, 64), "atoms must be distinct: 64 is repeated"),
        ("penalties", ("l1", "cel0", "l1"), "penalties must be distinct: 'l1' is repeated"),
        ("thresholds", (0.5, 0.5000001), "0.5000001 and 0.5 name the same run"),
        ("thresholds", (0.5, float("inf")), "thresholds must be finite"),
    ],
)
def test_codes_sweep_refuses_a_run_named_twice(field, value, match):
    with pytest.raises(ValueError, match=match):
        SweepRecipe(**{field: value}).check()


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("atoms", (32, 32), "atoms must be distinct"),
        ("thresholds", (0.3, 0.3), "thresholds must be distinct"),
        ("thresholds", (-0.1,), "thresholds must be >= 0"),
        ("thresholds", (), "thresholds is empty"),
    ],
)
def test_codes_compare_checks_its_lists(field, value, match):
    with pytest.raises(ValueError, match=match):
        CompareRecipe(**{field: value}).check()


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(methods=["st3", "gmp", "st3"]), "methods must be distinct: 'st3'"),
        (dict(sparsities=[0.9, 0.9]), "sparsities must be distinct: 0.9 is repeated"),
        (dict(sparsities=[0.9, 0.90000001]), "share the run folder 'lenet5_st3_s0.9_seed0'"),
        (dict(seeds=[1, 1]), "seeds must be distinct: 1 is repeated"),
    ],
)
def test_weights_sweep_refuses_a_run_named_twice_before_making_its_folder(tmp_path, kw, match):
    args = dict(models=["lenet5"], methods=["st3"], sparsities=[0.9], seeds=[0])
    args.update(kw)
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=match):
        sweep(TrainConfig(), out=out, **args)
    assert not out.exists()
