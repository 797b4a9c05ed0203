"""Checkpoint and resume with torch.distributed.checkpoint (DCP).

Saved: the model's and the optimizer's state (sharded DTensors; every rank writes its shards),
and the data position, which is just the number of steps done, since batch t is a pure function
of (seed, t). A run resumed from step s therefore sees the same batches, plans and updates as an
uninterrupted one from step s on.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step-{step:06d}"


def save_checkpoint(directory: str | Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> Path:
    """Writes the state after `step` steps to <directory>/step-NNNNNN (a collective)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    path = checkpoint_path(directory, step)
    dcp.save({"model": model_state, "optimizer": optimizer_state,
              "train": {"steps_done": torch.tensor(step)}}, checkpoint_id=str(path))
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint in `directory` (DCP writes .metadata last)."""
    done = sorted(p.parent for p in Path(directory).glob("step-*/.metadata"))
    return done[-1] if done else None


def load_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> int:
    """Restores model and optimizer in place from `path`; returns the steps done (a collective)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state,
             "train": {"steps_done": torch.tensor(0)}}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])
    return int(state["train"]["steps_done"])
