"""The cost model learns from measured steps: online, robust, bounded refits (issue 18).

A profiled cost model is a snapshot of one machine, load and kernel. Every step measures the
real thing: each micro-batch's forward+backward on every rank. `Calibrator` keeps a window of
recent micro-batches and, between steps, refits the time coefficients the planner uses:

    group of degree d, S = its tokens, Q = the sum of its squared lengths:
    time = beta1 + alpha1 Q / d + alpha2 S / d + c_d S / d,   c_d = a2a_mb_per_token / bandwidth[d]

so alpha1, alpha2, beta1 (compute, shared) and one communication coefficient per degree d >= 2
(written back as bandwidth[d]). Memory fields never change: feasibility stays the profiler's.

FSDP runs over all ranks, so the groups of a micro-batch finish together: a micro-batch's
measured time is that of its slowest group. Each micro-batch is therefore one sample, explained
by its critical group (the one the current model thinks slowest).

Recent samples weigh more (a half-life of `half_life` micro-batches), so the model follows a
machine whose load drifts. Robust and bounded, so that one bad sample (a page fault, a neighbour's burst) cannot swing
plans: residuals are relative (short micro-batches count as much as long ones) and Huber-
weighted (a sample far off pulls with a bounded force); a prior keeps each coefficient near its
current value where the window says little (a degree no recent plan used keeps its figure); and
each refit moves a coefficient by at most `max_change` of its scale. Every refit is logged.

The refit learns only from the plans it is shown, and a degree the planner avoids is one it
cannot correct; so now and then (`probe`) it asks for one step at `static:d` for a degree d the
window has too few micro-batches of.

The scale of c_d is at least alpha2's: c_d is where everything degree d adds per token goes
(at world 2, fitted on all strategies' steps: 2-8 times the all-to-all the profiler times
alone), and held to its own small figure it could not move (benchmarks/runtime/
REAL_EXECUTION.md, "Degree bias").
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from flexsp.cost_model import CostModel
from flexsp.plan import Plan

if TYPE_CHECKING:
    from flexsp.planner_client import PlanSource

log = logging.getLogger("flexsp.calibrate")

COMPUTE = ("alpha1_ms", "alpha2_ms", "beta1_ms")


@dataclass(frozen=True)
class GroupTiming:
    """One group of one micro-batch: what it held, the estimate, and what it took."""
    micro_batch: int
    degree: int
    first_rank: int
    sequences: int
    tokens: int
    sum_squares: int
    est_ms: float
    measured_ms: float  # the slowest of the group's ranks

    def features(self) -> tuple[int, int, int]:
        return self.degree, self.tokens, self.sum_squares


@dataclass(frozen=True)
class MicroBatchTiming:
    index: int
    est_ms: float
    measured_ms: float  # the slowest rank: the micro-batch ends when its last group does
    groups: tuple[GroupTiming, ...]

    def shape(self) -> str:
        return "<" + ",".join(str(g.degree) for g in sorted(self.groups, key=lambda g: -g.degree)) + ">"


def micro_batch_timings(plan: Plan, per_rank_ms: Sequence[Sequence[float]],
                        cost_model: CostModel | None = None) -> list[MicroBatchTiming]:
    """The plan's micro-batches with their measured times; `per_rank_ms[r][m]` is rank r's
    forward+backward of micro-batch m. Estimates come from `cost_model` (the plan's own by
    default)."""
    model = cost_model or plan.cost_model
    length_of = dict(plan.sequences)
    result = []
    for m, mb in enumerate(plan.micro_batches):
        groups = []
        for g in mb.groups:
            lengths = [length_of[i] for i in g.sequence_ids]
            measured = max(per_rank_ms[r][m] for r in range(g.first_rank, g.first_rank + g.degree))
            groups.append(GroupTiming(m, g.degree, g.first_rank, len(lengths), sum(lengths),
                                      sum(n * n for n in lengths), model.group_time(lengths, g.degree),
                                      measured))
        result.append(MicroBatchTiming(m, max((g.est_ms for g in groups), default=0.0),
                                       max(row[m] for row in per_rank_ms), tuple(groups)))
    return result


# ---------------------------------------------------------------------------------------------
# The linear form of the cost model's time equation


def comm_degrees(model: CostModel) -> tuple[int, ...]:
    return tuple(d for d in model.degrees if d > 1)


def coefficients(model: CostModel) -> np.ndarray:
    """[alpha1, alpha2, beta1, c_2, c_4, ...] of `model` (c_d in ms per token of S/d)."""
    comm = [model.a2a_mb_per_token / model.bandwidth(d) for d in comm_degrees(model)]
    return np.array([model.alpha1_ms, model.alpha2_ms, model.beta1_ms, *comm], dtype=np.float64)


def with_coefficients(model: CostModel, theta: np.ndarray) -> CostModel:
    """`model` with the time coefficients `theta`; memory fields untouched."""
    alpha1, alpha2, beta1 = (float(x) for x in theta[:3])
    bandwidth = dict(model.a2a_bandwidth_gbps)
    if model.a2a_mb_per_token > 0:
        for d, c in zip(comm_degrees(model), theta[3:]):
            # A vanishing coefficient would mean infinite bandwidth, which the contract refuses.
            bandwidth[d] = model.a2a_mb_per_token / max(float(c), 1e-12)
    updated = replace(model, alpha1_ms=alpha1, alpha2_ms=alpha2, beta1_ms=beta1,
                      a2a_bandwidth_gbps=tuple(sorted(bandwidth.items())))
    updated.validate()
    return updated


def feature_row(model: CostModel, degree: int, tokens: float, sum_squares: float) -> np.ndarray:
    degrees = comm_degrees(model)
    row = np.zeros(3 + len(degrees))
    row[:3] = (sum_squares / degree, tokens / degree, 1.0)
    if degree > 1 and model.a2a_mb_per_token > 0:
        row[3 + degrees.index(degree)] = tokens / degree
    return row


def group_ms(model: CostModel, degree: int, tokens: float, sum_squares: float) -> float:
    """`model.group_time` from a group's token count and sum of squared lengths."""
    return float(feature_row(model, degree, tokens, sum_squares) @ coefficients(model))


