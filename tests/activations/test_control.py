"""SparsityControl: the thresholds track the target quantile while a network trains."""

import pytest
import torch
from torch import nn

from shrinkage.activations import SparsityControl
from shrinkage.thresholds import CST, CReLU, ShiftedReLU


def _zeros(net, x):
    with torch.no_grad():
        return float((net(x) == 0).double().mean())


def test_one_step_at_momentum_one_sets_the_batch_quantile():
    torch.manual_seed(0)
    act = CReLU(tau=0.0, m=2.0)
    ctl = SparsityControl(nn.Sequential(act), sparsity=0.9, momentum=1.0, max_samples=10**6)
    h = torch.randn(4000, 50) * 3 + 1
    act(h)
    ctl.step()
    ref = torch.quantile(h.flatten(), 0.9)  # interpolated: within one order statistic
    assert float(act.tau) == pytest.approx(float(ref), abs=1e-3)
    assert _zeros(act, torch.randn(4000, 50) * 3 + 1) == pytest.approx(0.9, abs=0.01)


def test_subsample_spreads_over_units():
    # 64 units whose scales differ: a subsample that kept a few units would miss the quantile
    act = CReLU(tau=0.0, m=100.0)
    ctl = SparsityControl(act, sparsity=0.5, momentum=1.0, max_samples=4096)
    h = torch.randn(1024, 64) * torch.linspace(0.1, 10.0, 64)
    act(h)
    ctl.step()
    ref = float(torch.quantile(h.flatten(), 0.5))
    assert abs(float(act.tau) - ref) < 0.1


def test_odd_activation_uses_the_magnitude():
    act = CST(tau=0.1, m=5.0)
    ctl = SparsityControl(act, sparsity=0.8, momentum=1.0)
    h = torch.randn(20000)
    act(h)
    ctl.step()
    # P(|z| < tau) = 0.8 for z ~ N(0, 1): tau = Phi^-1(0.9) = 1.2816
    assert float(act.tau) == pytest.approx(1.2816, abs=0.03)


def test_eval_mode_and_no_forward_change_nothing():
    act = ShiftedReLU(tau=0.3)
    ctl = SparsityControl(act, sparsity=0.7, momentum=0.5)
    ctl.step()
    act.eval()
    act(torch.randn(100))
    ctl.step()
    assert float(act.tau) == pytest.approx(0.3)


def test_training_holds_the_target_where_fixed_thresholds_drift():
    def run(control):
        torch.manual_seed(1)
        net = nn.Sequential(
            nn.Linear(20, 64),
            CReLU(tau=1.04, m=1.0),
            nn.Linear(64, 64),
            CReLU(tau=1.04, m=1.0),
            nn.Linear(64, 1),
        )
        ctl = SparsityControl(net, 0.85, momentum=0.2) if control else None
        opt = torch.optim.Adam(net.parameters(), lr=3e-2)
        x = torch.randn(512, 20)
        y = x[:, :1] * 3
        for _ in range(150):
            loss = (net(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ctl:
                ctl.step()
        net.eval()
        zs = []
        hooks = [
            m.register_forward_hook(lambda m, i, o: zs.append(float((o == 0).double().mean())))
            for m in net
            if isinstance(m, CReLU)
        ]
        with torch.no_grad():
            net(torch.randn(2048, 20))
        for h in hooks:
            h.remove()
        return zs

    free, held = run(False), run(True)
    assert max(abs(z - 0.85) for z in held) < 0.03
    assert max(abs(z - 0.85) for z in free) > 0.05


def test_taus_are_saved_with_the_model():
    net = nn.Sequential(nn.Linear(4, 8), CReLU(tau=0.0, m=1.0))
    ctl = SparsityControl(net, 0.5, momentum=1.0)
    net(torch.randn(64, 4))
    ctl.step()
    twin = nn.Sequential(nn.Linear(4, 8), CReLU(tau=0.0, m=1.0))
    twin.load_state_dict(net.state_dict())
    assert float(twin[1].tau) == float(net[1].tau) != 0.0


@pytest.mark.parametrize(
    "model,kw,match",
    [
        (nn.Sequential(nn.Linear(2, 2), nn.ReLU()), {}, "no thresholding activation"),
        (CReLU(tau=0.5, m=1.0, learnable_tau=True), {}, "learnable_tau"),
        (CReLU(tau=0.5, m=1.0), {"sparsity": 1.0}, "sparsity"),
        (CReLU(tau=0.5, m=1.0), {"momentum": 0.0}, "momentum"),
        (CReLU(tau=0.5, m=1.0), {"momentum": 1.5}, "momentum"),
        (CReLU(tau=0.5, m=1.0), {"max_samples": 0}, "max_samples"),
    ],
)
def test_bad_arguments(model, kw, match):
    with pytest.raises(ValueError, match=match):
        SparsityControl(model, **{"sparsity": 0.8, **kw})


def test_unit_census_against_direct_counts():
    from shrinkage.activations import unit_census

    torch.manual_seed(3)
    lin = nn.Linear(10, 30)
    act = CST(tau=0.5, m=1.0)
    net = nn.Sequential(lin, act)
    x = torch.randn(200, 10)
    with torch.no_grad():
        lin.bias[:5] = -50.0  # |h| far above tau + m on every input: always on, saturated
        lin.bias[5:10] = 0.0
        lin.weight[5:10] = 0.0  # h = 0 < tau on every input: dead
    c = unit_census(net, x, batch=64)[0]
    with torch.no_grad():
        h = lin(x)
    a = h.abs()
    assert c["zero"] == pytest.approx(float((a <= 0.5).float().mean()))
    assert c["saturated"] == pytest.approx(float((a >= 1.5).float().mean()))
    assert c["linear"] == pytest.approx(float(((a > 0.5) & (a < 1.5)).float().mean()))
    assert c["dead"] == pytest.approx(float((a <= 0.5).all(0).float().mean()))
    assert c["always"] == pytest.approx(float((a > 0.5).all(0).float().mean()))
    assert c["dead"] >= 5 / 30 and c["always"] >= 5 / 30
    assert c["q"] == pytest.approx(float(h.double().pow(2).mean()), rel=1e-6)


def test_a_loaded_state_is_checked_as_the_constructor_checks():
    """load_state_dict took any momentum (a negative one made tau diverge at the next step),
    and a text max_samples gave int()'s own error; fluctuation_moments(q=inf) gave NaN."""
    from shrinkage.activations import edge_of_chaos, fluctuation_moments

    ctl = SparsityControl(nn.Sequential(CST(0.5, 1.0)), sparsity=0.8)
    for bad in (5.0, -1.0, 0.0):
        with pytest.raises(ValueError, match="momentum must be"):
            ctl.load_state_dict({"sparsity": 0.8, "momentum": bad})
    assert ctl.momentum == SparsityControl(nn.Sequential(CST(0.5, 1.0)), sparsity=0.8).momentum
    with pytest.raises(ValueError, match="max_samples must be an integer >= 1, got 'a'"):
        SparsityControl(nn.Sequential(CST(0.5, 1.0)), sparsity=0.8, max_samples="a")
    with pytest.raises(ValueError, match="q must be finite"):
        fluctuation_moments(edge_of_chaos("relu"), q=float("inf"))
