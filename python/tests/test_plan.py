"""The plan rules (docs/DESIGN.md, docs/CONTRACT.md) as the runtime checks them, against the job's own
cost model and model, and the runtime's one way to build a plan (its fallback)."""

import copy

import pytest

from conftest import cost_model_for, job_model, make_plan, restamp
from flexsp.cost_model import CostModel
from flexsp.plan import (GroupAssignment, Plan, PlanError, assemble_plan, check_plan, fallback_plan, plan_shape,
                         step_time, violations)

LENGTHS = [900, 40, 300, 7, 2000]
JOB = job_model(4)


@pytest.fixture
def good_plan() -> dict:
    return make_plan(cost_model_for(4), LENGTHS, [[(2, 0, [4]), (1, 2, [0, 1]), (1, 3, [2])], [(4, 0, [3])]])


def test_a_good_plan_passes(good_plan):
    plan = check_plan(good_plan, JOB, LENGTHS)
    assert plan_shape(plan) == "<2,1,1> <4>"
    assert plan.micro_batches[0].groups[0].ranks == range(0, 2)
    assert step_time(plan) == pytest.approx(good_plan["est_step_ms"], rel=1e-12)
    assert Plan.from_document(plan.to_document()) == plan


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
    elif rule == "tokens":
        groups[1]["tokens"] += 1
    elif rule == "estimate":
        plan["est_step_ms"] += 1
        return
    elif rule == "missing key":
        del plan["solver"]
    elif rule == "malformed micro-batch":
        del plan["micro_batches"][1]["groups"]
    elif rule == "malformed group":
        plan["micro_batches"][0]["groups"][1] = [1, 2, [0, 1]]
    elif rule == "string degree":
        groups[0]["degree"] = "2"
    elif rule == "fractional id":
        plan["sequences"][0]["id"] = 0.5
    elif rule == "boolean rank":
        groups[0]["first_rank"] = False
    elif rule == "no sequences":
        plan["sequences"], plan["micro_batches"] = [], []
    elif rule == "negative bound":
        plan["lower_bound_ms"] = -1e300
    elif rule == "batch mismatch":
        plan["sequences"][0]["length"] = 901
        groups[1]["tokens"] = 941  # keep the plan self-consistent; only the batch differs
    restamp(plan, JOB)


@pytest.mark.parametrize("rule, message", [
    ("version", "plan version 2 is not supported"),
    ("world_size", "world_size is 8 but the cost model is for 4 GPUs"),
    ("twice", "sequence 2 is placed twice: in micro_batches[0].groups[1] and in micro_batches[0].groups[2]"),
    ("missing", "sequence 2 is in no group"),
    ("unknown id", "micro_batches[0].groups[2]: sequence id 99 is not in 'sequences'"),
    ("overlap", "micro_batches[0]: groups[0] and groups[2] share ranks"),
    ("unaligned", "micro_batches[0].groups[0]: ranks [1, 3) must lie in [0, 4) and start at a multiple"),
    ("outside", "micro_batches[0].groups[2]: ranks [4, 5) must lie in [0, 4)"),
    ("not power of two", "micro_batches[1].groups[0]: degree 3 is not a power of two between 1 and 4"),
    ("tokens", "micro_batches[0].groups[1]: tokens is 941 but its sequences hold 940"),
    ("estimate", "est_step_ms is"),
    ("missing key", "plan field 'solver' is missing"),
    ("malformed micro-batch", "plan field 'micro_batches[1].groups' is missing"),
    ("malformed group", "plan field 'micro_batches[0].groups[1]' should be an object"),
    ("string degree", "field 'micro_batches[0].groups[0].degree' should be an integer"),
    ("fractional id", "field 'sequences[0].id' should be an integer in range, got 0.5"),
    ("boolean rank", "field 'micro_batches[0].groups[0].first_rank' should be an integer"),
    ("no sequences", "sequences is empty"),
    ("negative bound", "lower_bound_ms is -1e+300"),
    ("batch mismatch", "do not match this batch"),
])
def test_each_broken_rule_is_named(good_plan, rule, message):
    plan = copy.deepcopy(good_plan)
    break_rule(plan, rule)
    with pytest.raises(PlanError) as error:
        check_plan(plan, JOB, LENGTHS)
    assert message in str(error.value)