# ---------------------------------------------------------------------------------------------
# The refit


@dataclass(frozen=True)
class Sample:
    """One measured micro-batch: its groups as (degree, tokens, sum of squares), and its time."""
    groups: tuple[tuple[int, int, int], ...]
    measured_ms: float

    def to_json(self) -> dict:
        return {"groups": [list(g) for g in self.groups], "measured_ms": self.measured_ms}

    @classmethod
    def from_json(cls, data: dict) -> Sample:
        return cls(tuple(tuple(int(x) for x in g) for g in data["groups"]), float(data["measured_ms"]))


@dataclass(frozen=True)
class Refit:
    """What one refit changed, for the log and the metrics file."""
    samples: int
    error_before: float   # mean absolute relative error of the window, old model
    error_after: float    # and new model
    changes: dict[str, tuple[float, float]]  # coefficient: (old, new)
    bounded: tuple[str, ...]                 # coefficients the per-refit bound held back

    def describe(self) -> str:
        moved = [f"{name} {old:.4g}->{new:.4g} ({100 * (new / old - 1) if old else math.inf:+.1f}%"
                 f"{', bounded' if name in self.bounded else ''})"
                 for name, (old, new) in self.changes.items() if old != new]
        return (f"{self.samples} micro-batches, window error {100 * self.error_before:.1f}% -> "
                f"{100 * self.error_after:.1f}%: " + ("; ".join(moved) or "no change"))


