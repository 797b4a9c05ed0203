"""The online refit (flexsp.calibrate) against synthetic measurements from a known true model."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from flexsp.calibrate import (Calibrator, MicroBatchTiming, GroupTiming, coefficients,
                              group_ms, micro_batch_timings, nonnegative_lstsq, with_coefficients)
from flexsp.cost_model import CostModel
from flexsp.plan import GroupAssignment, assemble_plan

PROFILED = CostModel(name="profiled", world_size=4, gpus_per_node=4, memory_budget_mb=100.0,
                     model_states_mb=10.0, activation_mb_per_token=0.01, alpha1_ms=1e-4,
                     alpha2_ms=0.05, beta1_ms=20.0, a2a_mb_per_token=0.01,
                     a2a_bandwidth_gbps=((2, 0.5), (4, 0.25)), max_degree=4)
# The machine as it really is: quadratic work 30% dearer, fixed cost lower, degree 4 slower.
TRUTH = replace(PROFILED, alpha1_ms=1.3e-4, beta1_ms=12.0, a2a_bandwidth_gbps=((2, 0.5), (4, 0.15)))


def random_micro_batch(rng: random.Random, index: int) -> MicroBatchTiming:
    shape = rng.choice([[1, 1, 1, 1], [2, 2], [4], [2, 1, 1]])
    groups, first = [], 0
    for degree in shape:
        lengths = [rng.randint(16, 2048) for _ in range(rng.randint(1, 4))]
        tokens, squares = sum(lengths), sum(n * n for n in lengths)
        groups.append(GroupTiming(index, degree, first, len(lengths), tokens, squares,
                                  group_ms(PROFILED, degree, tokens, squares), 0.0))
        first += degree
    measured = max(group_ms(TRUTH, g.degree, g.tokens, g.sum_squares) for g in groups)
    return MicroBatchTiming(index, max(g.est_ms for g in groups), measured, tuple(groups))


def window_error(model: CostModel, timings: list[MicroBatchTiming]) -> float:
    return float(np.mean([abs(max(group_ms(model, g.degree, g.tokens, g.sum_squares)
                                  for g in mb.groups) - mb.measured_ms) / mb.measured_ms
                          for mb in timings]))


def test_group_ms_is_the_cost_models_group_time():
    lengths = [100, 2000, 7]
    for degree in (1, 2, 4):
        assert group_ms(PROFILED, degree, sum(lengths), sum(n * n for n in lengths)) == \
            pytest.approx(PROFILED.group_time(lengths, degree), rel=1e-12)
    assert with_coefficients(PROFILED, coefficients(PROFILED)) == PROFILED


def test_refits_converge_to_the_machine_within_a_few_steps():
    rng = random.Random(0)
    calibrator = Calibrator(PROFILED)
    held_out = [random_micro_batch(rng, i) for i in range(40)]
    assert window_error(PROFILED, held_out) > 0.10
    for step in range(10):
        calibrator.observe([random_micro_batch(rng, i) for i in range(4)])
        calibrator.refit()
    assert window_error(calibrator.model, held_out) < 0.03, window_error(calibrator.model, held_out)
    # Memory never changes: feasibility stays the profiler's.
    assert calibrator.model.token_capacity(1) == PROFILED.token_capacity(1)


def test_a_wild_sample_moves_no_coefficient_far():
    rng = random.Random(1)
    calibrator = Calibrator(TRUTH)
    calibrator.observe([random_micro_batch(rng, i) for i in range(12)])
    calibrator.refit()
    settled = coefficients(calibrator.model)
    wild = random_micro_batch(rng, 0)
    calibrator.observe([replace(wild, measured_ms=wild.measured_ms * 10)])
    refit = calibrator.refit()
    moved = np.abs(coefficients(calibrator.model) - settled) / settled
    assert moved.max() < 0.05, refit.describe()


def test_each_refit_is_bounded():
    calibrator = Calibrator(PROFILED, max_change=0.1)
    rng = random.Random(2)
    # Everything three times slower: one refit may move a coefficient 10% of its scale at most.
    timings = [random_micro_batch(rng, i) for i in range(20)]
    calibrator.observe([replace(t, measured_ms=3 * t.measured_ms) for t in timings])
    refit = calibrator.refit()
    before, after = coefficients(PROFILED), coefficients(calibrator.model)
    assert np.all(np.abs(after - before) <= 0.1 * before * (1 + 1e-9))
    assert refit.bounded


def test_state_round_trip_and_mismatch():
    rng = random.Random(3)
    calibrator = Calibrator(PROFILED)
    calibrator.observe([random_micro_batch(rng, i) for i in range(8)])
    calibrator.refit()
    resumed = Calibrator(PROFILED)
    resumed.load_state(calibrator.state())
    assert resumed.model == calibrator.model and resumed.samples == calibrator.samples
    other = Calibrator(replace(PROFILED, memory_budget_mb=200.0))
    with pytest.raises(ValueError, match="memory_budget_mb"):
        other.load_state(calibrator.state())


def test_micro_batch_timings_take_the_slowest_rank_of_each_group():
    lengths = [300, 200, 100, 50]
    plan = assemble_plan("t", PROFILED, lengths, [[GroupAssignment(2, [0]), GroupAssignment(1, [1]),
                                                   GroupAssignment(1, [2, 3])]])
    per_rank = [[10.0], [12.0], [7.0], [30.0]]
    (mb,) = micro_batch_timings(plan, per_rank)
    assert [g.measured_ms for g in mb.groups] == [12.0, 7.0, 30.0]
    assert mb.measured_ms == 30.0 and mb.shape() == "<2,1,1>"
    assert [g.sum_squares for g in mb.groups] == [90000, 40000, 12500]


def test_nonnegative_lstsq_matches_the_constrained_optimum():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 4))
    y = a @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.01 * rng.normal(size=30)
    x = nonnegative_lstsq(a, y)
    assert np.all(x >= 0) and x[1] == 0
    # No feasible point nearby does better.
    for _ in range(200):
        trial = np.maximum(x + 0.05 * rng.normal(size=4), 0)
        assert np.sum((a @ trial - y) ** 2) >= np.sum((a @ x - y) ** 2) - 1e-9


def test_the_model_follows_a_machine_that_drifts():
    # The machine slows down by half after 30 micro-batches: 24 micro-batches later, estimates
    # have followed most of the way (without forgetting old samples they are still 13% off).
    rng = random.Random(4)
    calibrator = Calibrator(TRUTH)
    for step in range(10):
        calibrator.observe([random_micro_batch(rng, i) for i in range(3)])
        calibrator.refit()
    slower = [replace(t, measured_ms=1.5 * t.measured_ms) for t in (random_micro_batch(rng, i) for i in range(40))]
    for step in range(8):
        calibrator.observe(slower[3 * step:3 * step + 3])
        calibrator.refit()
    assert window_error(calibrator.model, slower[24:]) < 0.08
