"""Copies, pickles and state_dicts of the public objects (the ninth bad-input probe): a copy
is independent of its original, and a state restores the computation it was saved from."""

import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from shrinkage.activations import ActivationSparsity, SparsityControl, edge_of_chaos
from shrinkage.codes import SparseCoding
from shrinkage.models import mlp
from shrinkage.thresholds import CST, CReLU, ShiftedReLU
from shrinkage.weights import Sparsifier


def _sparse_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    return model, Sparsifier(model, 0.5)


@pytest.mark.parametrize("squashed", ["copy of the Sparsifier", "original", "one of two copies"])
def test_squash_leaves_deep_copies_working(squashed):
    """A deep copy shares the class torch.parametrize generated; squash deleted the weight
    property from it, and every other copy failed with "no attribute 'weight'"."""
    model, sp = _sparse_mlp()
    x = torch.randn(3, 6)
    ref = model(x)
    best, sp2 = copy.deepcopy(model), copy.deepcopy(sp)
    if squashed == "copy of the Sparsifier":
        snap = copy.deepcopy(sp).squash()
        assert torch.equal(snap(x), ref)
    elif squashed == "original":
        sp.squash()
        assert type(model[0]) is nn.Linear
    else:
        sp2.squash()
    for m in (model, best, sp2.model):
        assert torch.equal(m(x), ref)
    if squashed != "original":
        sp.step()  # the original trains on
        assert torch.equal(best(x), ref)


def test_a_copy_of_a_controlled_model_does_not_move_the_originals_thresholds():
    """Deep copies carried the controller's hook, bound to the original: a copy run in train
    mode moved the original's taus on data it never saw; a model with the hook could not be
    saved whole."""
    torch.manual_seed(0)
    net = mlp(3, 32, edge_of_chaos("crelu", 0.85, m=1.0), in_features=20, num_classes=3)
    ctl = SparsityControl(net, sparsity=0.85, momentum=0.5)
    before = ctl.taus
    twin = copy.deepcopy(net)
    twin.train()
    twin(5 * torch.randn(256, 20))
    ctl.step()
    assert ctl.taus == before
    torch.save(twin, io.BytesIO())  # raised: a local closure cannot be pickled
    # the original is still controlled
    net.train()
    net(5 * torch.randn(256, 20))
    ctl.step()
    assert ctl.taus != before


def test_a_copy_of_a_measured_model_counts_into_its_own_meter():
    net = nn.Sequential(nn.Linear(4, 8), ShiftedReLU(0.5), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    with ActivationSparsity(net) as meter:
        net(x)
        twin = copy.deepcopy(net)
        twin(x)
        twin(x)
        assert meter._total == [16 * 8]
        pickle.dumps(twin)


def test_components_is_where_partial_fit_continues_from_on_every_copy():
    """components_ was a view of the learning state: an in-place edit steered the original's
    next partial_fit but not its pickled or deep-copied twin's, and an assigned dictionary
    was ignored (scikit-learn continues from components_)."""
    rng = np.random.default_rng(0)
    X, X2 = rng.standard_normal((200, 16)), rng.standard_normal((100, 16))
    sc = SparseCoding(n_atoms=8, lam=0.2, n_epochs=3, batch_size=64, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.partial_fit(X)
        cp, pk = copy.deepcopy(sc), pickle.loads(pickle.dumps(sc))
        for est in (sc, cp, pk):
            est.components_[0] = 0.0
            est.components_[0, 0] = 1.0
            est.partial_fit(X2)
        np.testing.assert_array_equal(sc.components_, cp.components_)
        np.testing.assert_array_equal(sc.components_, pk.components_)
        new = np.linalg.qr(rng.standard_normal((16, 16)))[0][:8]
        fresh = SparseCoding(n_atoms=8, lam=0.2, n_epochs=3, batch_size=64, random_state=0)
        fresh.partial_fit(X)
        old = fresh.components_.copy()
        fresh.components_ = new.copy()
        fresh.partial_fit(X2)
    # one pass from `new`: much closer to it than to the dictionary it replaced
    assert np.abs((fresh.components_ * new).sum(1)).mean() > 0.8
    assert np.abs((fresh.components_ * old).sum(1)).mean() < 0.6
    fresh.components_ = np.ones((3, 16))
    with pytest.raises(ValueError, match=r"components_ must be a finite array of shape \(8, 16\)"):
        fresh.partial_fit(X2)


def test_a_clipped_activations_state_restores_its_clipping_level():
    """m was not in the state: a CReLU(m=1) state loaded into CReLU(m=3) matched every key
    and computed something else."""
    from shrinkage._module_state import _bits

    h = 2 * torch.randn(100)
    a, b = CReLU(0.3, m=1.0), CReLU(0.0, m=3.0)
    b.load_state_dict(a.state_dict())
    assert b.m == 1.0 and torch.equal(a(h), b(h))
    c = CST(0.0, m=2.5)
    c.load_state_dict(CST(0.2, m=1.5).state_dict())
    assert c.m == 1.5
    # a state saved before m was kept still loads (with the module's own m)
    old = {k: v for k, v in a.state_dict().items() if k != "m_saved"}
    c = CReLU(0.0, m=2.0)
    c.load_state_dict(old)
    assert c.m == 2.0 and torch.equal(c.tau, a.tau)
    state = a.state_dict()
    state["m_saved"] = _bits(float("nan"))
    with pytest.raises(ValueError, match="saved m must be > 0, got nan"):
        b.load_state_dict(state)
    # a precision move leaves the saved level exact; tracing and ONNX see a plain buffer
    assert CReLU(0.0, m=1.327).half().state_dict()["m_saved"].dtype == torch.int64
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    assert CReLU(0.0, m=9.0).load_state_dict(torch.load(buf, weights_only=True)) is not None
    traced = torch.jit.trace(nn.Sequential(nn.Linear(3, 3), CReLU(0.1, m=1.0)), torch.randn(2, 3))
    assert traced(torch.randn(2, 3)).shape == (2, 3)


def test_an_edge_of_chaos_network_state_restores_its_computation():
    x = torch.randn(64, 20)
    torch.manual_seed(0)
    net = mlp(4, 32, edge_of_chaos("crelu", 0.85, m=1.0), in_features=20, num_classes=3)
    for cfg in (edge_of_chaos("crelu", 0.85, m=0.5), edge_of_chaos("crelu", 0.7, m=1.0)):
        torch.manual_seed(1)
        other = mlp(4, 32, cfg, in_features=20, num_classes=3)
        other.load_state_dict(net.state_dict())
        torch.testing.assert_close(other(x), net(x), rtol=0, atol=0)
