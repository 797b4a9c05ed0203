"""The plan rules (DESIGN.md) as the runtime checks them, and the runtime's fallback plan."""

import copy

import pytest

from conftest import cost_model_for, make_plan
from flexsp.plan import PlanError, fallback_plan, plan_shape, validate_plan


LENGTHS = [900, 40, 300, 7, 2000]


@pytest.fixture
def good_plan() -> dict:
    cm = cost_model_for(4)
    return make_plan(cm, LENGTHS, [[(2, 0, [4]), (1, 2, [0, 1]), (1, 3, [2])], [(4, 0, [3])]])


def test_a_good_plan_passes(good_plan):
    validate_plan(good_plan, 4, LENGTHS)
    assert plan_shape(good_plan) == "<2,1,1> <4>"


def break_rule(plan: dict, rule: str) -> None:
    groups = plan["micro_batches"][0]["groups"]
    if rule == "version":
        plan["version"] = 2
    elif rule == "world_size":
        plan["world_size"] = 8
    elif rule == "twice":
        groups[1]["sequence_ids"].append(2)
        groups[1]["tokens"] += LENGTHS[2]
    elif rule == "missing":
        groups[2]["sequence_ids"] = []
        groups[2]["tokens"] = 0
    elif rule == "unknown id":
        groups[2]["sequence_ids"] = [2, 99]
    elif rule == "overlap":
        groups[2]["first_rank"] = 1
        groups[2]["degree"] = 1
    elif rule == "unaligned":
        groups[0]["first_rank"] = 1
        groups[1]["first_rank"] = 0
    elif rule == "outside":
        groups[2]["first_rank"] = 4
    elif rule == "not power of two":
        plan["micro_batches"][1]["groups"][0]["degree"] = 3
    elif rule == "above max_degree":
        plan["cost_model"]["max_degree"] = 2
    elif rule == "tokens":
        groups[1]["tokens"] += 1
    elif rule == "memory":
        plan["cost_model"]["memory_budget_mb"] = 15.0
    elif rule == "missing key":
        del plan["solver"]
    elif rule == "malformed micro-batch":
        del plan["micro_batches"][1]["groups"]
    elif rule == "malformed group":
        plan["micro_batches"][0]["groups"][1] = [1, 2, [0, 1]]
    elif rule == "batch mismatch":
        plan["sequences"][0]["length"] = 901
        groups[0]["tokens"] = 2001  # keep the plan self-consistent; only the batch differs
        groups[0]["sequence_ids"] = [4]
        groups[1]["tokens"] = 941


@pytest.mark.parametrize("rule, message", [
    ("version", "version 2"),
    ("world_size", "world_size 8 but this job has 4"),
    ("twice", "micro-batch 0, group 2: sequence 2 is already in micro-batch 0, group 1"),
    ("missing", "sequences [2] are in no group"),
    ("unknown id", "micro-batch 0, group 2: sequence id 99 is not in the plan"),
    ("overlap", "micro-batch 0, group 2: ranks [1, 2) overlap group 0"),
    ("unaligned", "micro-batch 0, group 0: first_rank 1 is not a multiple of degree 2"),
    ("outside", "micro-batch 0, group 2: ranks [4, 4+1) fall outside [0, 4)"),
    ("not power of two", "micro-batch 1, group 0: degree 3 is not a power of two"),
    ("above max_degree", "micro-batch 1, group 0: degree 4 exceeds max_degree 2"),
    ("tokens", "micro-batch 0, group 1: tokens 941 but its sequences sum to 940"),
    ("memory", "micro-batch 0, group 0: needs"),
    ("missing key", "missing keys ['solver']"),
    ("batch mismatch", "do not match this batch"),
    ("malformed micro-batch", "plan: malformed document (KeyError: 'groups')"),
    ("malformed group", "plan: malformed document (AttributeError"),
])
def test_each_broken_rule_is_named(good_plan, rule, message):
    plan = copy.deepcopy(good_plan)
    break_rule(plan, rule)
    with pytest.raises(PlanError) as error:
        validate_plan(plan, 4, LENGTHS)
    assert message in str(error.value)


FALLBACK_CASES = [
    (world_size, lengths)
    for world_size in (1, 2, 4, 8)
    for lengths in ([1], [5, 3000, 17, 3, 6000, 250] * 3, [2999] * 9, list(range(1, 60)))
    if max(lengths) <= 3000 * world_size  # 3,000 tokens per rank in the tiny cost model
]


@pytest.mark.parametrize("world_size, lengths", FALLBACK_CASES)
def test_fallback_plan_is_valid(world_size, lengths):
    plan = fallback_plan(lengths, cost_model_for(world_size), world_size)
    validate_plan(plan, world_size, lengths)
    degrees = {g["degree"] for mb in plan["micro_batches"] for g in mb["groups"]}
    assert len(degrees) == 1  # one degree for the batch
    degree = degrees.pop()
    assert degree == 1 or max(lengths) > 3000 * degree // 2  # the smallest degree that fits


def test_fallback_refuses_a_sequence_that_fits_nowhere():
    with pytest.raises(PlanError, match="does not fit even a group of 2 ranks"):
        fallback_plan([10, 7000], cost_model_for(2), 2)
