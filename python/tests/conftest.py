import json
import os
from pathlib import Path

import pytest

from flexsp.cost_model import CostModel

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_COST_MODEL = REPO_ROOT / "configs" / "tiny-cpu-costmodel.json"

# Children of the multi-process tests inherit this: 2 cores shared by up to 8 ranks.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_cost_model() -> CostModel:
    return CostModel.load(TINY_COST_MODEL)


def cost_model_for(world_size: int, max_degree: int | None = None) -> dict:
    """The tiny hand-written cost model, resized for a test's world."""
    cost_model = json.loads(TINY_COST_MODEL.read_text())
    cost_model["world_size"] = world_size
    cost_model["gpus_per_node"] = world_size
    cost_model["max_degree"] = max_degree or world_size
    cost_model["a2a_bandwidth_gbps"] = {str(2 ** i): 1.0 for i in range(1, 4)}
    return cost_model


def job_model(world_size: int, max_degree: int | None = None) -> CostModel:
    """`cost_model_for` parsed: the job's own cost model, as the runtime holds it."""
    return CostModel.from_document(cost_model_for(world_size, max_degree))


def make_plan(cost_model: dict, lengths: list[int], micro_batches: list[list[tuple]]) -> dict:
    """A plan document with the estimates the cost model gives. micro_batches: per micro-batch,
    groups as (degree, first_rank, sequence_ids); they need not obey the rules."""
    model = CostModel.from_document(cost_model)
    document = {
        "version": 1, "strategy": "test", "world_size": cost_model["world_size"],
        "cost_model": cost_model,
        "sequences": [{"id": i, "length": n} for i, n in enumerate(lengths)],
        "micro_batches": [
            {"est_ms": 0.0, "groups": [
                {"degree": d, "first_rank": f, "sequence_ids": list(ids),
                 "tokens": sum(lengths[i] for i in ids), "est_ms": 0.0, "memory_mb": 0.0}
                for d, f, ids in groups]}
            for groups in micro_batches],
        "est_step_ms": 0.0, "lower_bound_ms": 0.0, "solver": {"name": "test", "wall_ms": 0.0},
    }
    return restamp(document, model)


def restamp(document: dict, model: CostModel) -> dict:
    """Recomputes a plan document's estimates (not its tokens) with `model`, so that a test
    that breaks one rule breaks only that one."""
    length_of = {s["id"]: s["length"] for s in document["sequences"]}
    step = 0.0
    for mb in document["micro_batches"]:
        slowest = 0.0
        for g in mb.get("groups", []):
            if not isinstance(g, dict) or not isinstance(g.get("degree"), int) or g["degree"] < 1:
                continue
            group_lengths = [length_of[i] for i in g["sequence_ids"] if i in length_of]
            g["est_ms"] = model.group_time(group_lengths, g["degree"])
            g["memory_mb"] = model.group_memory_mb(sum(group_lengths), g["degree"])
            slowest = max(slowest, g["est_ms"])
        mb["est_ms"] = slowest
        step += slowest
    document["est_step_ms"] = step
    return document


# A tiny Hugging Face Llama (GQA: 8 query heads, 2 KV heads), as a `model.hf_config` mapping.
TINY_LLAMA = {"model_type": "llama", "vocab_size": 256, "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 8,
              "num_key_value_heads": 2, "max_position_embeddings": 8192}


def tiny_model(dtype=None, seed: int = 0):
    """TINY_LLAMA built the way training builds it (FlexSP attention, seeded), unsharded."""
    import torch
    from flexsp.model import ModelConfig, build_model, load_hf_config
    spec = ModelConfig(hf_config=dict(TINY_LLAMA))
    return build_model(spec, load_hf_config(spec), dtype or torch.float32, seed)


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory) -> Path:
    """The bundled corpus prepared with the shipped tokenizer, in small shards (about 1 s)."""
    from flexsp.prepare import prepare
    out = tmp_path_factory.mktemp("prepared") / "python-docstrings"
    prepare(REPO_ROOT / "data" / "tokenizer", [REPO_ROOT / "data/corpus/python-docstrings.txt"],
            out, max_seq_len=512, shard_tokens=60_000, progress=False)
    return out
