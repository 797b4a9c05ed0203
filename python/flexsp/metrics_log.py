"""Rank 0's record of the run: a progress line per step, JSON lines, TensorBoard when installed.

Each JSON line is one training step ({"kind": "train", "step", "loss", "lr", "tokens_per_s",
"plan", ...}) or one evaluation ({"kind": "eval", "step", "eval_loss"}); `python -m flexsp.plot`
draws them. TensorBoard is an optional extra (`pip install 'flexsp[tensorboard]'`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

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