class Calibrator:
    """The current cost model and the window of measured micro-batches it is refitted from."""

    def __init__(self, model: CostModel, window: int = 48, max_change: float = 0.25,
                 prior: float = 1.0, huber: float = 0.05, min_samples: int = 4,
                 half_life: float = 6.0, probe_below: int = 6, probe_every: int = 2,
                 probe_gap_max: int = 1024) -> None:
        self.model = model
        self.window, self.max_change, self.prior = window, max_change, prior
        self.half_life = half_life
        self.huber, self.min_samples = huber, min_samples
        self.probe_below, self.probe_every, self.probe_gap_max = probe_below, probe_every, probe_gap_max
        self.samples: list[Sample] = []
        self.refits = 0
        self.steps = 0  # calls of `probe`: one per step
        self.probed: dict[int, tuple[int, int]] = {}  # degree: (probes so far, step of the last)

    @property
    def since_probe(self) -> float:
        """Steps since the last probe of any degree (infinite before the first)."""
        return self.steps - max(last for _, last in self.probed.values()) if self.probed else math.inf

    def probe(self) -> str | None:
        """The strategy of the next plan asked for: `static:d` when degree d is one the model
        plans with but fewer than `probe_below` micro-batches of the window ran a group at it
        (the smallest such d), at most one step in `probe_every`; else None (the job's own).

        Why: the refit can only correct the degrees the planner's own plans use, and a degree
        the profiled model misprices low or high is one they keep avoiding or overusing
        (measured: degree 2 stayed 6% low at world 2 with one degree-2 micro-batch in 16).
        A probe step costs what a static plan costs over the planner's (0-12% here). A degree
        the planner keeps avoiding would be probed one step in `probe_every` for good (its
        samples leave the window in a few steps): so each further probe of a degree waits twice
        as long as the one before (`probe_every` * 2^k steps after the k-th, at most
        `probe_gap_max`): at the defaults 8 probes of such a degree in the first 1,000
        steps, then one per `probe_gap_max`. The defaults (6 micro-batches, from every second
        step) were measured at world 2 against the earlier 2 and 8: the calibrated signed error
        of degree 2 over 10 runs had a spread (sd) of 2.0% against 5.4% over 8 runs, and both
        degrees were within +-3% in 7 of 10 runs against 2 of 8 (benchmarks/runtime/
        REAL_EXECUTION.md, "The noise floor").
        """
        self.steps += 1
        if self.probe_every <= 0 or self.since_probe < self.probe_every or len(self.samples) < self.min_samples:
            return None
        for degree in comm_degrees(self.model):
            seen = sum(any(g[0] == degree for g in s.groups) for s in self.samples)
            count, last = self.probed.get(degree, (0, 0))
            gap = min(self.probe_every * 2 ** min(count, 30), max(self.probe_gap_max, self.probe_every))
            if seen < self.probe_below and (count == 0 or self.steps - last >= gap):
                self.probed[degree] = (count + 1, self.steps)
                log.info("calibration: %d micro-batches of the window ran at degree %d; the next "
                         "plan asked for is static:%d (probe %d of that degree)", seen, degree, degree,
                         count + 1)
                return f"static:{degree}"
        return None

    def observe(self, timings: Sequence[MicroBatchTiming]) -> None:
        """Adds a step's measured micro-batches; non-finite or non-positive times are dropped."""
        for mb in timings:
            if not (math.isfinite(mb.measured_ms) and mb.measured_ms > 0) or not mb.groups:
                continue
            self.samples.append(Sample(tuple(g.features() for g in mb.groups), mb.measured_ms))
        del self.samples[:-self.window]

    def predict(self, sample: Sample, theta: np.ndarray | None = None) -> float:
        theta = coefficients(self.model) if theta is None else theta
        return max(float(feature_row(self.model, *g) @ theta) for g in sample.groups)

    def refit(self) -> Refit | None:
        """Refits the model from the window (None while it holds fewer than `min_samples`)."""
        if len(self.samples) < self.min_samples:
            return None
        theta0 = coefficients(self.model)
        measured = np.array([s.measured_ms for s in self.samples])
        # Each sample is explained by its critical group under the current model.
        rows = np.stack([max((feature_row(self.model, *g) for g in s.groups),
                             key=lambda row: float(row @ theta0)) for s in self.samples])
        # Scale of each coefficient: its current value, or, for one at zero, the value at which
        # its term would account for 5% of the mean time of the samples that use it.
        used = rows > 0
        usage = np.array([rows[used[:, j], j].mean() if used[:, j].any() else 1.0
                          for j in range(rows.shape[1])])
        scale = np.where(theta0 > 0, theta0, 0.05 * measured.mean() / usage)
        # c_d multiplies the same tokens/d as alpha2 and has to absorb every cost degree d adds
        # per token (the all-to-all, the head scatter copies and KV replication around it,
        # contention), not only the all-to-all the profiler timed alone: measured against
        # that figure, the prior and the bound held c_d in place.
        scale[3:] = np.maximum(scale[3:], theta0[1])
        # Relative residuals, and recent samples count more (half the weight every `half_life`
        # micro-batches back), so the model follows a machine whose load drifts.
        age = np.arange(len(measured))[::-1]
        weights = np.sqrt(0.5 ** (age / self.half_life)) / measured
        huber = np.ones(len(measured))
        for _ in range(4):
            # Iteratively reweighted least squares: the first pass plain, then Huber weights on
            # the relative residuals, with a threshold from their median size, so a systematic
            # shift (every sample off alike) moves the model and a lone wild sample does not.
            w = np.sqrt(huber) * weights
            prior = math.sqrt(self.prior) / scale
            theta = nonnegative_lstsq(np.vstack([rows * w[:, None], np.diag(prior)]),
                                      np.concatenate([measured * w, theta0 * prior]))
            relative = np.abs(rows @ theta - measured) / measured
            threshold = max(self.huber, 1.345 * 1.4826 * float(np.median(relative)))
            huber = np.minimum(1.0, threshold / np.maximum(relative, 1e-12))
        bound = self.max_change * scale
        clamped = np.clip(theta, theta0 - bound, theta0 + bound)
        clamped = np.maximum(clamped, 0.0)
        names = [*COMPUTE, *(f"c{d}_ms_per_token" for d in comm_degrees(self.model))]
        bounded = tuple(n for n, a, b in zip(names, theta, clamped) if not math.isclose(a, b))
        if not np.any(clamped[:3] > 0):  # the contract needs some compute time
            clamped[:3] = theta0[:3]
        before = float(np.mean(np.abs(rows @ theta0 - measured) / measured))
        updated = with_coefficients(self.model, clamped)
        after = float(np.mean([abs(self.predict(s, clamped) - s.measured_ms) / s.measured_ms
                               for s in self.samples]))
        self.model = updated
        self.refits += 1
        result = Refit(len(self.samples), before, after,
                       {n: (float(a), float(b)) for n, a, b in zip(names, theta0, clamped)}, bounded)
        log.info("calibration %d: %s", self.refits, result.describe())
        return result

    # -- checkpoints: a resumed run plans as the interrupted one would have -------------------

    def state(self) -> dict:
        return {"cost_model": self.model.to_document(), "refits": self.refits,
                "probe_steps": self.steps,
                "probed": {str(d): list(v) for d, v in self.probed.items()},
                "samples": [s.to_json() for s in self.samples]}

    def load_state(self, state: dict) -> None:
        model = CostModel.from_document(state["cost_model"])
        for key in ("world_size", "max_degree", "memory_budget_mb", "model_states_mb",
                    "activation_mb_per_token", "a2a_mb_per_token"):
            if getattr(model, key) != getattr(self.model, key):
                raise ValueError(f"the checkpoint's calibrated cost model has {key} "
                                 f"{getattr(model, key)!r}, this job's {getattr(self.model, key)!r}")
        self.model = model
        self.refits = int(state["refits"])
        self.steps = int(state.get("probe_steps", 0))
        probed = state.get("probed", {})
        if not isinstance(probed, dict):
            raise ValueError(f"probed must map degrees to [probes, last step], found {probed!r}")
        self.probed = {int(d): (int(v[0]), int(v[1])) for d, v in probed.items()}
        self.samples = [Sample.from_json(s) for s in state["samples"]][-self.window:]


