"""Which time equation explains a real-execution run's micro-batches, degree by degree (issue 18).

    python benchmarks/runtime/degree_forms.py out/bench/real-execution/results-w2.json [more ...]

Reads the micro-batches that benchmarks/runtime/real_execution.py recorded (every strategy's,
with each group's degree, sequences, tokens and sum of squared lengths) and fits, offline and
without the calibrator's prior, bounds or recency weights, the cost model's equation and richer
ones, each with its critical group per micro-batch (the slowest under the fit, iterated):

  base     beta1 + alpha1 Q/d + alpha2 S/d + c_d S/d (d > 1): the contract's form, c_d free
  beta_d   base + a constant per degree above 1 (per-call latency of a degree's collectives)
  seq      base + gamma n, n the group's sequences, not divided by d (a kernel call per sequence)
  seq_d    base + gamma_d n per degree above 1
  sep      base + alpha1_d Q/d + beta_d per degree above 1: a separate compute equation per
           degree, which contains a per-degree compute factor k_d (k_d times the compute of
           degree d) and beta_d

Strategies take turns batch by batch, so a factor per batch (fitted alongside, mean 1) takes out
the machine's load drift, which otherwise swamps the shape of the error. Printed per form: the
rms relative residual, the coefficients, and the mean absolute | mean signed error per plan
shape (<1> and other shapes that leave ranks idle are reported, not fitted: a group runs faster
while other ranks idle, which no per-group form expresses).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FORMS = ("base", "beta_d", "seq", "seq_d", "sep")


def read_runs(paths: list[str]) -> list[dict]:
    """Micro-batches of the runs' timed batches: shape, groups, measured ms, and batch key."""
    micro = []
    for run, path in enumerate(paths):
        results = json.loads(Path(path).read_text())
        for record in results["records"]:
            for mb in record["micro_batches"]:
                micro.append({"shape": mb["shape"], "groups": [tuple(g) for g in mb["groups"]],
                              "ms": mb["measured_ms"], "batch": (run, record["batch"])})
    return micro


def idles_ranks(mb: dict, world: int) -> bool:
    return sum(g[0] for g in mb["groups"]) < world


def features(form: str, degrees: list[int], degree: int, sequences: int, tokens: int,
             squares: int) -> np.ndarray:
    d = float(degree)
    at = [1.0 if degree == e else 0.0 for e in degrees]  # one-hot over degrees above 1
    row = [squares / d, tokens / d, 1.0] + [x * tokens / d for x in at]
    if form == "beta_d":
        row += at
    elif form == "seq":
        row += [float(sequences)]
    elif form == "seq_d":
        row += [x * sequences for x in at]
    elif form == "sep":
        row += [x * squares / d for x in at] + at
    return np.array(row)


def fit(form: str, micro: list[dict], degrees: list[int], batches: list, per_batch: bool):
    """Relative least squares; returns (coefficients, load factor per batch)."""
    index = {b: i for i, b in enumerate(batches)}
    load = np.ones(len(batches))
    theta = None
    for _ in range(8 if per_batch else 1):
        for _ in range(4):
            rows = []
            for mb in micro:
                candidates = [features(form, degrees, *g) for g in mb["groups"]]
                rows.append(candidates[0] if theta is None else max(candidates, key=lambda r: r @ theta))
            scale = np.array([load[index[mb["batch"]]] / mb["ms"] for mb in micro])
            theta, *_ = np.linalg.lstsq(np.array(rows) * scale[:, None], np.ones(len(micro)), rcond=None)
        if per_batch:
            predicted = predictions(form, theta, micro, degrees)
            for b, key in enumerate(batches):
                ratios = [mb["ms"] / p for mb, p in zip(micro, predicted) if mb["batch"] == key]
                load[b] = np.mean(ratios) if ratios else 1.0
            load /= load.mean()
    return theta, load


def predictions(form: str, theta: np.ndarray, micro: list[dict], degrees: list[int]) -> np.ndarray:
    return np.array([max(features(form, degrees, *g) @ theta for g in mb["groups"]) for mb in micro])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results-w<N>.json of real_execution.py")
    parser.add_argument("--no-load-factor", action="store_true", help="no factor per batch")
    args = parser.parse_args()
    micro = read_runs(args.results)
    world = max(sum(g[0] for g in mb["groups"]) for mb in micro)
    degrees = sorted({g[0] for mb in micro for g in mb["groups"]} - {1})
    batches = sorted({mb["batch"] for mb in micro})
    fitted = [mb for mb in micro if not idles_ranks(mb, world)]
    shapes = sorted({mb["shape"] for mb in micro})
    print(f"{len(micro)} micro-batches ({len(fitted)} fitted: no idle rank), {len(batches)} batches, "
          f"world {world}, " + ("no load factor" if args.no_load_factor else "a load factor per batch"))
    print("| form | rms | " + " | ".join(shapes) + " | coefficients |")
    print("|---|---:|" + "---:|" * len(shapes) + "---|")
    index = {b: i for i, b in enumerate(batches)}
    for form in FORMS:
        theta, load = fit(form, fitted, degrees, batches, not args.no_load_factor)
        errors = (predictions(form, theta, micro, degrees)
                  * np.array([load[index[mb["batch"]]] for mb in micro])
                  / np.array([mb["ms"] for mb in micro]) - 1)
        rms = float(np.sqrt(np.mean([e ** 2 for e, mb in zip(errors, micro) if not idles_ranks(mb, world)])))
        cells = []
        for shape in shapes:
            e = errors[[mb["shape"] == shape for mb in micro]]
            cells.append(f"{100 * np.mean(np.abs(e)):.1f}% \\| {100 * np.mean(e):+.1f}%")
        print(f"| {form} | {100 * rms:.2f}% | " + " | ".join(cells) + " | "
              + " ".join(f"{x:.3g}" for x in theta) + " |")


if __name__ == "__main__":
    main()
