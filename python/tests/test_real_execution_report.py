"""The real-execution benchmark's tables (benchmarks/runtime/real_execution.py --report-only and
--summary) from a results file whose figures are known: what each target line counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, job_model

SCRIPT = REPO_ROOT / "benchmarks" / "runtime" / "real_execution.py"
STRATEGIES = ["flexsp", "flexsp+cal", "batch-ada", "static:1", "static:2", "repeat"]
# Step ms per batch: flexsp+cal fastest on average, and more than 3% behind static:2 on batch 1;
# repeat is flexsp's plan again, 10% apart on batch 2 (the noise).
STEPS = {"flexsp": [100, 100, 100], "flexsp+cal": [90, 104, 90], "batch-ada": [100, 100, 100],
         "static:1": [120, 120, 120], "static:2": [110, 100, 110], "repeat": [100, 100, 110]}


def micro_batch(degree: int, measured: float, estimate: float) -> dict:
    groups = [[2, 4, 2000, 1_000_000]] if degree == 2 else [[1, 2, 1000, 500_000], [1, 2, 900, 400_000]]
    return {"shape": "<2>" if degree == 2 else "<1,1>", "measured_ms": measured, "est_profiled_ms": estimate,
            "est_calibrated_ms": estimate, "critical_degree": degree, "groups": groups}


def write_run(folder: Path, degree2_estimate: float) -> None:
    records = []
    for b in range(3):
        for s in STRATEGIES:
            degree = 2 if s == "static:2" else 1
            estimate = STEPS[s][b] * (degree2_estimate if degree == 2 else 1.0)
            records.append({"strategy": s, "batch": b, "plan": "<1,1>", "est_step_ms": estimate,
                            "step_ms": STEPS[s][b], "probe": None, "refit_ms": 1.0 if s == "flexsp+cal" else None,
                            "refit": None, "micro_batches": [micro_batch(degree, STEPS[s][b], estimate)]})
    folder.mkdir()
    (folder / "results-w2.json").write_text(json.dumps({
        "strategies": STRATEGIES, "records": records, "calibration": [], "trajectory": [], "batch": 16,
        "cost_model": job_model(2).to_document(), "profiled_cost_model": job_model(2).to_document()}))


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_report_counts_the_noise_and_the_batches_behind(tmp_path):
    write_run(tmp_path / "a", degree2_estimate=1.0)
    out = run("--report-only", "--out", str(tmp_path / "a"))
    assert "more than 3% apart on 1 of 3 batches" in out
    assert "flexsp+cal / best static per batch: 0.82 1.04 0.82 (1 of 3 slower by more than 3%)" in out
    assert "repeat / best static per batch: 0.91 1.00 1.00 (0 of 3" in out
    assert "critical degree 1: calibrated signed +0.0%" in out and "control, calibrated on every" in out


def test_summary_counts_runs_meeting_each_target(tmp_path):
    write_run(tmp_path / "a", degree2_estimate=1.0)
    write_run(tmp_path / "b", degree2_estimate=1.10)   # degree 2 overestimated by 10%
    out = run("--summary", str(tmp_path / "a"), str(tmp_path / "b"))
    assert "2 runs: flexsp+cal's mean step the lowest in 2" in out
    # 1 batch behind in 3 is more than 1 in 12; flexsp and the repeat are never behind.
    assert "behind the best static plan on at most 1 batch in 12 in 0 (flexsp+cal), 2 (flexsp), 2 (repeat)" in out
    assert "every degree's signed error within +-3% in 1" in out
    assert "degree 2: calibrated signed error, mean over runs +5.0%" in out


def test_a_missing_or_damaged_results_file_is_named(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results-w2.json").write_text("{not json")
    for args, message in ((["--summary", str(tmp_path / "nowhere")], "no results-w2.json in"),
                          (["--report-only", "--out", str(tmp_path / "bad")], "is not a results file"),
                          (["--probe-every", "-1", "--report-only"], "--probe-every must be 0")):
        result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