def nonnegative_lstsq(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """argmin ||A x - y|| subject to x >= 0 (Lawson-Hanson active set; a handful of columns)."""
    n = features.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    for _ in range(3 * n + 10):
        gradient = features.T @ (target - features @ x)
        candidates = np.where(~passive & (gradient > 1e-12 * max(1.0, float(np.abs(gradient).max()))))[0]
        if candidates.size == 0:
            break
        passive[candidates[np.argmax(gradient[candidates])]] = True
        while True:
            z = np.zeros(n)
            z[passive], *_ = np.linalg.lstsq(features[:, passive], target, rcond=None)
            if np.all(z[passive] > 0):
                x = z
                break
            blocking = passive & (z <= 0)
            step = np.min(x[blocking] / np.maximum(x[blocking] - z[blocking], 1e-300))
            x = x + step * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
    return x


def probe_for(strategy: str | None, model: CostModel, lengths: list[int]) -> str | None:
    """`strategy` when it is not a probe or the batch fits the probe's degree; else None (a
    probe at a degree this batch's longest sequence does not fit is skipped)."""
    if strategy is None or not strategy.startswith("static:") or not lengths:
        return strategy
    return strategy if model.fits(max(lengths), int(strategy.removeprefix("static:"))) else None


# The training loop's side of calibration: refit between steps, keep it in checkpoints.

def calibrate_step(calibrator: Calibrator, plan_source: PlanSource, plan: Plan,
                   per_rank_ms: list[list[float]]) -> dict:
    """Rank 0, between steps: refit the cost model from this step's micro-batches and plan with
    it from the next request on (batch t+2: t+1's plan was asked for while t trained)."""
    t0 = time.perf_counter()
    calibrator.observe(micro_batch_timings(plan, per_rank_ms))
    try:
        refit = calibrator.refit()
    except ValueError as error:  # a refit that breaks the contract (numpy's LinAlgError too)
        log.warning("calibration: refit skipped, the model stays as it was: %s", error)
        refit = None
    if refit is not None:
        plan_source.set_cost_model(calibrator.model)
    probe = calibrator.probe()
    plan_source.set_strategy(probe)
    return {"refit_ms": (time.perf_counter() - t0) * 1e3,
            "calibration": refit.describe() if refit is not None else None,
            **({"probe": probe} if probe else {})}


def calibration_documents(calibrator: Calibrator | None, plan_source: PlanSource | None,
                          steps_done: int) -> dict[str, dict] | None:
    """What a checkpoint keeps of the calibration: the window and current model, and the model
    the next batch's plan was asked with, so a resumed run plans as the interrupted one would."""
    if calibrator is None:
        return None
    asked = plan_source.pending.get(steps_done, plan_source.planning_model)
    return {"calibration": {**calibrator.state(), "next_request_cost_model": asked.to_document(),
                            "next_request_strategy": plan_source.pending_strategy.get(steps_done),
                            "probe_strategy": plan_source.strategy}}


def restore_calibration(checkpoint: Path, calibrator: Calibrator, plan_source: PlanSource,
                        steps_done: int, next_lengths: list[int] | None) -> None:
    path = Path(checkpoint) / "calibration.json"
    if not path.is_file():
        log.warning("%s is missing: calibration starts again from %s", path, calibrator.model.name)
        return
    try:
        state = json.loads(path.read_text())
        calibrator.load_state(state)
        asked = CostModel.from_document(state["next_request_cost_model"])
        asked_strategy, probe = state.get("next_request_strategy"), state.get("probe_strategy")
        for name, value in (("next_request_strategy", asked_strategy), ("probe_strategy", probe)):
            if value is not None and not (isinstance(value, str) and re.fullmatch(r"static:[1-9][0-9]{0,6}", value)):
                raise ValueError(f"{name} must be a probe (static:<degree>) or null, found {value!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"flexsp.train: --resume: {path}: {error}") from None
    plan_source.set_cost_model(calibrator.model)
    plan_source.set_strategy(probe)
    if next_lengths is not None:  # the next batch's plan, asked as the interrupted run asked it
        plan_source.request(steps_done, next_lengths, asked, asked_strategy)
    log.info("calibration restored from %s (%d refits)", path, calibrator.refits)
