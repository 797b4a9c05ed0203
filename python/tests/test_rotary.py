"""Rotary embeddings whose frequencies depend on the sequence length equal transformers' per
sequence, packed beside longer sequences and sharded over 4 ranks (flexsp/rotary.py).

Two tiny models: a Phi-3 with LongRoPE (long factors past 256 tokens) and a Llama with dynamic
NTK scaling (frequencies stretched past 64 tokens); and, for the audit of the static scalings
(linear, yarn, llama3: functions of the config alone, left to the model's own code), three
tiny Llamas. The batch mixes sequences below, at and
beyond those thresholds. The oracle is plain transformers in one process, float64, each
sequence alone in a fresh rotary module (dynamic NTK's module keeps state between calls: a
longer sequence seen before would otherwise change a shorter one's frequencies); FlexSP trains
the same seeded model on 4 gloo ranks under plans of degree 4 (the longest sequence split over
4 ranks, short ones packed beside it), degree 1 (a short sequence packed after a long one on
one rank) and mixed degrees. Loss, gradient and the parameters after one AdamW step must agree
to rtol 1e-9 as in test_hf_parity.py; before per-sequence rotary the loss was off by 1e-4
relative (see the __main__ table).

A model whose rope type FlexSP cannot compute per sequence is refused by name.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

from conftest import cost_model_for, make_plan
from dist_harness import run_world
from flexsp.attention import PackedContext
from flexsp.cost_model import CostModel
from flexsp.data import GlobalBatch, pack_group
from flexsp.engine import train_step
from flexsp.groups import GroupPool
from flexsp.model import ModelConfig, build_model, decoder_layers, forward_logits, load_hf_config
from flexsp.parallelize import apply_fsdp
from flexsp.plan import check_plan
from flexsp import rotary

TINY = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2)
MODELS = {
    "phi3-longrope": dict(model_type="phi3", max_position_embeddings=2048,
                          original_max_position_embeddings=256, pad_token_id=0, bos_token_id=1,
                          eos_token_id=2, rope_parameters=dict(
                              rope_type="longrope", rope_theta=10000.0,
                              original_max_position_embeddings=256, long_factor=[1, 2, 4, 8],
                              short_factor=[1.0, 1.1, 1.2, 1.3]), **TINY),
    "llama-dynamic": dict(model_type="llama", max_position_embeddings=64,
                          rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0,
                                               factor=4.0), **TINY),
}
# Static scalings (functions of the config alone) for the audit: the model's own rotary code,
# given per-sequence position ids, is exact.
STATIC = {
    "llama-linear": dict(rope_type="linear", factor=2.0),
    "llama-yarn": dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16),
    "llama-llama3": dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                         high_freq_factor=4.0, original_max_position_embeddings=16),
}
for _name, _rope in STATIC.items():
    MODELS[_name] = dict(model_type="llama", max_position_embeddings=64,
                         rope_parameters=dict(rope_theta=10000.0, **_rope), **TINY)
LENGTHS = {
    "phi3-longrope": [400, 100, 257, 256, 30, 300, 7, 61],
    "llama-dynamic": [150, 20, 65, 64, 9, 100, 40, 33],
    **{name: [150, 20, 65, 64, 9, 100, 40, 33] for name in STATIC},
}
ALL = list(range(8))
PLANS = {
    "<4>": [[(4, 0, ALL)]],
    "<1,1,1,1>": [[(1, 0, [0, 1]), (1, 1, [2, 3]), (1, 2, [5, 4]), (1, 3, [6, 7])]],
    "<2,1,1>": [[(2, 0, [5, 6, 0]), (1, 2, [1, 2, 3]), (1, 3, [4, 7])]],
}
SEED = 5
RTOL, ATOL = 1e-9, 1e-12


def make_batch(lengths: list[int]) -> GlobalBatch:
    generator = torch.Generator().manual_seed(2)
    return GlobalBatch(0, [torch.randint(TINY["vocab_size"], (n,), generator=generator)
                           for n in lengths])


def make_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)


def reference_step(mapping: dict, batch: GlobalBatch) -> dict:
    """transformers alone, float64: each sequence on its own, in a fresh rotary module."""
    from transformers import AutoConfig, AutoModelForCausalLM
    values = dict(mapping)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa",
                                             dtype=torch.float64)
    fresh = copy.deepcopy(model.model.rotary_emb)
    label_tokens = sum(n - 1 for n in batch.lengths)
    loss = 0.0
    for seq in batch.sequences:
        model.model.rotary_emb = copy.deepcopy(fresh)
        logits = model(input_ids=seq[None]).logits[0]
        loss = loss + F.cross_entropy(logits[:-1], seq[1:], reduction="sum")
    loss = loss / label_tokens
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    make_optimizer(model.parameters()).step()
    after = {name: p.detach().clone() for name, p in model.named_parameters()}
    return {"loss": loss.item(), "grads": grads, "after": after}


def full(model: torch.nn.Module, grads: bool) -> dict[str, torch.Tensor]:
    return {name: (p.grad if grads else p).full_tensor().detach().clone()
            for name, p in model.named_parameters()}


def max_relative(got: dict, ref: dict, check: bool, what: str) -> float:
    worst = 0.0
    for name, tensor in got.items():
        if check:
            torch.testing.assert_close(tensor, ref[name], rtol=RTOL, atol=ATOL,
                                       msg=lambda m: f"{what} of {name}: {m}")
        worst = max(worst, ((tensor - ref[name]).abs().max()
                            / ref[name].abs().max().clamp_min(1e-300)).item())
    return worst


def uninstall(model: torch.nn.Module) -> None:
    """transformers' own rotary forward again (the behaviour before per-sequence rotary)."""
    for module in model._flexsp_rotary_modules:
        del module.forward, module._flexsp_raw_forward
    del model._flexsp_rotary_modules


