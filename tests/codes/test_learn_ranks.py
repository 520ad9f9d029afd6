"""Data-parallel dictionary learning when the ranks do not call alike (the tenth bad-input
probe): uneven shards, different options or shapes, a rank with nothing to learn from, and
a fit of one process alone inside a process group. Every case used to hang until the
group's timeout, abort gloo, or silently give the ranks different dictionaries."""

import json

import numpy as np
import pytest

from shrinkage.codes import SparseCoding, learn_dictionary
from tests._gloo import run_gloo


def _outcome(fn):
    """("ok", result) or ("ValueError", message)."""
    try:
        return ["ok", fn()]
    except ValueError as e:
        return ["ValueError", str(e)]


def _worker(rank, world, folder):
    import torch.distributed as dist

    rng = np.random.default_rng(rank)
    base = dict(n_epochs=3, batch_size=300, learn_tol=0, shuffle=False, init="data")
    out = {}
    # uneven shards (300 rows and 5) with resampling on: every rank the same dictionary
    X = rng.standard_normal((300 if rank == 0 else 5, 12))
    st = learn_dictionary(X, 40, "l1", 0.5, resample_every=1, min_usage=0.2, **base)
    out["uneven"] = [st.D.numpy().tolist(), st.n_resampled]
    # another lam on rank 1; another number of features on rank 1; an empty shard on rank 1
    X = rng.standard_normal((64, 12))
    lam = 0.1 if rank == 0 else 0.3
    out["lam"] = _outcome(lambda: learn_dictionary(X, 6, "l1", lam, **base).step)
    Xf = X if rank == 0 else X[:, :10]
    out["features"] = _outcome(lambda: learn_dictionary(Xf, 6, "l1", 0.1, **base).step)
    Xe = X if rank == 0 else X[:0]
    out["empty"] = _outcome(lambda: learn_dictionary(Xe, 6, "l1", 0.1, **base).step)
    # this process alone, inside the group: no collective, each rank its own dictionary
    if rank == 0:
        alone = learn_dictionary(X, 6, "l1", 0.1, distributed=False, **base)
        est = SparseCoding(6, lam=0.1, n_epochs=2, distributed=False, random_state=0).fit(X)
        out["alone"] = [alone.D.numpy().tolist(), est.components_.shape[0]]
    dist.barrier()
    with open(f"{folder}/rank{rank}.json", "w") as fh:
        json.dump(out, fh)


@pytest.mark.slow
def test_ranks_that_do_not_call_alike_are_named_on_every_rank(tmp_path):
    run_gloo(_worker, str(tmp_path), timeout=180)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    # uneven shards: the same dictionary and the same count of resampled atoms everywhere
    np.testing.assert_array_equal(np.array(r0["uneven"][0]), np.array(r1["uneven"][0]))
    assert r0["uneven"][1] == r1["uneven"][1] > 0
    for r in (r0, r1):
        assert r["lam"][0] == "ValueError" and "lam is [0.1, 0.3]" in r["lam"][1]
        assert r["features"][0] == "ValueError" and "n_features is [12, 10]" in r["features"][1]
        assert "distributed=False" in r["lam"][1]
    assert r0["empty"][0] == "ValueError" and "rank 1 of the process group" in r0["empty"][1]
    assert r1["empty"][0] == "ValueError" and "X has no rows" in r1["empty"][1]
    rng = np.random.default_rng(0)  # rank 0's draws replayed: its second X, learned here
    rng.standard_normal((300, 12))
    X = rng.standard_normal((64, 12))
    base = dict(n_epochs=3, batch_size=300, learn_tol=0, shuffle=False, init="data")
    alone = learn_dictionary(X, 6, "l1", 0.1, **base)
    np.testing.assert_allclose(np.array(r0["alone"][0]), alone.D.numpy(), atol=1e-12)
    assert r0["alone"][1] == 6


def test_distributed_is_checked():
    X = np.random.default_rng(0).standard_normal((32, 4))
    with pytest.raises(ValueError, match="distributed must be None, True or False, got 'yes'"):
        learn_dictionary(X, 2, distributed="yes")
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        learn_dictionary(X, 2, distributed=True)
    with pytest.raises(ValueError, match="distributed must be None, True or False"):
        SparseCoding(2, distributed=1.5).fit(X)
