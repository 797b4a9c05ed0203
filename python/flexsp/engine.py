"""Runs one plan: forward and backward per micro-batch on this rank's group, one optimizer step.

Every rank runs every micro-batch, idle or not: FSDP all-gathers parameters and reduce-scatters
gradients over all ranks, so a rank that skipped one would leave the others waiting. The loss of
a micro-batch is summed over this rank's tokens and divided by the token count of the whole
global batch; summed over ranks and micro-batches (which FSDP's reduce-scatter does for the
gradients) it is exactly the mean loss of one process training on the whole batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from flexsp.data import IGNORE, GlobalBatch, RankInput, idle_input, rank_input
from flexsp.groups import GroupPool
from flexsp.model import forward_logits
from flexsp.plan import Plan


@dataclass
class StepResult:
    loss_sum: float       # this rank's summed token loss (not reduced over ranks)
    label_tokens: int     # tokens that carry a label in the whole global batch
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped: bool = False  # the loss or the gradient norm was not finite: no update
    micro_batch_ms: list[float] = field(default_factory=list)  # this rank's forward+backward
    per_rank_ms: list[list[float]] | None = None  # every rank's, [rank][micro-batch] (train_step)


class MicroBatchClock:
    """Times each micro-batch's forward+backward on this rank without synchronising anything:
    the host clock on CPUs, CUDA events on GPUs (recorded in the stream, read after the step,
    when the step's own synchronisation has completed them)."""

    def __init__(self, device: torch.device | None) -> None:
        self.cuda = device is not None and device.type == "cuda"
        self._spans: list[tuple] = []
        self._start = None

    def start(self) -> None:
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._spans.append((self._start, end))
        else:
            self._spans.append((self._start, time.perf_counter()))

    def elapsed_ms(self) -> list[float]:
        if self.cuda:
            if self._spans:
                self._spans[-1][1].synchronize()
            return [start.elapsed_time(end) for start, end in self._spans]
        return [(end - start) * 1e3 for start, end in self._spans]


def micro_batch_input(plan: Plan, micro_batch: int, batch: GlobalBatch, pool: GroupPool,
                      rank: int) -> RankInput:
    """This rank's input for one micro-batch: its group's slice, or nothing if it is idle."""
    for group in plan.micro_batches[micro_batch].groups:
        first, degree = group.first_rank, group.degree
        if first <= rank < first + degree:
            return rank_input(batch, list(group.sequence_ids), degree, first, rank,
                              pool.get(first, degree))
    return idle_input()


def forward_backward(model: torch.nn.Module, plan: Plan, batch: GlobalBatch, pool: GroupPool,
                     rank: int, device: torch.device | None = None) -> StepResult:
    """Accumulates this batch's gradients over all micro-batches of `plan` (already checked)."""
    label_tokens = batch.label_tokens
    loss_sum = 0.0
    dispatch_s = compute_s = 0.0
    clock = MicroBatchClock(device)
    for m in range(len(plan.micro_batches)):
        t0 = time.perf_counter()
        inp = micro_batch_input(plan, m, batch, pool, rank)
        tokens, positions, labels = inp.tokens, inp.positions, inp.labels
        if device is not None:
            tokens, positions, labels = tokens.to(device), positions.to(device), labels.to(device)
        t1 = time.perf_counter()
        clock.start()
        logits = forward_logits(model, tokens, positions, inp.ctx)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
        (loss / label_tokens).backward()
        clock.stop()
        loss_sum += loss.item()
        t2 = time.perf_counter()
        dispatch_s += t1 - t0
        compute_s += t2 - t1
    return StepResult(loss_sum, label_tokens,
                      {"dispatch": dispatch_s * 1e3, "forward_backward": compute_s * 1e3},
                      micro_batch_ms=clock.elapsed_ms())


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, plan: Plan,
               batch: GlobalBatch, pool: GroupPool, rank: int, world_size: int,
               device: torch.device | None = None, max_grad_norm: float | None = None
               ) -> tuple[float, StepResult]:
    """Trains on `batch` with `plan`, steps the optimizer; returns the mean loss. A loss or
    gradient norm that is not finite (the same on every rank: both are reduced over all ranks)
    skips the update and sets `result.skipped`; the caller stops or goes on.

    `plan` was checked once for this job and batch before it reached any rank
    (`plan.check_plan`, via `PlanSource.plan_for`), so no rank can disagree about collectives.
    """
    result = forward_backward(model, plan, batch, pool, rank, device)
    t1 = time.perf_counter()
    # Every rank's micro-batch times ride on the loss's all-reduce (each rank fills its own row
    # of zeros), so gathering them costs no collective of its own.
    count = len(result.micro_batch_ms)
    total = torch.zeros(1 + world_size * count, dtype=torch.float64)
    total[0] = result.loss_sum
    total[1 + rank * count:1 + (rank + 1) * count] = torch.tensor(result.micro_batch_ms, dtype=torch.float64)
    if device is not None:
        total = total.to(device)
    dist.all_reduce(total)
    total = total.tolist()
    result.per_rank_ms = [total[1 + r * count:1 + (r + 1) * count] for r in range(world_size)]
    loss = total[0] / result.label_tokens
    finite = math.isfinite(loss)
    if finite and max_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # a DTensor under FSDP
        finite = bool(torch.isfinite(norm))
    if finite:
        optimizer.step()
    result.skipped = not finite
    optimizer.zero_grad(set_to_none=True)
    result.timings_ms["optimizer"] = (time.perf_counter() - t1) * 1e3
    return loss, result
