"""The training run on a prepared corpus: learning-rate schedule, AdamW groups, evaluation,
metrics, and a resume that reproduces the uninterrupted run's losses under the planner's plans."""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from conftest import TINY_LLAMA, cost_model_for, tiny_model
from flexsp.checkpoint import check_data_state
from flexsp.metrics_log import MetricsLog
from flexsp.optim import lr_at, param_groups
from flexsp.planner_client import find_planner_binary
from dist_harness import run_world
from test_train import run_train, train_expecting_exit


def test_warmup_then_cosine_to_lr_min():
    rates = [lr_at(s, 1.0, 0.1, warmup_steps=4, total_steps=14, schedule="cosine")
             for s in range(14)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert rates[4] == 1.0 and rates[-1] == pytest.approx(0.1)
    assert rates[7] == pytest.approx(0.1 + 0.45 * (1 + 0.5))  # a third of the way: cos(pi/3)
    assert all(a >= b for a, b in zip(rates[3:], rates[4:]))
    assert lr_at(50, 1.0, 0.1, 4, 14, "constant") == 1.0


def test_no_weight_decay_on_norms_and_biases():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), tiny_model())
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    named = dict(model.named_parameters())
    no_decay_names = {n for n, p in named.items() if any(p is q for q in no_decay["params"])}
    assert {"0.bias", "1.weight", "1.bias"} <= no_decay_names
    assert all("norm" in n for n in no_decay_names if n.startswith("2."))  # the Llama: RMSNorms
    assert len(decay["params"]) + len(no_decay["params"]) == len(named)


def test_resume_refuses_another_data_stream(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps(
        {"steps_done": 4, "corpus": "abc", "seed": 0, "batch_sequences": 8}))
    check_data_state(tmp_path, {"corpus": "abc", "seed": 0, "batch_sequences": 8})
    with pytest.raises(ValueError, match=r"data\.json: the checkpoint was taken on another data "
                                         r"stream \(seed: checkpoint 0, this run 1; "
                                         r"batch_sequences: checkpoint 8, this run 16\)"):
        check_data_state(tmp_path, {"corpus": "abc", "seed": 1, "batch_sequences": 16})


def test_metrics_go_to_json_lines_and_tensorboard_when_installed(tmp_path, caplog, capsys):
    metrics = MetricsLog(str(tmp_path / "run" / "m.jsonl"), str(tmp_path / "tb"), steps=2)
    metrics.train({"step": 1, "loss": 5.0, "lr": 1e-3, "tokens_per_s": 10.0, "plan": "<2,1,1>",
                   "source": "planner", "step_ms": 5.0, "est_step_ms": 4.0,
                   "outside_compute": 0.01})
    metrics.eval(1, 4.5, 16)
    metrics.close()
    out = capsys.readouterr().out
    assert "step    1/2 | loss  5.0000 | lr 1.00e-03" in out and "eval loss  4.5000 on 16" in out
    records = [json.loads(line) for line in (tmp_path / "run" / "m.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in records] == [("train", 1), ("eval", 1)]
    try:
        import tensorboard  # noqa: F401
        assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    except ImportError:
        assert "TensorBoard is not installed (pip install 'flexsp[tensorboard]')" in caplog.text


def write_config(tmp_path: Path, corpus: Path, world_size: int) -> Path:
    cost_model = tmp_path / "cost-model.json"
    cost_model.write_text(json.dumps(cost_model_for(world_size)))
    config = tmp_path / "run.yaml"
    config.write_text(f"""
model: {{hf_config: {json.dumps({**TINY_LLAMA, "vocab_size": 4096})}}}
data: {{source: tokens, path: {corpus}, batch_sequences: 16, max_seq_len: 512}}
train: {{steps: 6, seed: 0, lr: 3.0e-3, lr_schedule: cosine, lr_min: 3.0e-4, warmup_steps: 2,
        weight_decay: 0.1, eval_every: 3, eval_sequences: 16, collective_timeout_s: 60}}
planner: {{cost_model: {cost_model}, timeout_s: 20, max_restarts: 0, calibrate: false}}
""")  # calibrate: false, so that plans are a pure function of the batch (bit-for-bit resume)
    return config


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return ([r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"])


def test_a_resumed_run_reproduces_the_uninterrupted_run_under_planner_plans(tmp_path,
                                                                           prepared_corpus):
    binary = find_planner_binary()
    if binary is None:
        pytest.skip("the flexsp binary is not built (set FLEXSP_BIN or run `make build`)")
    config = str(write_config(tmp_path, prepared_corpus, 4))
    checkpoints = str(tmp_path / "checkpoints")
    whole = run_train(4, ["--config", config, "--metrics", str(tmp_path / "whole.jsonl")], binary)
    run_train(4, ["--config", config, "--metrics", str(tmp_path / "parts.jsonl"), "--stop-after",
                  "4", "--checkpoint-dir", checkpoints], binary)
    resumed = run_train(4, ["--config", config, "--metrics", str(tmp_path / "parts.jsonl"),
                            "--checkpoint-dir", checkpoints, "--resume"], binary)
    assert [r["step"] for r in resumed] == [5, 6]
    train, evals = read_metrics(tmp_path / "whole.jsonl")
    parts_train, parts_evals = read_metrics(tmp_path / "parts.jsonl")
    assert [r["step"] for r in parts_train] == [1, 2, 3, 4, 5, 6]
    # Bit for bit: the same batches, plans, learning rates and updates.
    for key in ("loss", "lr", "plan", "source", "tokens"):
        assert [r[key] for r in parts_train] == [r[key] for r in train], key
    assert parts_evals == evals and [e["step"] for e in evals] == [3, 6]
    assert all(r["source"] == "planner" for r in train)
    assert [r["lr"] for r in train][:2] == [1.5e-3, 3.0e-3] and train[-1]["lr"] == pytest.approx(3e-4)
    assert evals[1]["eval_loss"] < evals[0]["eval_loss"] < math.log(4096) + 0.5
    assert json.loads((Path(checkpoints) / "step-000004" / "data.json").read_text())[
        "sequences_seen"] == 64
    assert whole[-1]["loss"] < whole[0]["loss"]


def test_a_bad_corpus_stops_every_rank_before_any_collective(tmp_path, prepared_corpus):
    config = write_config(tmp_path, prepared_corpus, 2)
    config.write_text(config.read_text().replace("batch_sequences: 16", "batch_sequences: 5000"))
    messages = run_world(2, train_expecting_exit, ["--config", str(config)], init=False)
    assert len(messages) == 2 and all(re.fullmatch(
        rf"flexsp.train: {prepared_corpus}: a batch of 5000 sequences, but the corpus has only "
        r"\d+ training sequences; lower data.batch_sequences or prepare more documents", m)
        for m in messages)
