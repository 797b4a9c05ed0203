"""Checkpoint and resume with torch.distributed.checkpoint (DCP).

Saved: the model's and the optimizer's state (sharded DTensors; every rank writes its shards),
and the data position in data.json: the steps done (batch t is a pure function of (seed, t)),
the sequences consumed, and what the stream depends on (the corpus's preparation id, the seed,
the batch size). Resuming checks those against the run's own, so a run resumed from step s sees
the same batches, plans, learning rates and updates as an uninterrupted one from step s on.

A checkpoint is written to step-NNNNNN.partial, recorded in its manifest (every file's size and
CRC-32, flexsp/manifest.py) and only then renamed to step-NNNNNN: a failed or interrupted save
(a full disk, a killed job) leaves the earlier checkpoints as they were. Resuming verifies the
newest checkpoint against its manifest and passes over a damaged one to the newest intact one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from flexsp.manifest import verify, write_manifest
from flexsp.outputs import is_disk_full, reason

_STEP_DIR = re.compile(r"step-\d{6,}")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or used; the message names it and the reason."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step-{step:06d}"


def save_checkpoint(directory: str | Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, data_state: dict | None = None,
                    documents: dict[str, dict] | None = None) -> Path:
    """Writes the state after `step` steps to <directory>/step-NNNNNN (a collective). Raises
    CheckpointError on every rank alike if any rank could not write its part. `documents`
    (rank 0's, e.g. the calibrated cost model) go beside data.json as <name>.json."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    path = checkpoint_path(directory, step)
    partial = path.with_name(path.name + ".partial")
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    problem = None
    if rank0:
        problem = _attempt(lambda: _start(partial, step, data_state, documents), directory)
    problem = _agree(problem)
    if problem is None:
        problem = _agree(_attempt(lambda: dcp.save(
            {"model": model_state, "optimizer": optimizer_state,
             "train": {"steps_done": torch.tensor(step)}}, checkpoint_id=str(partial)),
            directory))
    if problem is None:
        problem = _agree(_attempt(lambda: _finish(partial, path), directory) if rank0 else None)
    if problem is not None:
        if rank0:
            shutil.rmtree(partial, ignore_errors=True)
        kept = checkpoints(directory)  # untouched by this save: not verified again here
        raise CheckpointError(f"checkpoint after step {step} in {directory}: {problem}; nothing "
                              f"of it was kept, the earlier checkpoints are as they were "
                              f"(newest: {kept[-1].name if kept else 'none'})")
    return path


def _start(partial: Path, step: int, data_state: dict | None,
           documents: dict[str, dict] | None = None) -> None:
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted save; never read
    partial.mkdir(parents=True)
    (partial / "data.json").write_text(json.dumps({"steps_done": step, **(data_state or {})},
                                                  indent=1) + "\n")
    for name, document in (documents or {}).items():
        (partial / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")


def _finish(partial: Path, path: Path) -> None:
    write_manifest(partial)
    if path.exists():  # the same step saved again (a resumed run): the new one replaces it
        shutil.rmtree(path)
    os.replace(partial, path)


def _attempt(action, directory: str | Path) -> str | None:
    """None if `action` ran, else its failure in one line ('no space left on device', ...)."""
    try:
        action()
    except (Exception, CheckpointException) as error:  # noqa: BLE001 - DCP's is a BaseException
        if is_disk_full(error, directory):
            return "no space left on device"
        if isinstance(error, OSError):
            return reason(error)
        return first_failure(error)
    return None


def first_failure(error: BaseException) -> str:
    """One line for an error, the first rank's own for DCP's CheckpointException."""
    failures = getattr(error, "failures", None)
    if failures:
        first = next(iter(failures.values()))
        error = getattr(first, "exc", first)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _agree(problem: str | None) -> str | None:
    """Every rank learns whether any rank failed (a collective), so all stop alike."""
    if not dist.is_initialized():
        return problem
    problems: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(problems, problem)
    return next((p for p in problems if p is not None), None)


def checkpoints(directory: str | Path) -> list[Path]:
    """The step directories of `directory`, oldest first (not .partial ones)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _STEP_DIR.fullmatch(p.name) and p.is_dir())


def choose_checkpoint(directory: str | Path) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint, and what is wrong with each newer one."""
    damaged = []
    for path in reversed(checkpoints(directory)):
        problem = verify(path)
        if problem is None:
            return path, damaged
        damaged.append(f"{path}: damaged ({problem})")
    return None, damaged


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest intact checkpoint in `directory`."""
    return choose_checkpoint(directory)[0]


def check_data_state(path: str | Path, data_state: dict) -> None:
    """Raises ValueError, naming the differences, if the checkpoint's data stream is not this
    run's: resuming would then silently train on other batches than the interrupted run."""
    saved_file = Path(path) / "data.json"
    if not saved_file.is_file():
        raise ValueError(f"{path}: no data.json (not a checkpoint of flexsp.train)")
    try:
        saved = json.loads(saved_file.read_text())
    except ValueError as error:
        raise ValueError(f"{saved_file}: not valid JSON ({error})") from None
    differences = [f"{key}: checkpoint {saved.get(key)!r}, this run {value!r}"
                   for key, value in data_state.items()
                   if key in ("corpus", "seed", "batch_sequences") and saved.get(key) != value]
    if differences:
        raise ValueError(f"{saved_file}: the checkpoint was taken on another data stream "
                         f"({'; '.join(differences)}); resume with the same data and seed, or "
                         "start afresh in another checkpoint directory")


def check_fits(path: str | Path, model_state: dict) -> None:
    """Raises CheckpointError if the checkpoint's model tensors are not this model's (names and
    shapes), before DCP would fail inside a collective load."""
    try:
        saved = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    except Exception as error:  # noqa: BLE001 - an unreadable .metadata, whatever the cause
        raise CheckpointError(f"{path}: its .metadata cannot be read ({type(error).__name__})") \
            from None
    for name, tensor in model_state.items():
        key = f"model.{name}"
        if key not in saved:
            raise CheckpointError(f"{path}: a checkpoint of another model (it has no {name})")
        size = getattr(saved[key], "size", None)
        if size is not None and tuple(size) != tuple(tensor.shape):
            raise CheckpointError(f"{path}: a checkpoint of another model ({name} is "
                                  f"{list(size)} there, {list(tensor.shape)} in this model)")


def load_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> int:
    """Restores model and optimizer in place from `path`; returns the steps done (a collective)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    check_fits(path, model_state)
    state = {"model": model_state, "optimizer": optimizer_state,
             "train": {"steps_done": torch.tensor(0)}}
    try:
        dcp.load(state, checkpoint_id=str(path))
    except CheckpointException as error:  # damaged in a way no manifest recorded (an old one)
        raise CheckpointError(f"{path}: cannot be read ({first_failure(error)})") from None
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])
    return int(state["train"]["steps_done"])
