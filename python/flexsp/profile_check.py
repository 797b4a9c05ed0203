"""How well a profiled cost model predicts real training steps, plan shape by plan shape.

    torchrun --standalone --nproc-per-node 4 -m flexsp.profile_check \
        --config configs/tiny-cpu.yaml --out costmodel.json --steps 3

Profiles this world first (as flexsp.profile does; or reads `--cost-model` and skips that), then trains
the config's real batches with fixed plan shapes (every micro-batch has the same groups, e.g.
<2,1,1>), and prints per shape the cost model's estimate of the step, the measured
forward+backward time of the step (what the cost model describes: all micro-batches, slowest
rank), the error, and the whole step's time (with validation and the optimizer, which the cost
model leaves out because no plan changes them).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from flexsp.config import Config, load_config
from flexsp.cost_model import CostModel
from flexsp.data import build_dataset
from flexsp.distributed import exit_now, init_world, slowest_rank_ms
from flexsp.engine import train_step
from flexsp.groups import GroupPool
from flexsp.model import load_hf_config
from flexsp.parallelize import build_sharded_model
from flexsp.plan import GroupAssignment, Plan, assemble_plan, check_plan
from flexsp.profile_document import ProfileOptions, describe, int_list, profile

log = logging.getLogger("flexsp.profile_check")

# The shapes at world 4: degrees of the groups of every micro-batch.
def shapes_for(world_size: int, max_degree: int) -> dict[str, list[int]]:
    """The shapes checked at this world: every degree alone, filling the world (<1,1>, <2> at
    world 2; <1,1,1,1>, <2,2>, <4> at 4), and from world 4 on one mixed shape (<2,1,1> at 4):
    half the world in one group, the rest halved again and again."""
    shapes = {}
    degree = 1
    while degree <= min(world_size, max_degree):
        shapes["<" + ",".join([str(degree)] * (world_size // degree)) + ">"] = [degree] * (world_size // degree)
        degree *= 2
    if world_size >= 4 and world_size // 2 <= max_degree:
        mixed, left = [], world_size
        while left > 1:
            left //= 2
            mixed.append(left)
        mixed.append(1)
        shapes["<" + ",".join(map(str, mixed)) + ">"] = mixed
    return shapes


def parse_shapes(text: str) -> list[list[int]]:
    """'<2,1,1> <4>' or '<2,1,1>,<4>' -> [[2, 1, 1], [4]]."""
    found = re.findall(r"<([0-9]+(?:,[0-9]+)*)>", text)
    if not found or re.sub(r"<[0-9,]*>|[\s,]", "", text):
        raise SystemExit(f"flexsp.profile_check: --shapes {text!r}: give shapes as <2,1,1> <4> "
                         "(degrees of one micro-batch's groups)")
    return [[int(d) for d in shape.split(",")] for shape in found]


def shaped_plan(lengths: list[int], degrees: list[int], cost_model: CostModel, world_size: int) -> Plan:
    """A plan whose every micro-batch has groups of `degrees`, as few micro-batches as memory
    allows, and sequences placed longest first on the group whose estimate is then smallest
    (LPT), so the shape, not a poor packing, decides the step time."""
    degrees = sorted(degrees, reverse=True)  # largest first keeps every group aligned
    if sum(degrees) > world_size:
        raise ValueError(f"shape {degrees} needs {sum(degrees)} ranks; the world has {world_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    micro_batches = 1
    while True:
        slots = [(m, g) for m in range(micro_batches) for g in range(len(degrees))]
        members: dict[tuple[int, int], list[int]] = {slot: [] for slot in slots}
        placed_all = True
        for sid in order:
            fitting = [slot for slot in slots if cost_model.fits(
                sum(lengths[i] for i in members[slot]) + lengths[sid], degrees[slot[1]])]
            if not fitting:
                placed_all = False
                break
            best = min(fitting, key=lambda slot: cost_model.group_time(
                [lengths[i] for i in members[slot] + [sid]], degrees[slot[1]]))
            members[best].append(sid)
        if placed_all:
            break
        micro_batches += 1
        if micro_batches > len(lengths):
            raise ValueError(f"a sequence fits no group of shape {degrees}")
    schedule = [[GroupAssignment(degree, members[(m, g)]) for g, degree in enumerate(degrees) if members[(m, g)]]
                for m in range(micro_batches)]
    return check_plan(assemble_plan("fixed-shape", cost_model, lengths, schedule, solver="profile-check"),
                      cost_model, lengths)


def check_shapes(config: Config, cost_model: CostModel, shapes: dict[str, list[int]], steps: int,
                 warmup: int, device: torch.device) -> list[dict]:
    """Trains `steps` real batches per shape (after `warmup` untimed ones) and returns one row
    per shape: mean predicted and measured ms, error, whole step ms. Collective.

    Shapes take turns batch by batch (batch 0 under every shape, then batch 1, ...): on a
    machine shared with other work, a burst of load then hits every shape alike instead of
    whichever shape happened to be running.
    """
    rank, world_size = dist.get_rank(), dist.get_world_size()
    hf_config = load_hf_config(config.model)
    model, optimizer = build_sharded_model(config, hf_config, world_size, device)
    pool = GroupPool(world_size, rank, cost_model.max_degree)
    try:
        dataset = build_dataset(config, hf_config.vocab_size)
    except (ValueError, OSError) as error:
        raise SystemExit(f"flexsp.profile_check: {error}") from None
    predicted = {name: [] for name in shapes}
    measured = {name: [] for name in shapes}
    whole = {name: [] for name in shapes}
    for step in range(warmup + steps):
        # Warm-up batches come from beyond the timed ones.
        batch = dataset.batch(steps + step if step < warmup else step - warmup)
        for name, degrees in shapes.items():
            plan = shaped_plan(batch.lengths, degrees, cost_model, world_size)
            dist.barrier()
            t0 = time.perf_counter()
            _loss, result = train_step(model, optimizer, plan, batch, pool, rank, world_size,
                                       device, config.train.max_grad_norm)
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_ms = slowest_rank_ms(time.perf_counter() - t0, device)
            compute_ms = slowest_rank_ms(
                (result.timings_ms["forward_backward"] + result.timings_ms["dispatch"]) / 1e3,
                device)
            if step < warmup:
                continue
            predicted[name].append(plan.est_step_ms)
            measured[name].append(compute_ms)
            whole[name].append(step_ms)
            if rank == 0:
                log.info("%-10s batch %d: %d micro-batches, est %.1f ms, forward+backward "
                         "%.1f ms, step %.1f ms", name, step - warmup,
                         len(plan.micro_batches), predicted[name][-1], compute_ms, step_ms)
    rows = []
    for name in shapes:
        step_errors = [(p - m) / m for p, m in zip(predicted[name], measured[name])]
        rows.append({
            "shape": name, "predicted_ms": statistics.mean(predicted[name]),
            "measured_ms": statistics.mean(measured[name]),
            "error": statistics.mean(predicted[name]) / statistics.mean(measured[name]) - 1,
            "worst_step_error": max(step_errors, key=abs),
            "step_ms": statistics.mean(whole[name]),
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| shape | predicted ms | measured fwd+bwd ms | error | worst step | whole step ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['predicted_ms']:.1f} | {r['measured_ms']:.1f} | "
                     f"{100 * r['error']:+.1f}% | {100 * r['worst_step_error']:+.1f}% | "
                     f"{r['step_ms']:.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flexsp.profile_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cost-model", help="check this cost model (no profiling)")
    source.add_argument("--out", help="profile first and write the cost model here")
    parser.add_argument("--budget-tokens", type=int, help="passed to the profiler")
    parser.add_argument("--repeats", type=int, default=3, help="passed to the profiler")
    parser.add_argument("--lengths", type=int_list, help="passed to the profiler")
    parser.add_argument("--counts", type=int_list, help="passed to the profiler")
    parser.add_argument("--shapes", help="shapes to check, e.g. '<2,1,1> <4>' (default: every "
                                         "degree alone, and a mixed shape from world 4 on)")
    parser.add_argument("--steps", type=int, default=3, help="timed batches per shape")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches per shape")
    parser.add_argument("--json", help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    config = load_config(args.config)
    rank, world_size, device = init_world(config.train.collective_timeout_s)
    if args.cost_model:
        cost_model = CostModel.load(args.cost_model)
    else:
        options = ProfileOptions(lengths=args.lengths, counts=args.counts, repeats=args.repeats,
                                 budget_tokens=args.budget_tokens,
                                 config_name=Path(args.config).stem)
        cost_model, report = profile(config, options, device)
        if rank == 0:
            Path(args.out).write_text(json.dumps(cost_model, indent=1) + "\n")
            print(describe(cost_model, report), flush=True)
        cost_model = CostModel.from_document(cost_model)
    shapes = (shapes_for(world_size, cost_model.max_degree) if not args.shapes else
              {"<" + ",".join(map(str, d)) + ">": d for d in parse_shapes(args.shapes)})
    shapes = {name: degrees for name, degrees in shapes.items() if sum(degrees) <= world_size}
    rows = check_shapes(config, cost_model, shapes, args.steps, args.warmup, device)
    if rank == 0:
        print(table(rows), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    dist.destroy_process_group()
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
    exit_now()
