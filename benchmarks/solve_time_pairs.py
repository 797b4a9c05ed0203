#!/usr/bin/env python3
"""Two planner binaries' solve time on the same batches, paired: 512 sequences on 64 GPUs.

    python3 benchmarks/solve_time_pairs.py OLD_FLEXSP NEW_FLEXSP --runs 3

For each of batches 0..N-1 of each length file, both binaries plan the batch (`flexsp plan --step
K --bound quick --json`, the default gpt-7b / a100-40g-8x8 / 384K) in alternating order, `--runs`
times; printed: the median `solver.wall_ms` per batch and binary with their ratio, then p50 / p99
/ max over all runs. One process's solve of one batch varies by up to 2x on a 2-core machine, so
only paired figures over many batches compare binaries. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess


def solve_ms(binary: str, lengths: str, step: int, extra: list[str]) -> float:
    out = subprocess.run([binary, "plan", "--lengths", lengths, "--step", str(step), "--bound", "quick",
                          "--json", *extra], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["solver"]["wall_ms"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--lengths", default="data/lengths/wikipedia.txt,data/lengths/github_code.txt")
    args, extra = parser.parse_known_args()  # the rest: more `flexsp plan` flags, for both
    extra = [a for a in extra if a != "--"]
    binaries = [args.old, args.new]
    times: dict[tuple[str, int, str], list[float]] = {}
    for run in range(args.runs):
        for lengths in args.lengths.split(","):
            for step in range(args.batches):
                order = binaries if (run + step) % 2 == 0 else binaries[::-1]
                for binary in order:
                    times.setdefault((lengths, step, binary), []).append(solve_ms(binary, lengths, step, extra))
    print("| file | batch | old ms | new ms | new / old |\n|---|---:|---:|---:|---:|")
    for (lengths, step, binary) in sorted({(f, s, binaries[0]) for f, s, _ in times}):
        old = statistics.median(times[(lengths, step, args.old)])
        new = statistics.median(times[(lengths, step, args.new)])
        print(f"| {lengths.rsplit('/', 1)[-1]} | {step} | {old:.1f} | {new:.1f} | {new / old:.2f} |")
    for name, binary in (("old", args.old), ("new", args.new)):
        values = [v for (f, s, b), vs in times.items() if b == binary for v in vs]
        print(f"{name}: {len(values)} solves, p50 {percentile(values, 50):.1f} ms, "
              f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms")
    print("load average", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
