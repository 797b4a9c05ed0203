"""Runs a function on N local processes joined by gloo over 127.0.0.1, with a hard time limit.

Every collective test goes through `run_world`: a bug that desynchronizes ranks fails the test
(the process group's own timeout, then the harness's) instead of hanging CI.
"""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn: Callable, world_size: int, port: int, args: tuple, result_dir: str,
           init: bool, collective_timeout_s: float) -> None:
    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)})
    if init:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
            timeout=datetime.timedelta(seconds=collective_timeout_s))
    try:
        result = fn(rank, world_size, *args)
    finally:
        if init and dist.is_initialized():
            dist.destroy_process_group()
    with open(Path(result_dir) / f"{rank}.pkl", "wb") as f:
        pickle.dump(result, f)
    # Skip interpreter teardown: with torch 2.13, a process that imported torch._dynamo (FSDP2
    # does) and used gloo aborts at exit about one time in three ("terminate called without an
    # active exception"), after all its work is done. See flexsp/train.py.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_world(world_size: int, fn: Callable, *args: Any, timeout_s: float = 120.0,
              init: bool = True, collective_timeout_s: float = 60.0) -> list[Any]:
    """fn(rank, world_size, *args) on `world_size` spawned processes; returns their results.

    fn must be a module-level function. With init=False the child gets the torchrun-style
    environment (MASTER_ADDR, RANK, ...) and initializes the process group itself.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as result_dir:
        context = mp.start_processes(
            _entry, args=(fn, world_size, free_port(), args, result_dir, init,
                          collective_timeout_s),
            nprocs=world_size, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout_s
        try:
            while not context.join(timeout=max(0.1, deadline - time.monotonic())):
                if time.monotonic() > deadline:
                    pytest.fail(f"world of {world_size} did not finish in {timeout_s:g} s (hang?)")
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join()
        results = []
        for rank in range(world_size):
            with open(Path(result_dir) / f"{rank}.pkl", "rb") as f:
                results.append(pickle.load(f))
        return results
