"""Rank 0's record of the run: a progress line per step, JSON lines, TensorBoard when installed.

Each JSON line is one training step ({"kind": "train", "step", "loss", "lr", "tokens_per_s",
"plan", ...}) or one evaluation ({"kind": "eval", "step", "eval_loss"}); `python -m flexsp.plot`
draws them. `step_record` and `measured_record` build a step's line (where its time went; each
micro-batch's estimate beside its measured time), `summarize` prints the run's closing line.
TensorBoard is an optional extra (`pip install 'flexsp[tensorboard]'`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from flexsp.calibrate import micro_batch_timings
from flexsp.plan import Plan, plan_shape

log = logging.getLogger("flexsp.metrics_log")


class MetricsLog:
    def __init__(self, jsonl: str | None, tensorboard_dir: str | None, steps: int,
                 first_step: int = 0) -> None:
        self.steps, self.first_step = steps, first_step
        self.started = time.perf_counter()
        self.file = None
        if jsonl:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(jsonl, "a")
        self.writer = None
        if tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(tensorboard_dir)
            except ImportError:
                log.warning("train.tensorboard_dir is set but TensorBoard is not installed "
                            "(pip install 'flexsp[tensorboard]'); metrics go to JSON lines only")

    def train(self, record: dict) -> None:
        done = record["step"] - self.first_step
        elapsed = time.perf_counter() - self.started
        eta_s = elapsed / done * (self.steps - record["step"]) if done else 0.0
        extra = ""  # the model's throughput figures, where the record has them
        if record.get("tflops_per_rank") is not None:
            extra += f", {record['tflops_per_rank']:.3g} TFLOP/s/rank"
        if record.get("mfu") is not None:
            extra += f", MFU {100 * record['mfu']:.1f}%"
        if record.get("peak_memory_gb"):
            extra += f", peak mem {max(record['peak_memory_gb']):.2f} GB"
        loss = "skipped" if record.get("skipped") else f"{record['loss']:7.4f}"
        print(f"step {record['step']:4d}/{self.steps} | loss {loss}"
              f" | lr {record['lr']:.2e} | {record['tokens_per_s']:7.0f} tok/s{extra}"
              f" | plan {record['plan']} ({record['source'].split(':')[0]})"
              f" | step {record['step_ms']:6.0f} ms (est {record['est_step_ms']:.0f})"
              f" | outside compute {100 * record['outside_compute']:4.1f}%"
              f" | eta {eta_s // 60:.0f}:{eta_s % 60:02.0f}", flush=True)
        self._write({"kind": "train", **record})
        self._scalars(record["step"], {"loss/train": record["loss"], "lr": record["lr"],
                                       "throughput/tokens_per_s": record["tokens_per_s"]})

    def eval(self, step: int, eval_loss: float, sequences: int) -> None:
        print(f"step {step:4d}/{self.steps} | eval loss {eval_loss:7.4f} on {sequences} held-out "
              "sequences", flush=True)
        self._write({"kind": "eval", "step": step, "eval_loss": eval_loss})
        self._scalars(step, {"loss/eval": eval_loss})

    def _write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
            self.file.flush()

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for name, value in values.items():
                if value is not None:  # a skipped step has no loss
                    self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def json_safe(value):
    """`value` with every non-finite float as null: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def step_record(step: int, loss: float, lr: float, lengths: list[int], plan: Plan, source: str,
                step_ms: float, plan_wait_ms: float, dispatch_ms: float) -> dict:
    """What one step did and where its time went. Outside compute = waiting for the plan
    (planner, broadcast, validation) + dispatch (packing, slicing, group lookup)."""
    tokens = sum(lengths)
    return {
        "step": step + 1, "loss": loss, "lr": lr, "sequences": len(lengths), "tokens": tokens,
        "plan": plan_shape(plan), "source": source, "est_step_ms": plan.est_step_ms,
        "step_ms": step_ms, "plan_wait_ms": plan_wait_ms, "dispatch_ms": dispatch_ms,
        "outside_compute": (plan_wait_ms + dispatch_ms) / step_ms,
    }


def measured_record(plan: Plan, per_rank_ms: list[list[float]]) -> dict:
    """The plan's micro-batches and groups with their estimated and measured forward+backward
    (a group's measured time: its slowest rank's; FSDP runs over all ranks, so the groups of a
    micro-batch finish together and each measures about the micro-batch's time)."""
    timings = micro_batch_timings(plan, per_rank_ms)
    measured = sum(mb.measured_ms for mb in timings)
    return {"measured_ms": measured, "estimate_error": plan.est_step_ms / measured - 1 if measured else None,
            "micro_batches": [{"est_ms": mb.est_ms, "measured_ms": mb.measured_ms,
                               "groups": [{k: v for k, v in vars(g).items() if k != "micro_batch"}
                                          for g in mb.groups]} for mb in timings]}


def summarize(records: list[dict]) -> None:
    """One closing line: loss from the first to the last steps, throughput, time outside compute."""
    losses = [r["loss"] for r in records if not r.get("skipped")]
    skipped = len(records) - len(losses)
    k = min(3, len(losses))
    first = sum(losses[:k]) / k if k else float("nan")
    last = sum(losses[-k:]) / k if k else float("nan")
    # Leave out the first step from the timing figures: it pays for warm-up.
    timed = records[1:] or records
    total_ms = sum(r["step_ms"] for r in timed)
    tokens = sum(r["tokens"] for r in timed)
    plan_ms = sum(r["plan_wait_ms"] for r in timed)
    dispatch_ms = sum(r["dispatch_ms"] for r in timed)
    fallbacks = sum(r["source"] != "planner" for r in records)
    print(f"done: {len(records)} steps | loss {first:.4f} -> {last:.4f} (mean of first/last {k})"
          f" | {tokens / (total_ms / 1e3):.0f} tok/s | outside compute "
          f"{100 * (plan_ms + dispatch_ms) / total_ms:.1f}% of step time (plan wait "
          f"{100 * plan_ms / total_ms:.1f}%, dispatch {100 * dispatch_ms / total_ms:.1f}%)"
          f" | plans: {len(records) - fallbacks} from the planner, {fallbacks} fallback"
          + (f" | skipped {skipped} steps with a non-finite loss" if skipped else "")
          + f" | {estimate_error(timed)}", flush=True)


def estimate_error(records: list[dict]) -> str:
    """The cost model's error on the measured micro-batches: mean absolute, over the run and
    over its last half (where calibration, if on, has had the first half to learn)."""
    def mean_error(part: list[dict]) -> float:
        errors = [abs(mb["est_ms"] / mb["measured_ms"] - 1) for r in part for mb in r["micro_batches"]
                  if mb["measured_ms"] > 0]
        return 100 * sum(errors) / max(1, len(errors))
    return (f"estimate error {mean_error(records):.1f}% per micro-batch (last "
            f"{len(records) - len(records) // 2} steps {mean_error(records[len(records) // 2:]):.1f}%)")
