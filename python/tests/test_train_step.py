"""One training step under a plan equals one process training on the whole batch.

Float64 and a tight tolerance: the loss, every gradient (full, gathered from FSDP's shards, as
the optimizer sees it, after clipping) and every parameter after AdamW. The oracle is the same
initial model, unsharded, fed the whole batch as one degree-1 stream. The model uses GQA
(8 query heads, 2 KV heads), so groups of 4 exercise KV-head replication.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

from conftest import cost_model_for, make_plan
from dist_harness import run_world
from flexsp.attention import PackedContext
from flexsp.data import IGNORE, GlobalBatch, pack_group
from flexsp.engine import label_token_count, train_step
from flexsp.groups import GroupPool
from flexsp.model import ModelConfig, Transformer, apply_fsdp

CONFIG = ModelConfig(vocab_size=256, hidden=32, layers=2, heads=8, kv_heads=2, ffn_hidden=48)
LENGTHS = [37, 5, 1, 12, 64, 3, 20, 9, 2, 30, 7, 15]
TOLERANCE = dict(rtol=1e-9, atol=1e-12)
MAX_GRAD_NORM = 0.5  # small enough to clip, so clipping over shards is checked too


def make_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)


def step_matches_oracle(rank: int, world_size: int, micro_batches: list) -> int:
    torch.manual_seed(0)
    model = Transformer(CONFIG).double()
    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    batch = GlobalBatch(0, [torch.randint(256, (n,), generator=generator) for n in LENGTHS])

    tokens, positions, labels, cu_seqlens = pack_group(batch.sequences, 1)
    logits = reference(tokens, positions, PackedContext(None, 1, cu_seqlens))
    ref_loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum") / \
        label_token_count(LENGTHS)
    ref_loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), MAX_GRAD_NORM)
    assert norm > MAX_GRAD_NORM
    ref_grads = {name: p.grad.clone() for name, p in reference.named_parameters()}
    make_optimizer(reference.parameters()).step()

    pool = GroupPool(world_size, rank)
    apply_fsdp(model, init_device_mesh("cpu", (world_size,)))
    optimizer = make_optimizer(model.parameters())
    compared = []

    def compare_gradients(optimizer, args, kwargs):
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.grad.full_tensor(), ref_grads[name], **TOLERANCE,
                                       msg=lambda m: f"gradient of {name}: {m}")
            compared.append(name)

    optimizer.register_step_pre_hook(compare_gradients)
    plan = make_plan(cost_model_for(world_size), LENGTHS, micro_batches)
    loss, _ = train_step(model, optimizer, plan, batch, pool, rank, world_size,
                         max_grad_norm=MAX_GRAD_NORM)
    assert loss == pytest.approx(ref_loss.item(), rel=1e-12)
    for (name, p), (_, ref) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(p.full_tensor(), ref.detach(), **TOLERANCE,
                                   msg=lambda m: f"parameter {name} after the step: {m}")
    return len(compared)


ALL = list(range(len(LENGTHS)))
PLANS = {
    "all degree 1": (4, [[(1, 0, [0, 1, 2]), (1, 1, [3, 4]), (1, 2, [5, 6, 7, 8]), (1, 3, [9, 10, 11])]]),
    "one group of 4": (4, [[(4, 0, ALL)]]),
    "<2,1,1>": (4, [[(2, 0, [4, 0, 2]), (1, 2, [9, 1, 3]), (1, 3, [5, 6, 7, 8, 10, 11])]]),
    # Rank 1 is idle in the third micro-batch; the fourth is one 1-token sequence on 4 ranks
    # (three of them hold only padding).
    "micro-batches <2,2> <4> <2,1> <4>, an idle rank, a padding-only rank": (
        4, [[(2, 0, [4]), (2, 2, [0, 1])], [(4, 0, [9, 3, 5])], [(1, 0, [6, 7, 8]), (2, 2, [10, 11])],
            [(4, 0, [2])]]),
    "world 8 <4,2,1,1>": (8, [[(4, 0, [4, 2, 11]), (2, 4, [0, 9]), (1, 6, [6, 7, 8, 3]), (1, 7, [1, 5, 10])]]),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_step_equals_single_process(name):
    world_size, micro_batches = PLANS[name]
    compared = run_world(world_size, step_matches_oracle, micro_batches, timeout_s=240)
    assert compared == [len(list(Transformer(CONFIG).parameters()))] * world_size
