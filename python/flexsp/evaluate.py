"""Evaluation loss on held-out sequences: forward only, every rank, in eval mode, under plans.

The held-out batches are fixed (TokenDataset.eval_batches), so the loss compares across steps,
and so are their plans: `plan_eval_batches` asks the planner once, at start-up, before the
pipeline of training batches begins (request ids -K..-1, never a training step's), so that
evaluating never disturbs it; a batch the planner cannot plan in time falls back like a
training step. Every rank runs every micro-batch (FSDP's all-gathers are collectives over all
ranks), as in training. Dropout is off while evaluating and the model's mode is restored after.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from flexsp.cost_model import CostModel
from flexsp.data import IGNORE, GlobalBatch
from flexsp.engine import micro_batch_input
from flexsp.groups import GroupPool
from flexsp.model import forward_logits
from flexsp.plan import Plan, PlanError, fallback_plan
from flexsp.planner_client import PlanSource, broadcast_plan


def plan_eval_batches(plan_source: PlanSource | None, batches: list[GlobalBatch],
                      cost_model: CostModel) -> tuple[list[Plan], list[str]]:
    """The plan of every held-out batch and where it came from, the same on every rank.
    `plan_source` is rank 0's (None on the other ranks, or with no planner at all)."""
    plans, sources = [], []
    for k, batch in enumerate(batches):
        plan = source = None
        if dist.get_rank() == 0:
            try:
                if plan_source is None:
                    plan, source = fallback_plan(batch.lengths, cost_model), "fallback: no planner"
                else:  # ids ascending, all below any training step's
                    plan, source = plan_source.plan_for(k - len(batches), batch.lengths)
            except PlanError as error:
                source = f"error: {error}"
        plan, source = broadcast_plan(plan, source)
        if plan is None:
            raise SystemExit(f"held-out batch {k + 1}: no plan can run it ({source})")
        plans.append(plan)
        sources.append(source)
    return plans, sources


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[GlobalBatch], plans: list[Plan],
             pool: GroupPool, rank: int, world_size: int, device: torch.device) -> float:
    """Mean token loss over all held-out batches (the same value on every rank)."""
    was_training = model.training
    model.eval()
    try:
        loss_sum, label_tokens = 0.0, 0
        for batch, plan in zip(batches, plans, strict=True):
            for m in range(len(plan.micro_batches)):
                inp = micro_batch_input(plan, m, batch, pool, rank)
                logits = forward_logits(model, inp.tokens.to(device), inp.positions.to(device),
                                        inp.ctx)
                loss_sum += F.cross_entropy(logits, inp.labels.to(device), ignore_index=IGNORE,
                                            reduction="sum").item()
            label_tokens += batch.label_tokens
    finally:
        model.train(was_training)
    total = torch.tensor([loss_sum], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.item() / max(1, label_tokens)