def rotary_worker(rank: int, world_size: int, references: dict[str, dict],
                  per_sequence: bool) -> dict:
    """Every plan for every model of `references` (the oracle's results, computed once in the
    parent process); returns the relative errors."""
    pool = GroupPool(world_size, rank)
    mesh = init_device_mesh("cpu", (world_size,))
    cost_model = cost_model_for(world_size)
    results = {}
    for name, reference in references.items():
        batch = make_batch(LENGTHS[name])
        spec = ModelConfig(hf_config=copy.deepcopy(MODELS[name]))
        for plan_name, groups in PLANS.items():
            model = build_model(spec, load_hf_config(spec), torch.float64, SEED)
            assert rotary.has_per_sequence_rotary(model) == (name not in STATIC)
            if not per_sequence and name not in STATIC:
                uninstall(model)
            apply_fsdp(model, mesh)
            optimizer = make_optimizer(model.parameters())
            seen = {}
            optimizer.register_step_pre_hook(
                lambda *_: seen.__setitem__("grads", full(model, grads=True)))
            plan = check_plan(make_plan(cost_model, batch.lengths, groups),
                              CostModel.from_document(cost_model), batch.lengths)
            loss, _ = train_step(model, optimizer, plan, batch, pool, rank, world_size)
            where = f"{name} {plan_name}"
            results[(name, plan_name)] = {
                "loss": abs(loss - reference["loss"]) / reference["loss"],
                "grad": max_relative(seen["grads"], reference["grads"], per_sequence,
                                     f"{where}: gradient"),
                "step": max_relative(full(model, grads=False), reference["after"], per_sequence,
                                     f"{where}: step"),
            }
    return results


@pytest.mark.parametrize("names", [["phi3-longrope"], ["llama-dynamic"], list(STATIC)],
                         ids=["longrope", "dynamic", "linear-yarn-llama3"])
def test_scaled_rotary_equals_transformers_per_sequence(names):
    references = {name: reference_step(MODELS[name], make_batch(LENGTHS[name])) for name in names}
    results = run_world(4, rotary_worker, references, True, timeout_s=400)[0]
    assert set(results) == {(name, p) for name in names for p in PLANS}
    for errors in results.values():
        assert errors["loss"] < 1e-12


def test_short_sequence_packed_beside_a_long_one_on_one_rank():
    # The reproduction: a 100-token sequence alone and packed before a 400-token one.
    spec = ModelConfig(hf_config=copy.deepcopy(MODELS["phi3-longrope"]))
    model = build_model(spec, load_hf_config(spec), torch.float64, SEED)
    short, long = make_batch([100, 400]).sequences

    def logits(sequences):
        tokens, positions, _, cu_seqlens = pack_group(sequences, 1)
        return forward_logits(model, tokens, positions, PackedContext(None, 1, cu_seqlens))

    alone, packed = logits([short]), logits([short, long])
    assert torch.equal(alone, packed[:100])
    uninstall(model)
    assert (logits([short]) - logits([short, long])[:100]).abs().max() > 1e-4


def test_token_lengths_follow_each_rank_slice():
    ctx = PackedContext(None, 1, [0, 3, 8])
    assert rotary.token_lengths(ctx, 10).tolist() == [3, 3, 3, 5, 5, 5, 5, 5, 0, 0]
    assert rotary.token_lengths(PackedContext(None, 1, [0]), 1).tolist() == [0]


def test_which_rope_types_are_length_dependent():
    assert [t for t in ("default", "linear", "dynamic", "yarn", "longrope", "llama3",
                        "proportional") if rotary.is_length_dependent(t)] == ["dynamic", "longrope"]


def test_a_rotary_module_inside_the_layers_is_refused():
    spec = ModelConfig(hf_config=copy.deepcopy(MODELS["llama-dynamic"]))
    model = build_model(spec, load_hf_config(spec), torch.float32, 0)
    uninstall(model)
    layers = decoder_layers(model)
    layers[0].rotary = model.model.rotary_emb  # as a model computing it per layer would
    with pytest.raises(rotary.RotaryError, match="'dynamic'.*inside each decoder layer"):
        rotary.install(model, layers)


if __name__ == "__main__":  # the before/after table of the report
    references = {name: reference_step(MODELS[name], make_batch(LENGTHS[name])) for name in MODELS}
    for per_sequence in (False, True):
        table = run_world(4, rotary_worker, references, per_sequence, timeout_s=600)[0]
        for (name, plan), errors in table.items():
            print(f"{'after ' if per_sequence else 'before'} {name:14s} {plan:10s} " +
                  "  ".join(f"{k} {v:.1e}" for k, v in errors.items()))
