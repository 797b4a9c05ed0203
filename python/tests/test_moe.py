"""Mixture-of-experts models under FlexSP: the language-model loss equals transformers', and a
config asking for the router's auxiliary loss is refused, by name.

FlexSP shards every expert with its decoder layer (FSDP2 over all ranks; no expert
parallelism), so a rank routes its own tokens through gathered experts exactly as one process
would. The oracle is plain transformers, float64, each sequence alone, computed once in the
parent process; tiny Mixtral (top-2 of 4 experts) and Qwen2-MoE (top-2 of 4, a shared expert)
train on 4 gloo ranks under mixed-degree plans, where some experts get no token on some ranks
(their gradient there is zero and FSDP's reduce-scatter still lines up). Tolerances as in
test_hf_parity.py.

The load-balancing loss (`output_router_logits`) is a product of two means over every token
of the forward call (the share of tokens each expert gets, the mean router probability), so
its value depends on how the batch is cut into forward calls: under a plan it would depend on
the plan. FlexSP trains the language-model loss only and refuses such a config at start-up.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

from conftest import cost_model_for, make_plan
from dist_harness import run_world
from flexsp.cost_model import CostModel
from flexsp.data import GlobalBatch
from flexsp.engine import train_step
from flexsp.groups import GroupPool
from flexsp.model import ModelConfig, ModelError, build_model, check_routable, load_hf_config
from flexsp.parallelize import apply_fsdp
from flexsp.plan import check_plan

# Float64 needs transformers' eager experts (its grouped_mm kernel takes float32 and below).
TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=4, max_position_embeddings=256, experts_implementation="eager")
MODELS = {
    "mixtral": dict(model_type="mixtral", intermediate_size=24, num_local_experts=4,
                    num_experts_per_tok=2, sliding_window=None, **TINY),
    "qwen2_moe": dict(model_type="qwen2_moe", intermediate_size=48, moe_intermediate_size=24,
                      shared_expert_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                      **TINY),
}
LENGTHS = [37, 5, 2, 12, 64, 3, 20, 9]
PLANS = {
    "<4>": [[(4, 0, list(range(8)))]],
    "<2,1,1>": [[(2, 0, [4, 0]), (1, 2, [1, 2, 3, 7]), (1, 3, [5, 6])]],
    "<1,1,1,1> then <2,-,->": [[(1, 0, [0]), (1, 1, [4]), (1, 2, [6, 7]), (1, 3, [3])],
                               [(2, 0, [1, 2, 5])]],
}
SEED = 4
RTOL, ATOL = 1e-9, 1e-12


def make_batch() -> GlobalBatch:
    generator = torch.Generator().manual_seed(3)
    return GlobalBatch(0, [torch.randint(TINY["vocab_size"], (n,), generator=generator)
                           for n in LENGTHS])


def reference_step(mapping: dict) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM
    values = dict(mapping)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa",
                                             dtype=torch.float64)
    batch = make_batch()
    loss = sum(F.cross_entropy(model(input_ids=s[None]).logits[0, :-1], s[1:], reduction="sum")
               for s in batch.sequences) / sum(n - 1 for n in LENGTHS)
    loss.backward()
    return {"loss": loss.item(),
            "grads": {name: p.grad.clone() for name, p in model.named_parameters()}}


def moe_worker(rank: int, world_size: int, references: dict[str, dict]) -> dict:
    pool = GroupPool(world_size, rank)
    mesh = init_device_mesh("cpu", (world_size,))
    cost_model = cost_model_for(world_size)
    batch = make_batch()
    errors = {}
    for name, reference in references.items():
        spec = ModelConfig(hf_config=copy.deepcopy(MODELS[name]))
        for plan_name, groups in PLANS.items():
            model = build_model(spec, load_hf_config(spec), torch.float64, SEED)
            apply_fsdp(model, mesh)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
            seen = {}
            optimizer.register_step_pre_hook(lambda *_: seen.update(grads={
                n: p.grad.full_tensor() for n, p in model.named_parameters()}))
            plan = check_plan(make_plan(cost_model, LENGTHS, groups),
                              CostModel.from_document(cost_model), LENGTHS)
            loss, _ = train_step(model, optimizer, plan, batch, pool, rank, world_size)
            assert loss == pytest.approx(reference["loss"], rel=1e-12), f"{name} {plan_name}"
            worst = 0.0
            for param, grad in seen["grads"].items():
                ref = reference["grads"][param]
                torch.testing.assert_close(grad, ref, rtol=RTOL, atol=ATOL,
                                           msg=lambda m: f"{name} {plan_name}: {param}: {m}")
                worst = max(worst, ((grad - ref).abs().max() / ref.abs().max()).item())
            errors[(name, plan_name)] = (abs(loss - reference["loss"]) / reference["loss"], worst)
    return errors


def test_moe_loss_and_gradients_equal_transformers_on_4_ranks():
    references = {name: reference_step(MODELS[name]) for name in MODELS}
    errors = run_world(4, moe_worker, references, timeout_s=300)[0]
    assert set(errors) == {(n, p) for n in MODELS for p in PLANS}


@pytest.mark.parametrize("name", list(MODELS))
def test_router_aux_loss_is_refused_by_name(name):
    spec = ModelConfig(hf_config={**MODELS[name], "output_router_logits": True})
    with pytest.raises(ModelError, match=f"{name}.*output_router_logits.*auxiliary"):
        check_routable(load_hf_config(spec), 256)
    check_routable(load_hf_config(ModelConfig(hf_config=dict(MODELS[name]))), 256)


if __name__ == "__main__":  # the figures of the report
    refs = {name: reference_step(MODELS[name]) for name in MODELS}
    for (name, plan), (loss, grad) in run_world(4, moe_worker, refs, timeout_s=600)[0].items():
        print(f"{name:10s} {plan:24s} loss {loss:.1e}  grad {grad:.1e}")
