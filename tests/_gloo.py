"""Run a function on a 2-process gloo group on 127.0.0.1, for the data-parallel tests.

Each rank runs ``fn(rank, world, *args)`` and ends with ``os._exit``: a gloo process that
reaches interpreter finalisation can still hold asynchronous work in gloo's C++ threads and
abort there ("terminate called without an active exception", pytorch/pytorch#179291), which
fails a test whose work had already succeeded. Results travel through files, not queues, so
nothing is left to flush at exit.
"""

import os
import socket
import sys
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, fn, args):
    code = 1
    try:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
        fn(rank, world, *args)
        dist.barrier()  # nobody tears the group down while a peer still talks to it
        dist.destroy_process_group()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_gloo(fn, *args, world: int = 2, timeout: float = 240.0) -> None:
    """Run ``fn(rank, world, *args)`` on every rank; raise if a rank fails or hangs."""
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, fn, args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not hung, f"ranks {hung} did not finish within {timeout} s"
    codes = [p.exitcode for p in procs]
    assert codes == [0] * world, f"rank exit codes {codes} (see the captured stderr)"
