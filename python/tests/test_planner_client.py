"""The planner client against a fake planner that is slow, dies, refuses or lies on demand,
and against the real `flexsp serve` when it has been built (skipped otherwise)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_COST_MODEL
from flexsp.plan import validate_plan
from flexsp.planner_client import PlanSource, checked_plan, find_planner_binary

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
            validate_plan(plan, 4, BATCHES[step])
    finally:
        source.close()


def test_a_slow_planner_times_out_to_the_fallback_and_is_kept(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--delay", "1.5", timeout_s=0.3)
    try:
        start = time.monotonic()
        plan, where = source.plan_for(0, BATCHES[0])
        assert time.monotonic() - start < 1.2
        assert where.startswith("fallback: planner: no reply to request 0 in 0.3 s")
        validate_plan(plan, 4, BATCHES[0])
        source.timeout_s = 10.0
        plan, where = source.plan_for(1, BATCHES[1])  # the late reply to 0 is skipped
        assert where == "planner"
        validate_plan(plan, 4, BATCHES[1])
    finally:
        source.close()


def test_a_dead_planner_is_restarted_then_abandoned(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--die-after", "1", max_restarts=1)
    try:
        wheres = []
        for step, lengths in enumerate(BATCHES):
            plan, where = source.plan_for(step, lengths)
            validate_plan(plan, 4, lengths)
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
        validate_plan(plan, 4, BATCHES[0])
        assert source.process.alive
    finally:
        source.close()


def test_an_invalid_plan_is_replaced_by_the_fallback(tiny_cost_model):
    source = fake_source(tiny_cost_model, "--invalid", "--garbage")
    try:
        plan, where = source.plan_for(0, BATCHES[0])
        assert where == "planner"  # garbage lines are skipped; the reply itself arrives
        plan, where = checked_plan(plan, where, BATCHES[0], tiny_cost_model, 4)
        assert where.startswith("fallback: invalid plan: plan: micro-batch 0, group 0: sequence")
        validate_plan(plan, 4, BATCHES[0])
    finally:
        source.close()


def test_without_a_binary_every_plan_is_the_fallback(tiny_cost_model, monkeypatch):
    monkeypatch.setenv("FLEXSP_BIN", "/nonexistent/flexsp")
    assert find_planner_binary() is None
    source = PlanSource(TINY_COST_MODEL, tiny_cost_model, 4)
    plan, where = source.plan_for(0, BATCHES[0])
    assert where == "fallback: no planner"
    validate_plan(plan, 4, BATCHES[0])


@pytest.fixture
def real_planner() -> str:
    binary = find_planner_binary()
    if binary is None:
        pytest.skip("the flexsp binary is not built (set FLEXSP_BIN or run `make build`)")
    return binary


def test_real_planner_serves_valid_plans_and_survives_a_bad_request(real_planner):
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
            validate_plan(reply, 4, lengths)
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
            checked, where = checked_plan(plan, where, lengths, tiny_cost_model, 4)
            assert where == "planner" and checked is plan
    finally:
        source.close()
