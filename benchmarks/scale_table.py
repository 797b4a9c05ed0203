#!/usr/bin/env python3
"""The planner at cluster scale: solve time, stated gap and step against the baselines.

Prints the markdown table of benchmarks/REPORT.md's "Cluster scale" section: for each dataset,
number of sequences and number of GPUs, flexsp's solve time (p50 and p99 over --runs runs of the
same batch) on one thread and on all cores, the gap to the thorough lower bound it states, its
simulated step, and the steps of megatron-dcp, batch-ada and static on the same batch; then
the fitted growth exponents of the solve time in sequences and in GPUs.

    python3 benchmarks/scale_table.py --flexsp .build/release/flexsp \\
        --lengths-dir data/lengths --runs 5

Solve time is the planner's own wall time for the batch (`solver.wall_ms` of the plan: solve and
bound, without reading the length file); runs alternate between one thread and all cores, so a
machine whose speed drifts moves both alike. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Row:
    dataset: str
    sequences: int
    gpus: int
    solve_one: list[float]
    solve_all: list[float]
    gap: float
    step: float
    baselines: dict[str, float]


def plan(flexsp: str, lengths: str, sequences: int, gpus: int, strategy: str, threads: int | None,
         bound: str) -> dict:
    """Runs `flexsp plan --json` and returns the plan document."""
    command = [flexsp, "plan", "--model", "gpt-7b", "--cluster", "a100-40g-8x8", "--max-context", "384K",
               "--lengths", lengths, "--batch-size", str(sequences), "--world-size", str(gpus),
               "--strategy", strategy, "--bound", bound, "--json"]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scale_table: {' '.join(command)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) on log(x): y ~ x^slope."""
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def measure(args: argparse.Namespace, dataset: str, sequences: int, gpus: int) -> Row:
    lengths = os.path.join(args.lengths_dir, f"{dataset}.txt")
    one, every = [], []
    document = None
    for _ in range(args.runs):
        one.append(plan(args.flexsp, lengths, sequences, gpus, "flexsp", 1, "thorough")["solver"]["wall_ms"])
        document = plan(args.flexsp, lengths, sequences, gpus, "flexsp", None, "thorough")
        every.append(document["solver"]["wall_ms"])
    assert document is not None
    baselines = {s: plan(args.flexsp, lengths, sequences, gpus, s, None, "quick")["est_step_ms"]
                 for s in ("megatron-dcp", "batch-ada", "static")}
    step, bound = document["est_step_ms"], document["lower_bound_ms"]
    return Row(dataset, sequences, gpus, one, every, step / bound - 1, step, baselines)


def table(rows: list[Row]) -> str:
    lines = [
        "| dataset | sequences | GPUs | solve 1 core p50 / p99 (s) | solve all cores p50 / p99 (s) | stated gap |"
        " step (ms) | megatron-dcp | batch-ada | static | vs megatron-dcp |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dcp = r.baselines["megatron-dcp"]
        lines.append(
            f"| {r.dataset} | {r.sequences:,} | {r.gpus:,} "
            f"| {statistics.median(r.solve_one) / 1000:.2f} / {percentile(r.solve_one, 99) / 1000:.2f} "
            f"| {statistics.median(r.solve_all) / 1000:.2f} / {percentile(r.solve_all, 99) / 1000:.2f} "
            f"| {100 * r.gap:.2f}% | {r.step:,.1f} | {dcp:,.1f} | {r.baselines['batch-ada']:,.1f} "
            f"| {r.baselines['static']:,.1f} | {dcp / r.step:.2f}x |")
    return "\n".join(lines)


def exponents(rows: list[Row]) -> str:
    """Growth of the one-core median solve time in sequences (at fixed GPUs) and in GPUs (at
    fixed sequences), pooled over the groups with at least two sizes."""
    def pooled(key, other) -> float | None:
        slopes = []
        for dataset in sorted({r.dataset for r in rows}):
            for fixed in sorted({other(r) for r in rows}):
                points = [(key(r), statistics.median(r.solve_one)) for r in rows
                          if r.dataset == dataset and other(r) == fixed]
                slope = fit_exponent(points)
                if slope is not None:
                    slopes.append(slope)
        return statistics.fmean(slopes) if slopes else None
    by_sequences = pooled(lambda r: r.sequences, lambda r: r.gpus)
    by_gpus = pooled(lambda r: r.gpus, lambda r: r.sequences)
    text = lambda v: "n/a (one size)" if v is None else f"{v:.2f}"
    return f"solve time ~ sequences^{text(by_sequences)} (GPUs fixed), ~ GPUs^{text(by_gpus)} (sequences fixed)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flexsp", default=".build/release/flexsp", help="the planner executable")
    parser.add_argument("--lengths-dir", default="data/lengths", help="folder holding wikipedia.txt and github_code.txt")
    parser.add_argument("--datasets", default="github_code,wikipedia")
    parser.add_argument("--cells", default="4096x1024,16384x4096,4096x4096,65536x16384,16384x16384",
                        help="comma-separated SEQUENCESxGPUS")
    parser.add_argument("--runs", type=int, default=5, help="runs per cell and thread setting")
    parser.add_argument("--report", help="also write the table into this REPORT.md, between its "
                        f"{BEGIN} and {END} lines (they must be there)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rows = []
    for dataset in args.datasets.split(","):
        for cell in args.cells.split(","):
            try:
                sequences, gpus = (int(part) for part in cell.split("x"))
            except ValueError:
                parser.error(f"--cells: {cell!r} is not SEQUENCESxGPUS")
            print(f"measuring {dataset} {sequences}x{gpus}", file=sys.stderr)
            rows.append(measure(args, dataset, sequences, gpus))
    text = table(rows) + "\n\n" + exponents(rows)
    print(text)
    if args.report:
        write_into(args.report, text)


BEGIN, END = "<!-- scale-table:begin -->", "<!-- scale-table:end -->"


def write_into(path: str, text: str) -> None:
    """Replaces what lies between the BEGIN and END lines of `path` with `text`."""
    with open(path, encoding="utf-8") as handle:
        report = handle.read()
    start, end = report.find(BEGIN), report.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"scale_table: {path} has no {BEGIN} ... {END} block to fill")
    report = report[:start + len(BEGIN)] + "\n" + text + "\n" + report[end:]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(report)


if __name__ == "__main__":
    main()
