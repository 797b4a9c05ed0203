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
import re
import socket
import sys
import time

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


def is_collective_failure(error: BaseException) -> bool:
    """Whether `error` is a collective that failed (gloo and NCCL raise plain RuntimeErrors)."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        marker in text for marker in ("gloo", "NCCL", "c10d", "Connection closed by peer",
                                      "Timed out waiting"))


def peer_failure(error: BaseException, rank: int, world_size: int, timeout_s: float,
                 step: int, grace_s: float = 10.0) -> str:
    """One line for a collective that failed on this rank: which ranks stopped answering.

    Every rank whose collective fails says so in the rendezvous store and waits up to
    `grace_s` (at most the collective timeout) for the others to say so too; those that do not
    are the ones that died or hang. The store lives with rank 0 (or torchrun's agent), so if it
    cannot be reached either, that is what the line says.
    """
    detail = " ".join(str(error).split())
    detail = re.sub(r"\[[^\]]*\] ", "", detail)[:160]  # gloo's [file:line] prefixes
    others = [r for r in range(world_size) if r != rank]
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"flexsp/failed/{rank}", str(step))
        deadline = time.monotonic() + min(grace_s, timeout_s)
        while True:
            silent = [r for r in others if not store.check([f"flexsp/failed/{r}"])]
            if not silent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - the store is gone with whoever hosted it
        silent = None
    if silent is None:
        who = "rank 0 or the launcher (the rendezvous store cannot be reached either)"
    elif silent:
        who = f"rank{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))}"
    else:
        return (f"rank {rank}: a collective failed on every rank during step {step} "
                f"(collective timeout {timeout_s:g} s; {detail})")
    return (f"rank {rank}: {who} stopped answering during step {step} (collective timeout "
            f"{timeout_s:g} s; {detail}); resume from the newest checkpoint with --resume")
