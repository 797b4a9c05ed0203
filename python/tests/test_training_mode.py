"""Training runs in train mode and evaluation in eval mode, whichever way the model was given,
and evaluation runs under the planner's plans.

A tiny Phi-3 with residual dropout 0.3 (attention dropout stays 0, which FlexSP refuses) is
given both ways: `hf: DIR` (from_pretrained, which hands back a model in eval mode) and
`hf_config` (from_config, in train mode). Built as training builds it (FSDP2 over 2 gloo
ranks), its dropout must be on: two forward-backward passes over the same batch give different
losses. Evaluation must switch dropout off (two evaluations agree, and equal plain transformers
in eval mode, float64, each sequence alone) and switch it back on afterwards. The held-out
batches' plans come from the planner (the real binary) when it is built.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from conftest import cost_model_for
from dist_harness import run_world
from flexsp.config import Config, TrainConfig
from flexsp.cost_model import CostModel
from flexsp.data import GlobalBatch
from flexsp.engine import forward_backward
from flexsp.evaluate import evaluate, plan_eval_batches
from flexsp.groups import GroupPool
from flexsp.model import ModelConfig, load_hf_config
from flexsp.parallelize import build_sharded_model
from flexsp.plan import fallback_plan
from flexsp.planner_client import PlanSource, find_planner_binary

PHI3 = dict(model_type="phi3", vocab_size=96, hidden_size=32, intermediate_size=48,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, resid_pdrop=0.3, pad_token_id=0, bos_token_id=1,
            eos_token_id=2)
LENGTHS = [40, 7, 23, 60, 3, 16]
SEED = 7


def make_batch() -> GlobalBatch:
    generator = torch.Generator().manual_seed(4)
    return GlobalBatch(-1, [torch.randint(PHI3["vocab_size"], (n,), generator=generator)
                            for n in LENGTHS])


def dropouts(model: torch.nn.Module) -> list[torch.nn.Dropout]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]


def mode_worker(rank: int, world_size: int, model_spec: dict, cost_model_file: str,
                binary: str | None) -> dict:
    config = Config(model=ModelConfig(**model_spec), train=TrainConfig(dtype="float64", seed=SEED))
    hf_config = load_hf_config(config.model)
    model, _ = build_sharded_model(config, hf_config, world_size, torch.device("cpu"))
    assert dropouts(model) and all(m.training for m in dropouts(model))
    cost_model = CostModel.load(cost_model_file)
    pool = GroupPool(world_size, rank)
    batch = make_batch()
    losses = []
    for _ in range(2):
        result = forward_backward(model, fallback_plan(batch.lengths, cost_model), batch, pool,
                                  rank)
        total = torch.tensor([result.loss_sum], dtype=torch.float64)
        dist.all_reduce(total)
        losses.append(total.item() / result.label_tokens)
        model.zero_grad(set_to_none=True)
    source = PlanSource(cost_model_file, cost_model, world_size, binary=binary) \
        if rank == 0 and binary is not None else None
    plans, sources = plan_eval_batches(source, [batch], cost_model)
    if source is not None:
        source.close()
    device = torch.device("cpu")
    evaluations = [evaluate(model, [batch], plans, pool, rank, world_size, device)
                   for _ in range(2)]
    assert all(m.training for m in dropouts(model))  # back to training
    return {"train": losses, "eval": evaluations, "sources": sources,
            "degrees": sorted({g.degree for mb in plans[0].micro_batches for g in mb.groups})}


def plain_eval_loss(model) -> float:
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(input_ids=s[None]).logits[0, :-1], s[1:],
                                    reduction="sum") for s in batch.sequences)
    return total.item() / sum(n - 1 for n in LENGTHS)


@pytest.mark.parametrize("given", ["hf", "hf_config"])
def test_dropout_on_in_training_off_in_evaluation(tmp_path, given):
    from transformers import AutoConfig, AutoModelForCausalLM
    values = dict(PHI3)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(SEED)
    reference = AutoModelForCausalLM.from_config(config, dtype=torch.float64)
    if given == "hf":
        reference.save_pretrained(tmp_path / "model")
        spec = {"hf": str(tmp_path / "model")}
    else:
        spec = {"hf_config": dict(PHI3)}
    cost_model_file = tmp_path / "cost-model.json"
    cost_model_file.write_text(json.dumps(cost_model_for(2)))
    binary = find_planner_binary()
    result = run_world(2, mode_worker, spec, str(cost_model_file), binary, timeout_s=240)[0]
    assert result["train"][0] != pytest.approx(result["train"][1], rel=1e-6)  # dropout on
    first, second = result["eval"]
    assert first == second == pytest.approx(plain_eval_loss(reference), rel=1e-12)
    if binary is not None:
        assert result["sources"] == ["planner"]