def test_plans_are_checked_against_the_jobs_cost_model_not_their_own(good_plan):
    # Issue 11, item 14: a job that allows only degree 1 is sent a plan that embeds max degree 4.
    narrow = job_model(4, max_degree=1)
    with pytest.raises(PlanError, match=r"cost_model.max_degree is 4 but this job's is 1"):
        check_plan(good_plan, narrow, LENGTHS)
    # Even with the job's own cost model embedded, the job's degrees decide.
    lying = copy.deepcopy(good_plan)
    lying["cost_model"] = cost_model_for(4, max_degree=1)
    with pytest.raises(PlanError, match=r"degree 2 is not a power of two between 1 and 1"):
        check_plan(lying, narrow, LENGTHS)
    # And the job's memory budget.
    small = {**cost_model_for(4), "memory_budget_mb": 12.0}
    tight = copy.deepcopy(good_plan)
    tight["cost_model"] = small
    restamp(tight, CostModel.from_document(small))
    with pytest.raises(PlanError, match=r"micro_batches\[0\]\.groups\[0\] needs .* over the 12.000 MB budget"):
        check_plan(tight, CostModel.from_document(small), LENGTHS)
    # And the model's attention heads: Ulysses splits them evenly.
    def six_heads(degree):
        return None if 6 % degree == 0 else f"6 heads do not split over {degree} ranks"
    with pytest.raises(PlanError, match="groups\\[0\\]: degree 4: 6 heads do not split over 4 ranks"):
        check_plan(good_plan, JOB, LENGTHS, six_heads)
    check_plan(good_plan, JOB, LENGTHS, lambda degree: None)


def test_hostile_numbers_are_rules_broken_not_crashes(good_plan):
    for change in ({"first_rank": 2 ** 63 - 1}, {"degree": 2 ** 62}, {"first_rank": -(2 ** 63)}):
        plan = copy.deepcopy(good_plan)
        plan["micro_batches"][0]["groups"][0].update(change)
        with pytest.raises(PlanError):
            check_plan(plan, JOB, LENGTHS)
    plan = copy.deepcopy(good_plan)
    plan["sequences"][0]["length"] = 2 ** 64
    with pytest.raises(PlanError, match="should be an integer in range"):
        check_plan(plan, JOB)


FALLBACK_CASES = [
    (world_size, lengths)
    for world_size in (1, 2, 4, 8)
    for lengths in ([1], [5, 3000, 17, 3, 6000, 250] * 3, [2999] * 9, list(range(1, 60)))
    if max(lengths) <= 3000 * world_size  # 3,000 tokens per rank in the tiny cost model
]


@pytest.mark.parametrize("world_size, lengths", FALLBACK_CASES)
def test_fallback_plan_is_valid(world_size, lengths):
    job = job_model(world_size)
    plan = fallback_plan(lengths, job)
    check_plan(plan, job, lengths)
    assert violations(plan) == []
    degrees = {g.degree for mb in plan.micro_batches for g in mb.groups}
    assert len(degrees) == 1  # one degree for the batch
    degree = degrees.pop()
    assert degree == 1 or max(lengths) > 3000 * degree // 2  # the smallest degree that fits


def test_fallback_uses_the_bandwidth_of_the_nearest_listed_degree():
    # Issue 11, item 16: a map that lists only degree 2; degree 4 uses its bandwidth.
    job = CostModel.from_document({**cost_model_for(4), "a2a_bandwidth_gbps": {"2": 0.5}})
    plan = fallback_plan([10000, 10], job)
    assert plan.micro_batches[0].groups[0].degree == 4
    assert job.bandwidth(4) == job.bandwidth(8) == 0.5
    check_plan(plan, job, [10000, 10])


def test_assemble_places_groups_largest_first_on_aligned_ranks():
    plan = assemble_plan("t", JOB, LENGTHS, [[GroupAssignment(1, [0]), GroupAssignment(2, [4]), GroupAssignment(1, [1, 2])], [GroupAssignment(4, [3])]])
    assert [(g.degree, g.first_rank) for g in plan.micro_batches[0].groups] == [(2, 0), (1, 2), (1, 3)]
    assert violations(plan) == []


def test_fallback_refuses_a_sequence_that_fits_nowhere():
    with pytest.raises(PlanError, match="does not fit even a group of 2 ranks"):
        fallback_plan([10, 7000], job_model(2))
