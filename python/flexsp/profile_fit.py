"""The profiler's fitting: cost-model coefficients from timings (pure functions, unit-tested on
synthetic timings; see flexsp/profile.py for the model they fit).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

A2ATime = Callable[[int, int], float]  # (group stream length, degree) -> ms


def no_a2a(length: int, degree: int) -> float:
    return 0.0


@dataclass
class Sample:
    """One measurement: a group of `degree` ranks holding `count` sequences of `length`."""
    length: int
    degree: int
    ms: float
    count: int = 1


@dataclass
class ComputeFit:
    alpha1_ms: float
    alpha2_ms: float
    beta1_ms: float
    r2: float

    def predict(self, length: int, degree: int, count: int = 1) -> float:
        return self.beta1_ms + count * (self.alpha1_ms * length ** 2 + self.alpha2_ms * length) / degree



def nonnegative_lstsq(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """argmin ||A x - y|| subject to x >= 0, for a handful of columns.

    The planner rejects negative alpha or beta (a negative beta1 would make splitting a group
    look free), and noise can push a small true coefficient below zero. With 3 columns, trying
    every subset of free columns and keeping the best feasible solution is exact and cheap.
    """
    n = features.shape[1]
    best, best_residual = np.zeros(n), float(np.sum(target ** 2))
    for k in range(1, n + 1):
        for free in itertools.combinations(range(n), k):
            x_free, *_ = np.linalg.lstsq(features[:, free], target, rcond=None)
            if np.any(x_free < 0):
                continue
            x = np.zeros(n)
            x[list(free)] = x_free
            residual = float(np.sum((features @ x - target) ** 2))
            if residual < best_residual:
                best, best_residual = x, residual
    return best


def r_squared(predicted: np.ndarray, measured: np.ndarray) -> float:
    residual = float(np.sum((measured - predicted) ** 2))
    total = float(np.sum((measured - measured.mean()) ** 2))
    return 1.0 - residual / total if total > 0 else 1.0


def fit_compute(samples: list[Sample], a2a_ms: A2ATime = no_a2a) -> ComputeFit:
    """Fits time = beta1 + count (alpha1 s^2 + alpha2 s) / d + count a2a(s, d).

    a2a(s, d) is known (measured separately) and taken out first. Least squares on relative
    error: each row is divided by its measured time, because timings span two orders of
    magnitude and the planner cares about relative error on short sequences as much as on long.
    """
    lengths = np.array([s.length for s in samples], dtype=np.float64)
    degrees = np.array([s.degree for s in samples], dtype=np.float64)
    counts = np.array([s.count for s in samples], dtype=np.float64)
    measured = np.array([s.ms for s in samples], dtype=np.float64)
    known = np.array([s.count * a2a_ms(s.length, s.degree) for s in samples])
    features = np.stack([counts * lengths ** 2 / degrees, counts * lengths / degrees,
                         np.ones_like(lengths)], axis=1)
    weights = 1.0 / measured
    x = nonnegative_lstsq(features * weights[:, None], (measured - known) * weights)
    predicted = features @ x + known
    return ComputeFit(float(x[0]), float(x[1]), float(x[2]), r_squared(predicted, measured))


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope of y = c0 + c1 x."""
    features = np.stack([np.ones(len(xs)), np.asarray(xs, dtype=np.float64)], axis=1)
    (c0, c1), *_ = np.linalg.lstsq(features, np.asarray(ys, dtype=np.float64), rcond=None)
    return float(c0), float(c1)


def fit_bandwidth(samples: list[Sample], a2a_mb_per_token: float) -> dict[str, float]:
    """Effective all-to-all bandwidth per degree, GB/s (= MB/ms), as the cost model uses it.

    a2a(s, d) = a2a_mb_per_token * s / (d * bandwidth[d]) is linear in s with no intercept; the
    slope of the measured time in s is what grows with a group's tokens, so bandwidth[d] comes
    from the slope. The intercept (latency, a fixed cost per group) belongs to beta1, and the
    compute fit picks it up there.
    """
    bandwidth = {}
    for degree in sorted({s.degree for s in samples}):
        points = [s for s in samples if s.degree == degree]
        _, slope = fit_line([s.length for s in points], [s.ms for s in points])
        if slope <= 0:
            # Volumes too small to rise above the noise: no slope to read. The time of the
            # largest volume, all of it charged to bandwidth, is then a safe (low) figure.
            largest = max(points, key=lambda s: s.length)
            slope = largest.ms / largest.length
        bandwidth[str(degree)] = a2a_mb_per_token / (degree * slope)
    return bandwidth


def largest_relative_error(fit: ComputeFit, samples: list[Sample], a2a_ms: A2ATime = no_a2a
                           ) -> float:
    return max(abs(fit.predict(s.length, s.degree, s.count) + s.count * a2a_ms(s.length, s.degree)
                   - s.ms) / s.ms for s in samples)
