"""Checkpoint and resume with torch.distributed.checkpoint (DCP).

Saved: the model's and the optimizer's state (sharded DTensors; every rank writes its shards),
and the data position in data.json: the steps done (batch t is a pure function of (seed, t)),
the sequences consumed, and what the stream depends on (the corpus's preparation id, the seed,
the batch size). Resuming checks those against the run's own, so a run resumed from step s sees
the same batches, plans, learning rates and updates as an uninterrupted one from step s on.
data.json is written before DCP's .metadata, which DCP writes last: a checkpoint with .metadata
is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step-{step:06d}"


def save_checkpoint(directory: str | Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, data_state: dict | None = None,
                    documents: dict[str, dict] | None = None) -> Path:
    """Writes the state after `step` steps to <directory>/step-NNNNNN (a collective);
    `documents` (rank 0's, e.g. the calibrated cost model) go beside data.json as <name>.json."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    path = checkpoint_path(directory, step)
    if not dist.is_initialized() or dist.get_rank() == 0:
        path.mkdir(parents=True, exist_ok=True)
        (path / "data.json").write_text(json.dumps({"steps_done": step, **(data_state or {})},
                                                   indent=1) + "\n")
        for name, document in (documents or {}).items():
            (path / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")
    dcp.save({"model": model_state, "optimizer": optimizer_state,
              "train": {"steps_done": torch.tensor(step)}}, checkpoint_id=str(path))
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint in `directory` (DCP writes .metadata last)."""
    done = sorted(p.parent for p in Path(directory).glob("step-*/.metadata"))
    return done[-1] if done else None


def check_data_state(path: str | Path, data_state: dict) -> None:
    """Raises ValueError, naming the differences, if the checkpoint's data stream is not this
    run's: resuming would then silently train on other batches than the interrupted run."""
    saved_file = Path(path) / "data.json"
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    differences = [f"{key}: checkpoint {saved.get(key)!r}, this run {value!r}"
                   for key, value in data_state.items()
                   if key in ("corpus", "seed", "batch_sequences") and saved.get(key) != value]
    if differences:
        raise ValueError(f"{saved_file}: the checkpoint was taken on another data stream "
                         f"({'; '.join(differences)}); resume with the same data and seed, or "
                         "start afresh in another checkpoint directory")


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
