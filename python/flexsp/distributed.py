"""The process group and its clock: set-up (torchrun's world, or a world of one), the device,
the slowest rank's time, and a clean exit.

    rank, world_size, device = init_distributed(config.train.collective_timeout_s)
    ...
    dist.destroy_process_group()
    exit_now()
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys

import torch
import torch.distributed as dist


def init_distributed(collective_timeout_s: float) -> tuple[int, int, torch.device]:
    """NCCL on GPUs, gloo on CPUs; the collective timeout turns a desynchronized job into an
    error rather than a hang. Returns (rank, world size, this rank's device)."""
    use_cuda = torch.cuda.is_available()
    dist.init_process_group(
        "nccl" if use_cuda else "gloo",
        timeout=datetime.timedelta(seconds=collective_timeout_s))
    rank = dist.get_rank()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    return rank, dist.get_world_size(), torch.device("cuda" if use_cuda else "cpu")


def init_world(collective_timeout_s: float) -> tuple[int, int, torch.device]:
    """torchrun's world if launched by it, else a world of one (a local gloo or NCCL group), so
    FSDP and the engine run unchanged."""
    if "RANK" not in os.environ:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0",
                           "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
    return init_distributed(collective_timeout_s)


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work, so that a host clock reading includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def slowest_rank_ms(elapsed_s: float, device: torch.device) -> float:
    """The time of the slowest rank: a micro-batch ends when its last group does. Collective."""
    value = torch.tensor([elapsed_s * 1e3], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def exit_now() -> None:
    """Ends the process with status 0 without running interpreter teardown.

    With torch 2.13 on gloo, a process that imported torch._dynamo (FSDP2 does) aborts in
    static destructors at exit about one time in three ("terminate called without an active
    exception", SIGABRT), after its work and destroy_process_group are done; torchrun would
    report the whole run as failed. Everything is flushed and closed before this is called.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
