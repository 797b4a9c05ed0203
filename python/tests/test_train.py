"""`flexsp.train` end to end on 2 or 4 gloo processes: the shipped config, a planner that dies
mid-run, resume from a checkpoint, and (when built) the real planner."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, TINY_LLAMA, cost_model_for
from dist_harness import run_world
from flexsp.planner_client import find_planner_binary

FAKE_PLANNER = Path(__file__).with_name("fake_planner.py")


def write_config(tmp_path: Path, world_size: int, data: str | None = None) -> Path:
    cost_model = tmp_path / "cost-model.json"
    data = data or (f"{{source: corpus, path: {REPO_ROOT / 'data/corpus/python-docstrings.txt'}, "
                    "batch_sequences: 8, max_seq_len: 256}")
    cost_model.write_text(json.dumps(cost_model_for(world_size)))
    config = tmp_path / "tiny.yaml"
    config.write_text(f"""
model: {{hf_config: {json.dumps(TINY_LLAMA)}}}
data: {data}
train: {{steps: 4, seed: 0, lr: 3.0e-3, collective_timeout_s: 60}}
planner: {{cost_model: {cost_model}, timeout_s: 20, max_restarts: 0}}
""")
    return config


def fake_planner_binary(tmp_path: Path, *flags: str) -> str:
    """An executable that runs the fake planner, to stand where FLEXSP_BIN points."""
    script = tmp_path / "fake-flexsp"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_PLANNER} \"$@\" {' '.join(flags)}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def train(rank: int, world_size: int, argv: list[str], planner_binary: str) -> list[dict]:
    os.environ["FLEXSP_BIN"] = planner_binary
    from flexsp.train import main
    return main(argv)


def run_train(world_size: int, argv: list[str], planner_binary: str = "/nonexistent") -> list[dict]:
    results = run_world(world_size, train, argv, planner_binary, init=False, timeout_s=240)
    for records in results[1:]:  # every rank logs the same losses and plan sources
        assert [(r["loss"], r["source"]) for r in records] == [
            (r["loss"], r["source"]) for r in results[0]]
    return results[0]


def test_shipped_config_trains_on_four_ranks():
    records = run_train(4, ["--config", str(REPO_ROOT / "configs/tiny-cpu.yaml"), "--steps", "3"])
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[-1]["loss"] < records[0]["loss"] < 6.0
    assert all(r["tokens_per_s"] > 0 and 0 <= r["outside_compute"] < 1 for r in records)


def test_a_planner_that_dies_mid_run_triggers_the_fallback(tmp_path):
    config = write_config(tmp_path, 2)
    records = run_train(2, ["--config", str(config), "--steps", "5"],
                        fake_planner_binary(tmp_path, "--die-after", "2"))
    sources = [r["source"] for r in records]
    assert sources[:2] == ["planner", "planner"]
    assert sources[2].startswith("fallback: planner died: exited with status 3")
    assert sources[3:] == ["fallback: no planner"] * 2  # max_restarts 0: abandoned
    assert len(records) == 5 and records[-1]["loss"] < records[0]["loss"]


def test_resume_reproduces_the_losses(tmp_path):
    # Without a planner every plan is the deterministic fallback, so the two runs see the same
    # plans; with the real planner they would differ only by float rounding across plans.
    config = write_config(tmp_path, 2)
    uninterrupted = run_train(2, ["--config", str(config), "--steps", "4"])
    checkpoints = str(tmp_path / "checkpoints")
    first = run_train(2, ["--config", str(config), "--steps", "2", "--checkpoint-dir", checkpoints,
                          "--checkpoint-every", "2"])
    resumed = run_train(2, ["--config", str(config), "--steps", "4", "--checkpoint-dir",
                            checkpoints, "--resume"])
    assert [r["step"] for r in resumed] == [3, 4]
    assert [r["loss"] for r in first] == [r["loss"] for r in uninterrupted[:2]]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in uninterrupted[2:]]


def test_training_with_the_real_planner(tmp_path):
    binary = find_planner_binary()
    if binary is None:
        pytest.skip("the flexsp binary is not built (set FLEXSP_BIN or run `make build`)")
    records = run_train(2, ["--config", str(write_config(tmp_path, 2)), "--steps", "3"], binary)
    assert [r["source"] for r in records] == ["planner"] * 3


def train_expecting_exit(rank: int, world_size: int, argv: list[str]) -> str:
    os.environ["FLEXSP_BIN"] = "/nonexistent"
    from flexsp.train import main
    with pytest.raises(SystemExit) as stop:
        main(argv)
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    return str(stop.value)


def test_a_batch_no_plan_can_run_stops_every_rank_with_the_reason(tmp_path):
    lengths = tmp_path / "lengths.txt"
    lengths.write_text("7000\n")  # over 2 ranks x 3,000 tokens
    config = write_config(tmp_path, 2, f"{{source: synthetic, lengths: {lengths}, "
                                       "batch_sequences: 2, max_seq_len: 8192}")
    messages = run_world(2, train_expecting_exit, ["--config", str(config)], init=False)
    assert messages == ["step 1: no plan can run this batch (error: fallback: a sequence of 7000 "
                        "tokens does not fit even a group of 2 ranks (6000 tokens))"] * 2


def metrics_of(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "train"]


def test_steps_record_measured_micro_batches_and_the_cost_model_learns(tmp_path):
    from flexsp.calibrate import group_ms
    from flexsp.cost_model import CostModel
    config = write_config(tmp_path, 2)
    profiled = CostModel.from_document(cost_model_for(2))
    binary = fake_planner_binary(tmp_path)  # plans with the cost model each request carries
    run_train(2, ["--config", str(config), "--steps", "7", "--metrics", str(tmp_path / "m.jsonl")],
              binary)
    records = metrics_of(tmp_path / "m.jsonl")
    assert [r["source"] for r in records] == ["planner"] * 7  # calibrated plans pass the checks
    for r in records:
        groups = [g for mb in r["micro_batches"] for g in mb["groups"]]
        assert sum(g["tokens"] for g in groups) == r["tokens"]
        assert sum(g["sequences"] for g in groups) == r["sequences"]
        assert all(g["measured_ms"] > 0 and g["sum_squares"] >= g["tokens"] for g in groups)
        assert r["measured_ms"] == pytest.approx(sum(mb["measured_ms"] for mb in r["micro_batches"]))
        assert r["refit_ms"] < 1000
    # Steps 1 and 2 were planned before any refit: their estimates are the file's model's.
    for r in records[:2]:
        for mb in r["micro_batches"]:
            for g in mb["groups"]:
                assert g["est_ms"] == pytest.approx(group_ms(profiled, g["degree"], g["tokens"], g["sum_squares"]))
    # The hand-written model is far from this machine: refits happen (from 4 micro-batches on),
    # and plans asked for after one (two steps later) carry the refitted model's estimates.
    assert any(r["calibration"] for r in records)
    last = records[-1]["micro_batches"][0]["groups"][0]
    assert last["est_ms"] != pytest.approx(group_ms(profiled, last["degree"], last["tokens"], last["sum_squares"]))


def test_calibrate_false_plans_from_the_files_model_only(tmp_path):
    from flexsp.calibrate import group_ms
    from flexsp.cost_model import CostModel
    config = write_config(tmp_path, 2)
    config.write_text(config.read_text().replace("max_restarts: 0}", "max_restarts: 0, calibrate: false}"))
    profiled = CostModel.from_document(cost_model_for(2))
    run_train(2, ["--config", str(config), "--steps", "4", "--metrics", str(tmp_path / "m.jsonl")],
              fake_planner_binary(tmp_path))
    records = metrics_of(tmp_path / "m.jsonl")
    assert all("calibration" not in r for r in records)
    for r in records:
        for mb in r["micro_batches"]:
            for g in mb["groups"]:
                assert g["est_ms"] == pytest.approx(group_ms(profiled, g["degree"], g["tokens"], g["sum_squares"]))


def test_a_resumed_run_plans_with_the_calibrated_model_of_its_checkpoint(tmp_path):
    from flexsp.calibrate import group_ms
    from flexsp.cost_model import CostModel
    config = write_config(tmp_path, 2)
    binary = fake_planner_binary(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    run_train(2, ["--config", str(config), "--steps", "7", "--stop-after", "5", "--checkpoint-dir",
                  str(checkpoints)], binary)
    saved = json.loads((checkpoints / "step-000005" / "calibration.json").read_text())
    assert saved["refits"] >= 1 and saved["samples"]
    # And what a calibration probe needs to carry on as it would have.
    assert {"probed", "probe_steps", "probe_strategy", "next_request_strategy"} <= saved.keys()
    asked = CostModel.from_document(saved["next_request_cost_model"])
    current = CostModel.from_document(saved["cost_model"])
    run_train(2, ["--config", str(config), "--steps", "7", "--checkpoint-dir", str(checkpoints),
                  "--resume", "--metrics", str(tmp_path / "m.jsonl")], binary)
    first = metrics_of(tmp_path / "m.jsonl")[0]
    assert first["step"] == 6
    # Step 6's plan was asked with the model the interrupted run had asked it with.
    for mb in first["micro_batches"]:
        for g in mb["groups"]:
            assert g["est_ms"] == pytest.approx(group_ms(asked, g["degree"], g["tokens"], g["sum_squares"]))
    assert asked != CostModel.from_document(cost_model_for(2)) and current.alpha1_ms > 0
