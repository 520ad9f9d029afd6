"""Gradients of the operator family and of the sparse-training paths (the sixth probe):
each case once gave a NaN, a wrong value or a torch-internal error."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from shrinkage.activations import init_
from shrinkage.thresholds import SoftThreshold, penalty, prox, shifted_relu, soft_threshold, top_k
from shrinkage.weights import Sparsifier


def _penalty_norm(model, x):
    loss = model(x).square().sum()
    grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
    return sum(g.square().sum() for g in grads)


@pytest.mark.parametrize("method", ["gmp", "st3"])
def test_second_order_gradients_do_not_depend_on_the_weights_layout(method):
    """A gradient penalty through gmp's C mask kept no graph for the weight (norm 1259
    against 4743 for the same values laid out non-contiguously)."""
    out = []
    for contiguous in (True, False):
        torch.manual_seed(0)
        lin = nn.Linear(6, 4)
        if not contiguous:
            lin.weight = nn.Parameter(lin.weight.detach().t().contiguous().t())
        Sparsifier(lin, 0.5, method=method)
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
        raw = lin.parametrizations.weight.original
        (g,) = torch.autograd.grad(_penalty_norm(lin, x), [raw])
        out.append(g)
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-4)  # float32 sums' order


@pytest.mark.parametrize("method", ["gmp", "st3"])
def test_torch_func_transforms_run_through_the_compiled_paths(method):
    """torch.func.grad through the C passes raised torch's functorch error; they now take
    the torch path under a transform, with the same gradient as plain autograd."""
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    Sparsifier(lin, 0.5, method=method)
    x = torch.randn(5, 6)
    params = dict(lin.named_parameters())
    raw = "parametrizations.weight.original"

    def loss(p):
        return torch.func.functional_call(lin, p, (x,)).square().sum()

    g = torch.func.grad(loss)(params)[raw]
    lin(x).square().sum().backward()
    torch.testing.assert_close(g, params[raw].grad)


def test_masked_methods_give_pruned_entries_no_gradient():
    """soft_nograd: the entry at |w| == tau (one per step, tau being a weight's value) and the
    entries pruned to break ties got the full gradient; now none does."""
    torch.manual_seed(0)
    for method, weights in (("soft_nograd", None), ("str", torch.full((2, 4), 0.5))):
        lin = nn.Linear(4, 2, bias=False)
        if weights is not None:
            with torch.no_grad():
                lin.weight.copy_(weights)
        kw = {"rescale": False} if method == "soft_nograd" else {}
        sp = Sparsifier(lin, 0.5, method=method, **kw)
        lin(torch.randn(3, 4)).sum().backward()
        eff = sp.effective_weights()[sp.layer_names[0]]
        grad = lin.parametrizations.weight.original.grad
        pruned = eff == 0
        assert int(pruned.sum()) == 4
        assert torch.all(grad[pruned] == 0), (method, grad)


def test_prox_gradients_at_lam_zero_and_tiny_inputs_are_finite():
    """prox('l2/3') with a tensor lam holding zeros: x's gradient was NaN everywhere (it is
    the identity's, 1, there); prox('l1/2') at lam 0 on |x| ~ 1e-15 (float32) was NaN."""
    x = torch.tensor([-2.0, 0.3, 1.0, 10.0], dtype=torch.float64, requires_grad=True)
    y = prox("l2/3", x, torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all() and g[:2].tolist() == [1.0, 1.0]
    h = 1e-6  # the entries with lam > 0 against a central difference
    for i in (2, 3):
        e = torch.zeros(4, dtype=torch.float64)
        e[i] = h
        lam = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64)
        fd = (prox("l2/3", x.detach() + e, lam) - prox("l2/3", x.detach() - e, lam))[i] / (2 * h)
        assert float(g[i]) == pytest.approx(float(fd), rel=1e-5)
    for lam in (0.0, 1e-12):
        for v in (1e-8, 1e-15, 1e-20):
            t = torch.tensor([v, 1.0], requires_grad=True)
            (gt,) = torch.autograd.grad(prox("l1/2", t, lam).sum(), t)
            assert torch.isfinite(gt).all(), (lam, v, gt)


def test_penalty_and_top_k_gradients_at_zero():
    """lam |u|^p (p = 1/2, 2/3) backpropagated 0 * inf = NaN at u = 0, and l0 and top_k(x, 0)
    had no graph (backward raised); now gradient 0 at 0, the power's derivative elsewhere."""
    w = torch.tensor([0.0, 0.5, -1.0], dtype=torch.float64, requires_grad=True)
    for name, p in (("l1/2", 0.5), ("l2/3", 2.0 / 3.0)):
        (g,) = torch.autograd.grad(penalty(name, w, 0.1).sum(), w)
        want = [0.0] + [0.1 * p * abs(v) ** (p - 1) * math.copysign(1, v) for v in (0.5, -1.0)]
        torch.testing.assert_close(g, torch.tensor(want, dtype=torch.float64))
    for fn in (lambda: penalty("l0", w, 0.1).sum(), lambda: top_k(w, 0).sum()):
        (g,) = torch.autograd.grad(fn(), w)
        assert g.tolist() == [0.0, 0.0, 0.0]


def test_a_learned_threshold_below_zero_comes_back():
    """The forward reads tau clamped at 0; clamp's gradient (0 below 0) froze a tau pushed
    negative for good. Its gradient now passes, so a loss asking for more comes through."""
    act = SoftThreshold(tau=0.5, learnable_tau=True)
    with torch.no_grad():
        act.tau.fill_(-1.0)
    x = torch.linspace(-2, 2, 41)
    act(x).abs().sum().backward()  # a larger tau lowers this loss: the gradient says so
    assert float(act.tau.grad) < 0
    torch.testing.assert_close(act(x), soft_threshold(x, 0.0))


def test_kinks_and_complex_inputs():
    """soft_threshold's gradient at |x| == tau is 0 as shifted_relu's (it was 1); a module
    given a complex input names it (torch's sign error before)."""
    x = torch.tensor([0.5, -0.5, 1.5], requires_grad=True)
    (g,) = torch.autograd.grad(soft_threshold(x, 0.5).sum(), x)
    assert g.tolist() == [0.0, 0.0, 1.0]
    (g2,) = torch.autograd.grad(shifted_relu(x, 0.5).sum(), x)
    assert g2[0] == g[0] == 0.0
    with pytest.raises(TypeError, match="SoftThreshold: x must be a real tensor"):
        SoftThreshold(tau=0.5)(torch.ones(3, dtype=torch.complex64))


def test_init_after_a_sparsifier_draws_the_raw_weights():
    """init_ on a parametrized model drew into a temporary (the raw weights kept their
    values while the biases were re-drawn); it now draws the raw weights."""
    torch.manual_seed(0)
    lin = nn.Linear(400, 300)
    with torch.no_grad():
        lin.weight.fill_(0.123)
    Sparsifier(lin, 0.5)
    init_(lin, SimpleNamespace(sigma_w=2.0, sigma_b=0.1))
    raw = lin.parametrizations.weight.original
    assert float(raw.std() * math.sqrt(400) / 2.0) == pytest.approx(1.0, abs=0.02)


def test_a_learned_threshold_on_half_precision_input_sums_its_gradient_in_float32():
    """tau's gradient sums over every unit: in float16 it was -inf past 65,504 kept units
    (bfloat16: -70,144 for -70,000); the output stays in the input's dtype."""
    for dtype in (torch.float16, torch.bfloat16):
        act = SoftThreshold(tau=0.5, learnable_tau=True)
        x = torch.full((70_000,), 2.0, dtype=dtype)
        y = act(x)
        assert y.dtype == dtype
        y.sum().backward()
        assert float(act.tau.grad) == -70_000.0
