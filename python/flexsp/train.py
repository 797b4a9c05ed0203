"""Entry point: `torchrun --nproc-per-node 4 -m flexsp.train --config configs/tiny-cpu.yaml`.

Per step: batch t (a pure function of the seed and t) -> its plan (rank 0 asked the planner for
it while batch t-1 trained; broadcast; validated on every rank, fallback if bad) -> rank 0 asks
for batch t+1's plan -> the step's learning rate -> train_step -> metrics (progress line, JSON
lines, TensorBoard) -> every N steps an evaluation and a checkpoint. NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from flexsp.attention import check_degree, kernel_for
from flexsp.calibrate import (Calibrator, calibrate_step, calibration_documents,
                              restore_calibration)
from flexsp.checkpoint import (CheckpointError, check_data_state, choose_checkpoint,
                               load_checkpoint, save_checkpoint)
from flexsp.config import Config, load_config
from flexsp.cost_model import CostModel
from flexsp.data import Dataset, TokenDataset, build_dataset
from flexsp.distributed import (exit_now, init_distributed, is_collective_failure,
                                peer_failure)
from flexsp.engine import train_step
from flexsp.evaluate import evaluate, plan_eval_batches
from flexsp.export import export_hf
from flexsp.groups import GroupPool
from flexsp.metrics import StepMeter, linear_weights, peak_tflops
from flexsp.metrics_log import MetricsLog, measured_record, step_record, summarize
from flexsp.model import (ModelError, ModelShape, check_max_degree, check_routable, load_hf_config,
                          saved_dtype)
from flexsp.optim import lr_at, set_lr
from flexsp.outputs import appendable_file, writable_directory
from flexsp.parallelize import build_sharded_model, compute_dtype, mixed_precision_policy
from flexsp.plan import Plan, PlanError
from flexsp.planner_client import PlanSource, broadcast_plan
from flexsp.shards import CHAT_TEMPLATE

log = logging.getLogger("flexsp.train")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flexsp.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="YAML file (see configs/tiny-cpu.yaml)")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--strategy", help="override planner.strategy (flexsp, batch-ada, static:D, ...)")
    parser.add_argument("--checkpoint-dir", help="override train.checkpoint_dir")
    parser.add_argument("--checkpoint-every", type=int, help="override train.checkpoint_every")
    parser.add_argument("--stop-after", type=int, metavar="STEP",
                        help="stop after this step with a checkpoint, as a job with a time limit "
                             "would; the learning-rate schedule still spans train.steps")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the checkpoint directory")
    parser.add_argument("--metrics", "--log-json", dest="metrics_file",
                        help="override train.metrics_file (rank 0 appends JSON lines)")
    parser.add_argument("--export", help="override parallel.export_dir (Hugging Face directory)")
    return parser.parse_args(argv)


def startup_checks(config: Config, world_size: int) -> tuple[object, CostModel]:
    """Everything that can refuse the job, done before any collective: every rank reads the
    same files and refuses alone, with the same one-line reason, instead of leaving the others
    in a collective. Returns the model's transformers config and the cost model."""
    try:
        hf_config = load_hf_config(config.model)
        check_routable(hf_config, config.data.max_seq_len)
        mixed_precision_policy(config.parallel.mixed_precision)
        cost_model = CostModel.load(config.planner.cost_model)
        if cost_model.world_size != world_size:
            raise PlanError(f"cost model {cost_model.name!r} is for "
                            f"{cost_model.world_size} ranks; this job has {world_size}")
        check_max_degree(ModelShape.of(hf_config), cost_model.max_degree)
        check_outputs(config)
    except (ModelError, PlanError, ValueError, OSError) as error:
        raise SystemExit(f"flexsp.train: {error}") from None
    return hf_config, cost_model


