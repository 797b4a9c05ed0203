"""Bad model input is refused before training starts, with one clear message and a non-zero
exit, on every rank, and never by hanging in a collective.

`flexsp.train.main` makes every check before it joins the process group, so each rank refuses
on its own from the same files. The in-process cases prove the "before any collective" part
(no process group exists when the refusal comes); one real torchrun launch of two ranks proves
the exit status and that each rank says why.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from conftest import REPO_ROOT, TINY_LLAMA, cost_model_for
from flexsp.train import main

LLAMA = json.dumps(TINY_LLAMA)


def write_config(tmp_path: Path, model: str, parallel: str = "{}", world_size: int = 4) -> Path:
    cost_model = tmp_path / "cost-model.json"
    cost_model.write_text(json.dumps(cost_model_for(world_size)))
    config = tmp_path / "job.yaml"
    config.write_text(f"""
model: {model}
data: {{source: corpus, path: {REPO_ROOT / 'data/corpus/python-docstrings.txt'}, batch_sequences: 4, max_seq_len: 256}}
train: {{steps: 1, collective_timeout_s: 30}}
parallel: {parallel}
planner: {{cost_model: {cost_model}}}
""")
    return config


def refusal(config: Path, monkeypatch) -> str:
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(config)])
    assert not dist.is_initialized(), "refused only after joining the process group"
    return str(stop.value)


def llama(**changes) -> str:
    return json.dumps({"hf_config": {**TINY_LLAMA, **changes}})


def test_a_missing_model_directory(tmp_path, monkeypatch):
    message = refusal(write_config(tmp_path, f"{{hf: {tmp_path / 'absent'}}}"), monkeypatch)
    assert message == f"flexsp.train: model.hf: {tmp_path / 'absent'} is not a directory"


def test_a_directory_without_weights_or_with_an_unreadable_config(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(TINY_LLAMA))
    message = refusal(write_config(tmp_path, f"{{hf: {model_dir}}}"), monkeypatch)
    assert message.startswith(f"flexsp.train: model.hf: {model_dir} has no weights")
    (model_dir / "config.json").write_text("{ not json")
    message = refusal(write_config(tmp_path, f"{{hf_config: {model_dir}}}"), monkeypatch)
    assert message.startswith(f"flexsp.train: model.hf_config: {model_dir}: cannot read its config")


def test_heads_that_do_not_allow_the_cost_models_max_degree(tmp_path, monkeypatch):
    config = write_config(tmp_path, llama(num_attention_heads=6, hidden_size=48))
    assert refusal(config, monkeypatch) == (
        "flexsp.train: the cost model allows degree up to 4, but llama's 6 query heads do not "
        "divide by degree 4 (largest usable max_degree: 2)")
    config = write_config(tmp_path, llama(num_attention_heads=12, num_key_value_heads=3,
                                          hidden_size=96))
    assert "llama's 3 KV heads neither divide by degree 2 nor divide it" in refusal(config, monkeypatch)


@pytest.mark.parametrize("model, feature", [
    ('{hf_config: {model_type: bloom, n_head: 8, hidden_size: 32, n_layer: 2}}',
     "model type 'bloom' cannot be trained under FlexSP: BloomForCausalLM does not call "
     "attention through transformers' attention-function registry"),
    (llama(model_type="mistral", sliding_window=64),
     "model type 'mistral' cannot be trained under FlexSP: sliding-window attention "
     "(window 64 < data.max_seq_len 256)"),
    ('{hf_config: {model_type: t5}}',
     "model type 't5' cannot be trained under FlexSP: it is an encoder-decoder model"),
    (llama(attention_dropout=0.1),
     "model type 'llama' cannot be trained under FlexSP: attention dropout 0.1"),
])
def test_a_model_that_cannot_be_routed(tmp_path, monkeypatch, model, feature):
    assert refusal(write_config(tmp_path, model), monkeypatch) == f"flexsp.train: {feature}"


def test_an_unknown_mixed_precision_and_an_ambiguous_model(tmp_path, monkeypatch):
    config = write_config(tmp_path, llama(), "{mixed_precision: fp8}")
    # Checked at load, with the file and line of the key.
    assert re.fullmatch(rf"flexsp\.train: {re.escape(str(config))}:\d+: parallel\.mixed_precision: "
                        r"'fp8' is not one of 'none', 'bf16', 'fp16'", refusal(config, monkeypatch))
    config = write_config(tmp_path, json.dumps({"hf": str(tmp_path), "hf_config": TINY_LLAMA}))
    assert "give exactly one of `hf: DIR`" in refusal(config, monkeypatch)


def test_every_rank_of_a_real_launch_refuses_and_exits_non_zero(tmp_path):
    # A world of 2 allows degree 2, which 3 KV heads can neither split nor replicate.
    config = write_config(tmp_path, llama(num_attention_heads=6, num_key_value_heads=3,
                                          hidden_size=48), world_size=2)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "python"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "flexsp.train", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    message = ("flexsp.train: the cost model allows degree up to 2, but llama's 3 KV heads "
               "neither divide by degree 2 nor divide it")
    assert sum(line.startswith(message) for line in result.stderr.splitlines()) == 2, result.stderr


def test_attention_refuses_what_it_does_not_implement():
    import torch
    from flexsp.attention import PackedContext, hf_attention
    q = torch.zeros(1, 8, 10, 4)
    k = v = torch.zeros(1, 2, 10, 4)
    ctx = PackedContext(None, 1, [0, 4, 10])
    out, weights = hf_attention(torch.nn.Identity(), q, k, v, None, flexsp_context=ctx)
    assert out.shape == (1, 10, 8, 4) and weights is None
    for kwargs, message in [
            ({}, "needs flexsp_context"),
            ({"flexsp_context": ctx, "sliding_window": 5}, "a sequence of 6 tokens exceeds the window of 5"),
            ({"flexsp_context": ctx, "softcap": 30.0}, "soft-capping"),
            ({"flexsp_context": ctx, "dropout": 0.1}, "attention dropout")]:
        with pytest.raises(ValueError, match=message):
            hf_attention(torch.nn.Identity(), q, k, v, None, **kwargs)
    with pytest.raises(ValueError, match="custom attention masks"):
        hf_attention(torch.nn.Identity(), q, k, v, torch.zeros(1, 1, 10, 10), flexsp_context=ctx)
    # A window no sequence reaches changes nothing.
    assert hf_attention(torch.nn.Identity(), q, k, v, None, flexsp_context=ctx,
                        sliding_window=6)[0].shape == (1, 10, 8, 4)
