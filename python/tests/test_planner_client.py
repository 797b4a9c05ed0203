"""The planner client against a fake planner that is slow, dies, refuses or lies on demand,
and against the real `flexsp serve` when it has been built (skipped otherwise)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_COST_MODEL
from fake_planner import FAULTS
from flexsp.cost_model import CostModel
from flexsp.plan import Plan, check_plan
from flexsp.planner_client import PlanSource, find_planner_binary

FAKE_PLANNER = Path(__file__).with_name("fake_planner.py")
BATCHES = [[900, 40, 300, 7, 2000, 12], [5, 6, 7], [3000, 2999, 1], [64] * 40, [1, 2]]


def fake_source(tiny_cost_model, *flags, timeout_s=10.0, max_restarts=1) -> PlanSource:
    command = [sys.executable, str(FAKE_PLANNER), "serve", "--cost-model", str(TINY_COST_MODEL),
               *flags]
    return PlanSource(TINY_COST_MODEL, tiny_cost_model, 4, timeout_s=timeout_s,
                      max_restarts=max_restarts, command=command)


def test_plans_are_requested_ahead_and_collected(tiny_cost_model):
    source = fake_source(tiny_cost_model)
    try:
        source.request(0, BATCHES[0])
        source.request(1, BATCHES[1])
        for step in (0, 1, 2):
            plan, where = source.plan_for(step, BATCHES[step])
            assert where == "planner"
            check_plan(plan, tiny_cost_model, BATCHES[step])
    finally:
        source.close()


def test_a_slow_planner_times_out_to_the_fallback_and_is_kept(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--delay", "1.5", timeout_s=0.3)
    try:
        start = time.monotonic()
        plan, where = source.plan_for(0, BATCHES[0])
        assert time.monotonic() - start < 1.2
        assert where.startswith("fallback: planner: no reply to request 0 in 0.3 s")
        check_plan(plan, tiny_cost_model, BATCHES[0])
        source.timeout_s = 10.0
        plan, where = source.plan_for(1, BATCHES[1])  # the late reply to 0 is skipped
        assert where == "planner"
        check_plan(plan, tiny_cost_model, BATCHES[1])
    finally:
        source.close()


def test_a_dead_planner_is_restarted_then_abandoned(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--die-after", "1", max_restarts=1)
    try:
        wheres = []
        for step, lengths in enumerate(BATCHES):
            plan, where = source.plan_for(step, lengths)
            check_plan(plan, tiny_cost_model, lengths)
            wheres.append(where)
        assert wheres[0] == "planner"
        assert wheres[1].startswith("fallback: planner died: exited with status 3")
        assert "dying on purpose" in wheres[1]
        assert wheres[2] == "planner"  # the restarted planner
        assert wheres[3].startswith("fallback: planner died")
        assert wheres[4] == "fallback: no planner"  # no restarts left: abandoned
        assert source.process is None
    finally:
        source.close()


def test_an_error_reply_falls_back(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--error")
    try:
        plan, where = source.plan_for(0, BATCHES[0])
        assert where == "fallback: planner refused request 0: fake planner: refusing on purpose"
        check_plan(plan, tiny_cost_model, BATCHES[0])
        assert source.process.alive
    finally:
        source.close()


def test_an_invalid_plan_is_replaced_by_the_fallback(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--invalid")
    try:
        plan, where = source.plan_for(0, BATCHES[0])
        assert where.startswith("fallback: refusing the planner's plan for step 0: plan: ")
        assert "is placed twice" in where
        check_plan(plan, tiny_cost_model, BATCHES[0])
    finally:
        source.close()


def test_a_planner_that_writes_garbage_gets_the_fallback_at_once(tiny_cost_model):
    # serve answers each request with one line, in order: a garbage line is the (unusable)
    # reply to the oldest request, so no step waits for a reply that will not come.
    source = fake_source(tiny_cost_model, "--garbage", timeout_s=30)
    try:
        start = time.monotonic()
        for step in range(3):
            plan, where = source.plan_for(step, BATCHES[step])
            assert where.startswith("fallback: planner refused request") and "unusable reply" in where
            check_plan(plan, tiny_cost_model, BATCHES[step])
        assert time.monotonic() - start < 10
        assert source.process.alive
    finally:
        source.close()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_any_fault_falls_back_within_the_step_and_the_next_step_too(tiny_cost_model, fault):
    # Issue 11, item 15: whatever the planner replies, rank 0 gets a plan it can run, raises
    # nothing, and no later step stalls. timeout_s bounds a planner that never answers.
    job = CostModel.from_document({**tiny_cost_model.to_document(), "max_degree": 1}) \
        if fault == "other-job" else tiny_cost_model
    source = PlanSource(TINY_COST_MODEL, job, 4, timeout_s=1.0, max_restarts=1,
                        command=[sys.executable, str(FAKE_PLANNER), "serve", "--cost-model",
                                 str(TINY_COST_MODEL), "--fault", fault])
    try:
        for step in range(3):
            start = time.monotonic()
            plan, where = source.plan_for(step, BATCHES[step])
            assert time.monotonic() - start < 3.0, (fault, step, where)
            # Two copies of a good reply: the first is used, the extra line is no reply to anything.
            assert isinstance(plan, Plan) and (where.startswith("fallback: ") or fault == "two-lines"), (fault, where)
            check_plan(plan, job, BATCHES[step])
        assert source.process is None or source.process._reader.is_alive() or not source.process.alive
    finally:
        source.close()


def test_without_a_binary_every_plan_is_the_fallback(tiny_cost_model, monkeypatch):
    monkeypatch.setenv("FLEXSP_BIN", "/nonexistent/flexsp")
    assert find_planner_binary() is None
    source = PlanSource(TINY_COST_MODEL, tiny_cost_model, 4)
    plan, where = source.plan_for(0, BATCHES[0])
    assert where == "fallback: no planner"
    check_plan(plan, tiny_cost_model, BATCHES[0])


@pytest.fixture
def real_planner() -> str:
    binary = find_planner_binary()
    if binary is None:
        pytest.skip("the flexsp binary is not built (set FLEXSP_BIN or run `make build`)")
    return binary


def test_real_planner_serves_valid_plans_and_survives_a_bad_request(real_planner, tiny_cost_model):
    process = subprocess.Popen(
        [real_planner, "serve", "--cost-model", str(TINY_COST_MODEL)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        def ask(request: str) -> dict:
            process.stdin.write(request + "\n")
            process.stdin.flush()
            return json.loads(process.stdout.readline())

        for i, lengths in enumerate(BATCHES):
            reply = ask(json.dumps({"id": i, "lengths": lengths}))
            assert reply.pop("id") == i
            check_plan(reply, tiny_cost_model, lengths)
        bad = ask(json.dumps({"id": 99, "lengths": "not a list"}))
        assert bad["id"] == 99 and bad["error"]
        reply = ask(json.dumps({"id": 100, "lengths": [10, 20]}))
        assert reply["id"] == 100 and "error" not in reply
    finally:
        process.stdin.close()
        process.wait(timeout=10)


def test_real_planner_through_the_client(real_planner, tiny_cost_model):
    source = PlanSource(TINY_COST_MODEL, tiny_cost_model, 4, binary=real_planner)
    try:
        source.request(0, BATCHES[0])
        for step, lengths in enumerate(BATCHES):
            plan, where = source.plan_for(step, lengths)
            assert where == "planner"
            assert check_plan(plan, tiny_cost_model, lengths) == plan
    finally:
        source.close()


def test_a_probe_strategy_is_asked_for_and_skipped_where_its_degree_cannot_hold_the_batch(
        real_planner, tiny_cost_model):
    # The calibrator's probe (static:2) reaches the real planner: every group at degree 2;
    # a batch whose longest sequence (7,000 tokens) only degree 4 holds is planned as usual.
    source = PlanSource(TINY_COST_MODEL, tiny_cost_model, 4, binary=real_planner)
    try:
        source.set_strategy("static:2")
        source.request(0, BATCHES[0])
        plan, where = source.plan_for(0, BATCHES[0])
        assert where == "planner"
        assert {g.degree for mb in plan.micro_batches for g in mb.groups} == {2}
        source.request(1, [7000, 100])
        assert source.pending_strategy[1] is None
        plan, where = source.plan_for(1, [7000, 100])
        assert where == "planner" and 4 in {g.degree for mb in plan.micro_batches for g in mb.groups}
        source.set_strategy(None)
        source.request(2, BATCHES[0])
        assert source.pending_strategy[2] is None
        assert source.plan_for(2, BATCHES[0])[1] == "planner"
    finally:
        source.close()
