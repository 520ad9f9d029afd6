"""DistributedDataParallel: 2 gloo processes on 127.0.0.1 end with identical masks and weights
(st3, str whose thresholds are DDP parameters, rigl whose dense gradients are averaged over the
ranks before it grows): one group runs the three methods in turn."""

import pytest
import torch
import torch.distributed as dist
from torch import nn

from shrinkage.weights import Cubic, Sparsifier
from tests._gloo import run_gloo

pytestmark = pytest.mark.slow  # two gloo processes


_KW = {
    "st3": {"schedule": Cubic(start=0, end=4)},
    "str": {"schedule": Cubic(start=0, end=4)},
    "rigl": {"method_params": {"update_end": 6, "update_every": 2}},  # updates at 2 and 4
}


def _worker(rank, world, methods, folder):
    for method in methods:
        _run(rank, world, method, folder)


def _run(rank, world, method, folder):
    torch.manual_seed(0)  # same initial model on both ranks
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    sp = Sparsifier(model, 0.8, method=method, **_KW[method])
    initial = [u.pm.mask.clone() for u in sp.units] if method == "rigl" else None
    # no buffer broadcast: the masks must agree by themselves, not by rank 0 overwriting them
    ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    for _ in range(6):
        x = torch.randn(16, 10, generator=g)
        y = torch.randint(0, 4, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
        sp.step()
    eff = torch.cat([w.reshape(-1) for w in sp.effective_weights().values()])
    raw = torch.cat([u.param.detach().reshape(-1) for u in sp.units])
    effs = [torch.zeros_like(eff) for _ in range(world)]
    dist.all_gather(effs, eff)
    raws = [torch.zeros_like(raw) for _ in range(world)]
    dist.all_gather(raws, raw)
    if rank == 0:
        final = [u.pm.mask.clone() for u in sp.units] if method == "rigl" else None
        torch.save({"eff": effs, "raw": raws, "masks": (initial, final)}, f"{folder}/{method}.pt")


def test_ddp_two_processes_agree(tmp_path):
    """After 6 steps with different data per rank: same effective weights, masks, raw weights,
    and the scheduled sparsity, for each method."""
    methods = ("st3", "str", "rigl")
    run_gloo(_worker, methods, str(tmp_path))
    for method in methods:
        got = torch.load(tmp_path / f"{method}.pt")
        (e0, e1), (r0, r1) = got["eff"], got["raw"]
        assert torch.equal(e0, e1), method
        assert torch.equal(e0 != 0, e1 != 0), method
        assert torch.equal(r0, r1), method
        assert abs((1.0 - float((e0 != 0).float().mean())) - 0.8) < 0.01, method
    initial, final = torch.load(tmp_path / "rigl.pt")["masks"]
    assert any(not torch.equal(a, b) for a, b in zip(initial, final))  # rigl did update
