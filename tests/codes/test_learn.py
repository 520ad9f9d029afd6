"""Dictionary learning: recovers a planted dictionary; data-parallel equals single process."""

import numpy as np
import pytest

from shrinkage.codes import encode, learn_dictionary, relative_error
from tests._gloo import run_gloo


def _planted(n=1500, k=8, p=16, seed=0):
    rng = np.random.default_rng(seed)
    D0 = rng.standard_normal((k, p))
    D0 /= np.linalg.norm(D0, axis=1, keepdims=True)
    Z = np.zeros((n, k))
    for i in range(n):
        s = rng.choice(k, 2, replace=False)
        Z[i, s] = rng.choice([-1, 1], 2) * rng.uniform(1.0, 2.0, 2)
    return Z @ D0 + 0.01 * rng.standard_normal((n, p)), D0


@pytest.mark.parametrize(
    "update,penalty,found", [("gradient", "l1", 8), ("gradient", "cel0", 8), ("bcd", "l1", 6)]
)
def test_recovers_planted_dictionary(update, penalty, found):
    """True atoms are found (|cos| > 0.95) and the energy goes down. (The exact block sweeps
    of "bcd" fall into poor local minima more often than gradient steps on this problem.)"""
    X, D0 = _planted()
    st = learn_dictionary(
        X,
        8,
        penalty,
        0.2,
        n_epochs=8,
        batch_size=128,
        update=update,
        lr=2.0,
        random_state=1,
        init="data",
        learn_tol=0,  # the update rules alone, over a fixed number of passes
        resample_every=0,
    )
    D = st.D.numpy()
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0, atol=1e-12)
    cos = np.abs(D0 @ D.T).max(1)
    assert (cos > 0.95).sum() >= found, cos
    assert np.mean(st.history[-5:]) < 0.75 * st.history[0]
    assert relative_error(X, D, encode(X, D, penalty, 0.2)) < 0.1


