"""DistributedDataParallel: 2 gloo processes on 127.0.0.1 end with identical masks and weights."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from shrinkage.weights import Cubic, Sparsifier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, method, q):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.manual_seed(0)  # same initial model on both ranks
        model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
        sp = Sparsifier(model, 0.8, method=method, schedule=Cubic(start=0, end=4))
        ddp = nn.parallel.DistributedDataParallel(model)
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
        both = [torch.zeros_like(eff) for _ in range(world)]
        dist.all_gather(both, eff)
        raws = [torch.zeros_like(raw) for _ in range(world)]
        dist.all_gather(raws, raw)
        if rank == 0:
            q.put(
                (
                    bool(torch.equal(both[0], both[1])),
                    bool(torch.equal(both[0] != 0, both[1] != 0)),
                    bool(torch.equal(raws[0], raws[1])),
                    1.0 - float((both[0] != 0).float().mean()),
                )
            )
    finally:
        # Both ranks leave together: a rank that tears gloo down while its peer still talks
        # to it aborts the peer ("terminate called without an active exception").
        dist.barrier()
        dist.destroy_process_group()


def test_ddp_two_processes_agree():
    """After 6 steps with different data per rank: same effective weights, masks, raw weights,
    and the scheduled sparsity."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, "st3", q)) for r in range(2)]
    for p in procs:
        p.start()
    result = q.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    same_eff, same_mask, same_raw, sparsity = result
    assert same_eff and same_mask and same_raw
    assert abs(sparsity - 0.8) < 0.01
