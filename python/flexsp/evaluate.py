"""Evaluation loss on held-out sequences: forward only, every rank, under the fallback plan.

The held-out batches are fixed (TokenDataset.eval_batches), so the loss compares across steps.
They run under the runtime's local fallback plan rather than the planner's, so that evaluating
never disturbs the planner's pipeline of training batches; every rank runs every micro-batch
(FSDP's all-gathers are collectives over all ranks), as in training.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from flexsp.data import IGNORE, GlobalBatch
from flexsp.engine import label_token_count, micro_batch_input
from flexsp.groups import GroupPool
from flexsp.model import forward_logits
from flexsp.cost_model import CostModel
from flexsp.plan import fallback_plan


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[GlobalBatch], cost_model: CostModel,
             pool: GroupPool, rank: int, world_size: int, device: torch.device) -> float:
    """Mean token loss over all held-out batches (the same value on every rank)."""
    loss_sum, label_tokens = 0.0, 0
    for batch in batches:
        plan = fallback_plan(batch.lengths, cost_model)
        for m in range(len(plan.micro_batches)):
            inp = micro_batch_input(plan, m, batch, pool, rank)
            logits = forward_logits(model, inp.tokens.to(device), inp.positions.to(device),
                                    inp.ctx)
            loss_sum += F.cross_entropy(logits, inp.labels.to(device), ignore_index=IGNORE,
                                        reduction="sum").item()
        label_tokens += label_token_count(batch.lengths)
    total = torch.tensor([loss_sum], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.item() / max(1, label_tokens)