def _worker(rank, world, shards, init, kws, folder):
    for name, kw in kws.items():
        st = learn_dictionary(shards[rank], init.shape[0], init=init, shuffle=False, **kw)
        if rank == 0:
            np.save(f"{folder}/{name}.npy", st.D.numpy())


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path):
    """2 processes (gloo, 127.0.0.1), each encoding its shard of every batch, end with the
    dictionary one process learns on the concatenated batches (both update rules)."""
    X, _ = _planted(n=256, seed=3)
    b = 32  # rows per process per batch
    shards = [np.ascontiguousarray(X[r::2]) for r in range(2)]
    full = np.concatenate(
        [
            np.concatenate([s[j * b : (j + 1) * b] for s in shards])
            for j in range(len(shards[0]) // b)
        ]
    )
    init = np.random.default_rng(0).standard_normal((6, X.shape[1]))
    kws = {
        u: dict(
            penalty="l1/2",
            lam=0.05,
            n_epochs=2,
            lr=1.0,
            update=u,
            tol=1e-8,
            max_iter=500,
            batch_size=b,
            learn_tol=0,
        )
        for u in ("gradient", "bcd")
    }
    run_gloo(_worker, shards, init, kws, str(tmp_path))
    for name, kw in kws.items():
        single = learn_dictionary(full, 6, init=init, shuffle=False, **dict(kw, batch_size=2 * b))
        D = np.load(tmp_path / f"{name}.npy")
        np.testing.assert_allclose(D, single.D.numpy(), atol=1e-8)
        assert np.abs(D - init / np.linalg.norm(init, axis=1, keepdims=True)).max() > 1e-2


@pytest.mark.parametrize("k", [64, 200])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_block_sweep_matches_the_python_loop(dtype, k):
    """The dictionary update in C equals the per-atom loop it replaces, unused atoms
    (A_jj = 0) included: in one pass (64 atoms) and in blocks of 64 with one BLAS product
    each (200 atoms: three blocks and a short one)."""
    import torch

    from shrinkage.codes import _cd, _learn

    if _cd.load() is None:
        pytest.skip("no C compiler")
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(300, k, generator=gen, dtype=dt) * (torch.rand(300, k, generator=gen) < 0.1)
    unused = [5, k - 3]  # the first block and the last
    Z[:, unused] = 0
    X = torch.randn(300, 32, generator=gen, dtype=dt)
    A, B = Z.T @ Z / 300, Z.T @ X / 300
    D0 = torch.randn(k, 32, generator=gen, dtype=dt)
    D0 /= D0.norm(dim=1, keepdim=True)
    fast = _learn._bcd_sweep(D0.clone(), A, B)
    loop = D0.clone()
    for j in range(k):
        if A[j, j] > 1e-10:
            loop[j] += (B[j] - A[j] @ loop) / A[j, j]
            loop[j] /= loop[j].norm()
    torch.testing.assert_close(fast, loop, rtol=0, atol=1e-5 if dtype == "float32" else 1e-12)
    assert torch.equal(fast[unused], D0[unused]) and not torch.equal(fast[4], D0[4])


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_statistics_from_the_nonzeros_equal_the_dense_products(dtype, threads):
    """R = X - Z D, Z^T Z and Z^T X from the codes' non-zeros equal torch's dense products
    (rows and atoms with no non-zero included), on one thread and shared among three;
    over a quarter non-zero: None (dense)."""
    import torch

    from shrinkage.codes import _cd

    if _cd.load() is None:
        pytest.skip("no C compiler")
    _check_statistics(torch, _cd, dtype, threads)


def _check_statistics(torch, _cd, dtype, threads):
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(1)
    Z = torch.randn(130, 90, generator=gen, dtype=dt) * (torch.rand(130, 90, generator=gen) < 0.08)
    Z[7] = 0.0  # a sample with no code
    Z[:, 11] = 0.0  # an atom nobody uses
    X = torch.randn(130, 40, generator=gen, dtype=dt)
    D = torch.randn(90, 40, generator=gen, dtype=dt)
    R, AZ, BZ = _cd.code_stats(Z, X, D, threads=threads)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(R, X - Z @ D, **tol)
    torch.testing.assert_close(AZ, Z.T @ Z, **tol)
    torch.testing.assert_close(BZ, Z.T @ X, **tol)
    assert torch.equal(R[7], X[7]) and not AZ[11].any() and not BZ[11].any()
    dense = torch.randn(20, 10, generator=gen, dtype=dt)
    assert _cd.code_stats(dense, X[:20], D[:10]) is None


def test_the_window_floor_holds_enough_uses_of_each_atom(monkeypatch):
    """Many atoms and sparse codes (each atom in few samples of a batch): the statistics'
    window is never shorter than the batches that hold about 80 uses of the mean atom, so
    with fewer updates than that A keeps every batch's Z^T Z / m (Mairal et al.'s weights
    1 - 1/t); with few atoms the floor is 1 (Kesten's window alone)."""
    import torch

    from shrinkage.codes import _cd, _learn

    assert _learn._min_window(torch.full((100,), 12.0)) == 1  # 12 uses per atom: 7 batches
    assert _learn._min_window(torch.full((100,), 2.0)) == 40
    assert _learn._min_window(torch.zeros(100)) == _learn._MAX_MIN_WINDOW
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((96, 16)))
    D = torch.as_tensor(rng.standard_normal((120, 16)))
    st = _learn.LearnState(D=D / D.norm(dim=1, keepdim=True))
    seen = []
    real = _cd.code_stats
    monkeypatch.setattr(_cd, "code_stats", lambda *a: seen.append(real(*a)) or seen[-1])
    for b in range(3):
        _learn.learn_step(st, X[32 * b : 32 * (b + 1)], "l1", 0.8)
        assert st.min_window > 10
    assert all(s is not None for s in seen)
    # beta_t = 1 - 1 / min(t + 1, window): 0, 1/2, 2/3 (Kesten's window alone would be 1:
    # beta 0, the last batch only)
    want = ((seen[0][1] / 2 + seen[1][1]) * (2 / 3) + seen[2][1]) / 32
    torch.testing.assert_close(st.A, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_learners_direct_l1_codes_are_encodes(dtype):
    """learn_step's l1 codes come from the compiled CD without encode's per-call checks:
    bitwise encode's codes, with the kernel's energies (equal to objective's); another
    penalty, other options or a zero atom go through encode (which names the atom)."""
    import warnings

    import torch

    from shrinkage.codes import _cd, _learn, encode, objective

    if _cd.load() is None:
        pytest.skip("no C compiler")
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(2)
    D = torch.randn(40, 16, generator=gen, dtype=dt)
    D /= D.norm(dim=1, keepdim=True)
    X = 0.5 * torch.randn(50, 16, generator=gen, dtype=dt)
    kw = {"max_iter": 200, "tol": 1e-3}
    Z, E = _learn._batch_codes(X, D, "l1", 0.2, kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(Z, encode(X, D, "l1", 0.2, **kw))
    ref = objective(X.double(), D.double(), Z.double(), "l1", 0.2, reduce="none")
    torch.testing.assert_close(E, ref, rtol=1e-5 if dtype == "float32" else 1e-10, atol=1e-6)
    assert _learn._batch_codes(X, D, "l0", 0.2, kw)[1] is None
    assert _learn._batch_codes(X, D, "l1", 0.2, {**kw, "solver": "fista"})[1] is None
    D[3] = 0.0
    with pytest.raises(ValueError, match="zero atom"):
        _learn._batch_codes(X, D, "l1", 0.2, kw)