def check_outputs(config: Config) -> None:
    """Creates or probes every output location now, so that one that cannot be written stops
    the job before any work rather than at the first checkpoint or after the last step."""
    if config.train.checkpoint_dir:
        writable_directory(config.train.checkpoint_dir, "train.checkpoint_dir")
    if config.train.metrics_file:
        appendable_file(config.train.metrics_file, "train.metrics_file")
    if config.train.tensorboard_dir:
        writable_directory(config.train.tensorboard_dir, "train.tensorboard_dir")
    if config.parallel.export_dir:
        writable_directory(config.parallel.export_dir, "parallel.export_dir")


class StopTraining(Exception):
    """Ends the run on every rank alike with the message (the same on every rank)."""


@dataclass
class Progress:
    """Where a run is, for the one line that a failure ends it with, and what to close then."""

    step: int = 0
    collective_timeout_s: float = 0.0
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing after a failure; the failure is the news
                pass


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs `run`; a failure during the run (a non-finite loss, a checkpoint that cannot be
    written, a rank that stopped answering) ends it as one line on every rank that sees it."""
    progress = Progress()
    try:
        return run(argv, progress)
    except (StopTraining, CheckpointError) as error:
        progress.close()
        raise SystemExit(f"flexsp.train: {error}") from None
    except RuntimeError as error:
        if not dist.is_initialized() or not is_collective_failure(error):
            raise
        progress.close()
        raise SystemExit("flexsp.train: " + peer_failure(
            error, dist.get_rank(), dist.get_world_size(), progress.collective_timeout_s,
            progress.step)) from None


def next_plan(plan_source: PlanSource | None, step: int, lengths: list[int],
              next_lengths: list[int] | None) -> tuple[Plan, str]:
    """Batch `step`'s plan on every rank (checked once, on rank 0, for this job and batch);
    rank 0 also asks the planner for the next batch's.

    If rank 0 cannot produce any plan (say a sequence fits no group), it says so in the
    broadcast and every rank stops with the reason, instead of the others waiting forever.
    """
    plan = source = None
    if plan_source is not None:
        try:
            plan, source = plan_source.plan_for(step, lengths)
        except PlanError as error:
            source = f"error: {error}"
        if next_lengths is not None:  # the planner works on batch t+1 while batch t trains
            plan_source.request(step + 1, next_lengths)
    plan, source = broadcast_plan(plan, source)
    if plan is None:
        raise SystemExit(f"step {step + 1}: no plan can run this batch ({source})")
    return plan, source


def run(argv: list[str] | None, progress: Progress) -> list[dict]:
    args = parse_args(argv)
    flags = {"train.steps": "steps", "train.checkpoint_dir": "checkpoint_dir",
             "train.checkpoint_every": "checkpoint_every", "train.metrics_file": "metrics_file",
             "planner.strategy": "strategy", "parallel.export_dir": "export"}
    overrides = {key: (getattr(args, name), "--" + name.replace("_", "-"))
                 for key, name in flags.items() if getattr(args, name) is not None}
    try:
        config = load_config(args.config, overrides)
    except (ValueError, OSError) as error:
        raise SystemExit(f"flexsp.train: {error}") from None
    if args.stop_after is not None and args.stop_after < 1:
        raise SystemExit(f"flexsp.train: --stop-after {args.stop_after}: must be at least 1")
    progress.collective_timeout_s = config.train.collective_timeout_s
    hf_config, cost_model = startup_checks(config, int(os.environ.get("WORLD_SIZE", "1")))
    try:
        dataset = build_dataset(config, hf_config.vocab_size)
    except (ValueError, OSError) as error:
        raise SystemExit(f"flexsp.train: {error}") from None
    resume_from = choose_resume(config, data_position(config, dataset)) if args.resume else None
    rank, world_size, device = init_distributed(config.train.collective_timeout_s)
    model, optimizer = build_sharded_model(config, hf_config, world_size, device)
    dtype = compute_dtype(config.parallel.mixed_precision, getattr(torch, config.train.dtype))
    meter = StepMeter(ModelShape.of(hf_config), linear_weights(model), world_size, device,
                      peak_tflops(device, dtype, config.parallel.peak_tflops))
    t0 = time.perf_counter()
    pool = GroupPool(world_size, rank, cost_model.max_degree)
    pool_ms = (time.perf_counter() - t0) * 1e3
    data_state = data_position(config, dataset)
    start_step = resume(*resume_from, model, optimizer) if resume_from else 0
    eval_batches = (dataset.eval_batches(config.train.eval_sequences)
                    if config.train.eval_every > 0 and isinstance(dataset, TokenDataset) else [])

    plan_source = None
    if rank == 0:
        plan_source = PlanSource(config.planner.cost_model, cost_model, world_size,
                                 config.planner.strategy, config.planner.timeout_s,
                                 config.planner.max_restarts,
                                 degree_problem=lambda d: check_degree(meter.shape.heads, meter.shape.kv_heads, d))
        log.info("%d ranks (%s); group pool: %d communicators per rank, built in %.0f ms; "
                 "%d parameters", world_size, dist.get_backend(), len(pool), pool_ms,
                 sum(p.numel() for p in model.parameters()))
        log.info("model %s, compute in %s (mixed precision %s), attention kernel: %s; "
                 "peak %s TFLOP/s per rank", hf_config.model_type, str(dtype).removeprefix("torch."),
                 config.parallel.mixed_precision, kernel_for(device, dtype), meter.peak or "unknown")
        progress.closers.append(plan_source.close)

    eval_plans: list[Plan] = []
    if eval_batches:
        eval_plans, sources = plan_eval_batches(plan_source, eval_batches, cost_model)
        if rank == 0:
            log.info("evaluation: %d held-out batches, plans: %d from the planner, %d fallback",
                     len(eval_plans), sources.count("planner"),
                     len(sources) - sources.count("planner"))

    calibrator = None
    if rank == 0 and config.planner.calibrate:
        calibrator = Calibrator(cost_model)
        if resume_from:
            restore_calibration(resume_from[0], calibrator, plan_source, start_step,
                                dataset.batch(start_step).lengths if start_step < config.train.steps else None)

    records = []
    train = config.train
    steps = train.steps
    last = min(steps, args.stop_after or steps)
    metrics = MetricsLog(train.metrics_file, train.tensorboard_dir, steps, start_step) \
        if rank == 0 else None
    if metrics is not None:
        progress.closers.append(metrics.close)
    for step in range(start_step, last):
        progress.step = step + 1
        t_start = time.perf_counter()
        batch = dataset.batch(step)
        next_lengths = dataset.batch(step + 1).lengths if rank == 0 and step + 1 < steps else None
        plan, source = next_plan(plan_source, step, batch.lengths, next_lengths)
        t_plan = time.perf_counter()
        lr = lr_at(step, train.lr, train.lr_min, train.warmup_steps, steps, train.lr_schedule)
        set_lr(optimizer, lr)
        loss, result = train_step(model, optimizer, plan, batch, pool, rank, world_size, device,
                                  config.train.max_grad_norm)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_ms = (time.perf_counter() - t_start) * 1e3
        records.append(step_record(step, loss, lr, batch.lengths, plan, source, step_ms,
                                   (t_plan - t_start) * 1e3, result.timings_ms["dispatch"]))
        records[-1].update(meter.figures(batch.lengths, step_ms))
        if result.skipped:  # the loss or the gradient norm was not finite: no update was made
            if train.nonfinite_loss == "stop":
                what = (f"the loss is not finite ({loss})" if not math.isfinite(loss) else
                        f"the gradient norm is not finite (loss {loss:.4f})")
                raise StopTraining(
                    f"step {step + 1}: {what}; stopped before updating the model "
                    "(train.nonfinite_loss: stop; 'skip' passes over such steps); lower "
                    "train.lr or check the data")
            records[-1].update(loss=None, skipped=True)
        records[-1].update(measured_record(plan, result.per_rank_ms))
        if calibrator is not None:
            records[-1].update(calibrate_step(calibrator, plan_source, plan, result.per_rank_ms))
        if rank == 0:
            metrics.train(records[-1])
        if eval_batches and due(step, train.eval_every, steps):
            records[-1]["eval_loss"] = evaluate(model, eval_batches, eval_plans, pool, rank,
                                                world_size, device)
            if rank == 0:
                metrics.eval(step + 1, records[-1]["eval_loss"],
                             sum(len(b.lengths) for b in eval_batches))
        if train.checkpoint_dir and (due(step, train.checkpoint_every, steps) or step + 1 == last):
            seen = (step + 1) * config.data.batch_sequences
            save_checkpoint(train.checkpoint_dir, step + 1, model, optimizer,
                            {**data_state, "sequences_seen": seen},
                            calibration_documents(calibrator, plan_source, step + 1))

    if rank == 0:
        metrics.close()
        if records:
            summarize(records)
    if config.parallel.export_dir:
        # The tokenizer files come with the model: its own directory's, else the corpus's.
        tokenizer = config.model.hf or (dataset.shards.meta["tokenizer"]
                                        if isinstance(dataset, TokenDataset) else None)
        path = export_hf(model, config.parallel.export_dir, tokenizer,
                         saved_dtype(hf_config, getattr(torch, config.train.dtype)))
        if path is not None:
            template = (dataset.shards.directory / CHAT_TEMPLATE
                        if isinstance(dataset, TokenDataset) else None)
            if template is not None and template.is_file():  # what the model was trained on
                shutil.copy2(template, path / CHAT_TEMPLATE)
            log.info("exported the model to %s (Hugging Face format)", path)
    if plan_source is not None:
        plan_source.close()
    dist.destroy_process_group()
    return records


def due(step: int, every: int, steps: int) -> bool:
    """Whether something done every `every` steps (0: never) is due after 0-based `step`."""
    return every > 0 and ((step + 1) % every == 0 or step + 1 == steps)


def data_position(config: Config, dataset: Dataset) -> dict:
    """What the data stream depends on, kept with each checkpoint and checked on resume."""
    corpus = (dataset.shards.fingerprint if isinstance(dataset, TokenDataset)
              else f"{config.data.source}:{config.data.path or config.data.lengths}")
    return {"corpus": corpus, "seed": config.train.seed,
            "batch_sequences": config.data.batch_sequences}


def choose_resume(config: Config, data_state: dict) -> tuple[Path, list[str]]:
    """The newest intact checkpoint (verified against its manifest) and what was wrong with
    any newer one; refuses, before any collective, a directory with none or another stream."""
    if config.train.checkpoint_dir is None:
        raise SystemExit("flexsp.train: --resume needs a checkpoint directory")
    path, damaged = choose_checkpoint(config.train.checkpoint_dir)
    if path is None:
        found = f" ({'; '.join(damaged)})" if damaged else ""
        raise SystemExit(f"flexsp.train: --resume: no intact checkpoint in "
                         f"{config.train.checkpoint_dir}{found}")
    try:
        check_data_state(path, data_state)
    except ValueError as error:
        raise SystemExit(f"flexsp.train: --resume: {error}") from None
    return path, damaged


def resume(path: Path, damaged: list[str], model: torch.nn.Module,
           optimizer: torch.optim.Optimizer) -> int:
    for problem in damaged:
        log.warning("%s; resuming from %s instead", problem, path)
    try:
        steps_done = load_checkpoint(path, model, optimizer)
    except CheckpointError as error:
        raise SystemExit(f"flexsp.train: --resume: {error}") from None
    log.info("resumed from %s (%d steps done)", path, steps_done)
    return steps_done



if __name__ == "__main__":
    main(sys.argv[1:])
    exit_now()
