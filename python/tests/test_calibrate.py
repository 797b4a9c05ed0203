"""The online refit (flexsp.calibrate) against synthetic measurements from a known true model."""

from __future__ import annotations

import json
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
    # The scale of a compute coefficient is its value; that of c_d at least alpha2's.
    scale = np.concatenate([before[:3], np.maximum(before[3:], before[1])])
    assert np.all(np.abs(after - before) <= 0.1 * scale * (1 + 1e-9))
    assert np.any(np.isclose(np.abs(after - before), 0.1 * scale)) and refit.bounded


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


# World 2 as the real-execution benchmark profiles it, and the machine as it ran: degree 2 costs
# 0.025 ms more per token of S/2 than the profiled all-to-all (the head scatter copies and KV
# replication around it, contention), degree 1 as profiled.
WORLD2 = CostModel(name="profiled", world_size=2, gpus_per_node=2, memory_budget_mb=78.0,
                   model_states_mb=4.7, activation_mb_per_token=0.024, alpha1_ms=1.4e-4,
                   alpha2_ms=0.083, beta1_ms=37.0, a2a_mb_per_token=0.00586,
                   a2a_bandwidth_gbps=((2, 0.95),), max_degree=2)
WORLD2_TRUTH = replace(WORLD2, a2a_bandwidth_gbps=((2, 0.00586 / (0.00586 / 0.95 + 0.025)),))


def world2_micro_batch(rng: random.Random, index: int, degree2: bool) -> MicroBatchTiming:
    shape = [2] if degree2 else [1, 1]
    groups, first = [], 0
    for degree in shape:
        lengths = [min(2048, int(rng.paretovariate(1.2) * 150)) for _ in range(rng.randint(4, 12))]
        tokens, squares = sum(lengths), sum(n * n for n in lengths)
        groups.append(GroupTiming(index, degree, first, len(lengths), tokens, squares,
                                  group_ms(WORLD2, degree, tokens, squares), 0.0))
        first += degree
    # And noise, step to step (a few per cent: the bias, not the noise, is under test).
    measured = max(group_ms(WORLD2_TRUTH, g.degree, g.tokens, g.sum_squares) for g in groups)
    measured *= rng.uniform(0.97, 1.03)
    return MicroBatchTiming(index, max(g.est_ms for g in groups), measured, tuple(groups))


def signed_error(model: CostModel, timings: list[MicroBatchTiming]) -> float:
    return float(np.mean([max(group_ms(model, g.degree, g.tokens, g.sum_squares) for g in mb.groups)
                          / mb.measured_ms - 1 for mb in timings]))


def test_a_degree_slowdown_seen_on_few_samples_is_learned():
    # The benchmark's mix: the calibrator sees its own plans, one micro-batch in six at degree 2,
    # and must then estimate every strategy's plans (static:2 is all degree 2) without a bias.
    # With c_2 held to the scale of its profiled figure it stayed 8-10% low after 30 steps.
    rng = random.Random(5)
    calibrator = Calibrator(WORLD2)
    by_degree = {d: [world2_micro_batch(rng, i, d == 2) for i in range(40)] for d in (1, 2)}
    assert signed_error(WORLD2, by_degree[2]) < -0.08
    for step in range(20):
        calibrator.observe([world2_micro_batch(rng, i, (3 * step + i) % 6 == 0) for i in range(3)])
        calibrator.refit()
    for degree, timings in by_degree.items():
        assert abs(signed_error(calibrator.model, timings)) < 0.03, (degree, signed_error(calibrator.model, timings))
    # The wider scale of c_2 does not let one wild degree-2 sample swing the estimates (without
    # the Huber weights it moves them 1.5%).
    settled = calibrator.model
    wild = world2_micro_batch(rng, 0, True)
    calibrator.observe([replace(wild, measured_ms=10 * wild.measured_ms)])
    calibrator.refit()
    for timings in by_degree.values():
        assert abs(signed_error(calibrator.model, timings) - signed_error(settled, timings)) < 0.01


def test_a_degree_the_plans_avoid_is_probed_now_and_then():
    # World 2: only <1,1> micro-batches in the window, so degree 2 is asked for (static:2), never
    # before the window holds min_samples, each probe twice as long after the one before, and
    # no more once degree 2 has probe_below micro-batches; the counters survive a checkpoint.
    rng = random.Random(5)
    calibrator = Calibrator(WORLD2, probe_every=4, probe_below=2, min_samples=4)
    asked = []
    for step in range(12):
        calibrator.observe([world2_micro_batch(rng, step, degree2=False)])
        asked.append(calibrator.probe())
    assert asked[:3] == [None, None, None]          # fewer than min_samples
    assert asked[3] == "static:2"
    assert asked[4:11] == [None] * 7 and asked[11] == "static:2"   # 8 steps later, not 4
    restored = Calibrator(WORLD2, probe_every=4, probe_below=2, min_samples=4)
    restored.load_state(json.loads(json.dumps(calibrator.state())))
    assert (restored.since_probe, restored.steps, restored.probed) == \
        (calibrator.since_probe, calibrator.steps, calibrator.probed) == (0, 12, {2: (2, 12)})
    for step in range(2):
        calibrator.observe([world2_micro_batch(rng, 20 + step, degree2=True)])
    assert [calibrator.probe() for _ in range(8)] == [None] * 8
    assert Calibrator(WORLD2, probe_every=0).probe() is None


def test_probes_of_an_avoided_degree_thin_out_over_a_long_run():
    # A run whose plans never use degree 2, with a probe's own samples gone from the window by
    # the next chance to probe (as at 8+ micro-batches a step): without the growing gaps, one
    # step in probe_every was a probe for good (250 in 2,000 steps); now 8 (at steps 1, 17, 49,
    # ..., then every probe_gap_max steps).
    rng = random.Random(6)
    calibrator = Calibrator(WORLD2, probe_every=8, probe_gap_max=512)
    calibrator.observe([world2_micro_batch(rng, i, degree2=False) for i in range(4)])
    probes = []
    for step in range(1, 2001):
        if calibrator.probe():
            probes.append(step)
        calibrator.observe([world2_micro_batch(rng, step, degree2=False)])
    assert probes[:6] == [1, 17, 49, 113, 241, 497]
    assert all(b - a == 512 for a, b in zip(probes[5:], probes[6:])) and probes[6:] == [1009, 1521]


def test_a_damaged_probe_in_a_checkpoint_is_refused_naming_the_file(tmp_path):
    from flexsp.calibrate import restore_calibration
    calibrator = Calibrator(WORLD2)
    state = {**calibrator.state(), "next_request_cost_model": WORLD2.to_document(),
             "next_request_strategy": None, "probe_strategy": "static:x"}
    (tmp_path / "calibration.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit, match=r"calibration.json: probe_strategy must be a probe"):
        restore_calibration(tmp_path, Calibrator(WORLD2), plan_source=None, steps_done=3,
                            next_lengths=None)
    # Damaged probe counters: refused the same way, never a traceback.
    for probed, message in (([2, 3], "probed must map degrees"), ({"x": [1, 2]}, "invalid literal"),
                            ({"2": 5}, "not subscriptable")):
        (tmp_path / "calibration.json").write_text(json.dumps({**state, "probe_strategy": None, "probed": probed}))
        with pytest.raises(SystemExit, match=rf"calibration.json: .*{message}"):
            restore_calibration(tmp_path, Calibrator(WORLD2), plan_source=None, steps_done=3,
                                next_lengths=None)
