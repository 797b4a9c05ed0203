"""The profiler: measures this machine and writes the cost-model document of DESIGN.md.

    python -m flexsp.profile --config configs/tiny-cpu.yaml --out costmodel.json
    torchrun --standalone --nproc-per-node 4 -m flexsp.profile --config ... --out ...

The cost model (paper eq. 11-14) says a group of degree d holding sequences S takes
    beta1 + sum_s [(alpha1 s^2 + alpha2 s) / d + a2a(s, d)],
    a2a(s, d) = a2a_mb_per_token * s / (d * bandwidth[d])   (0 for d = 1),
and needs model_states_mb + activation_mb_per_token * sum(S) / d per rank. Each number is
measured with the runtime's own code, the way the planner will use it:
  - all-to-all: the model's all-to-alls (q, k, v out and the output back, forward and backward,
    every layer) on the group pool's communicators, all groups of a degree at once; the
    time's slope in s gives bandwidth[d] for the model's nominal volume a2a_mb_per_token
    (so KV-head replication above the KV-head count shows up as a lower effective bandwidth);
  - compute: `engine.forward_backward` of the FSDP-sharded model under plans whose groups all
    have one degree; the fit takes a2a(s, d) out and fits the rest by least squares, relative
    (each sample weighted by 1/time, so short sequences count as much as long ones);
  - memory: activations from the tensors autograd keeps for backward (CPU) or the peak
    allocated (CUDA), per token at the longest length, data.max_seq_len (attention that
    materializes its s x s weights makes per-token memory grow with s; the largest figure is
    the safe one);
    model states from the parameter count under full sharding (parameters, gradients, two
    AdamW moments, over all ranks, plus the largest FSDP unit gathered whole).
Without torchrun it runs as a world of one: compute and memory only, max_degree 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from flexsp.attention import PackedContext
from flexsp.config import Config, load_config
from flexsp.data import GlobalBatch, pack_group
from flexsp.engine import forward_backward
from flexsp.groups import GroupPool
from flexsp.cost_model import COST_MODEL_VERSION, CostModel
from flexsp.model import (ModelShape, build_model as build_hf_model, decoder_layers,
                          forward_logits, load_hf_config, max_degree_for)
from flexsp.parallelize import apply_activation_checkpointing, compute_dtype
from flexsp.plan import Plan, assemble_plan

log = logging.getLogger("flexsp.profile")

MB = 2 ** 20  # the cost model's MB (budgets are given in MiB, e.g. 30720 for 40 GB cards)

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


# ---------------------------------------------------------------------------------------------
# Fitting (pure functions; unit-tested on synthetic timings)


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


# ---------------------------------------------------------------------------------------------
# The model's facts


def a2a_mb_per_token(model: ModelShape, dtype: torch.dtype) -> float:
    """MB one rank sends per token of its slice through all-to-alls over one forward+backward.

    Per layer, forward: q (H heads), k and v (KV heads each) scattered, the output (H heads)
    gathered; backward: the same volumes the other way. The nominal KV-head count is used even
    where degree > KV replicates them; the measured bandwidth of that degree absorbs the extra.
    """
    element = torch.tensor([], dtype=dtype).element_size()
    per_layer = 2 * (2 * model.heads + 2 * model.kv_heads) * model.head_dim * element
    return model.layers * per_layer / MB


def model_states_mb(model: torch.nn.Module, world_size: int) -> float:
    """Per-rank model states under full sharding (ZeRO-3): parameters, gradients and AdamW's two
    moments, each 1/world of the whole, plus the largest FSDP unit (a block, or the root's
    embedding, norm and output) gathered whole with its gradients while it computes."""
    def unit_bytes(params) -> int:
        return sum(p.numel() * p.element_size() for p in params)

    total = unit_bytes(model.parameters())
    blocks = [unit_bytes(layer.parameters()) for layer in decoder_layers(model)]
    root = total - sum(blocks)
    return (4 * total / world_size + 2 * max(blocks + [root])) / MB


# ---------------------------------------------------------------------------------------------
# Measurements (collective: every rank calls them with the same arguments)


def uniform_plan(world_size: int, degree: int, length: int, count: int = 1) -> tuple[Plan, GlobalBatch]:
    """A plan whose world/degree groups all have `degree` and hold `count` sequences of `length`,
    and a batch to go with it (random tokens, the same on every rank)."""
    groups = world_size // degree
    generator = torch.Generator().manual_seed(length * 31 + degree)
    sequences = [torch.randint(256, (length,), generator=generator) for _ in range(groups * count)]
    # No cost model exists yet while profiling: a stand-in (never validated) carries the world
    # size, and the plan's estimates are left at zero.
    stand_in = CostModel(name="profile", world_size=world_size, gpus_per_node=world_size,
                         memory_budget_mb=math.inf, model_states_mb=0.0, activation_mb_per_token=1.0,
                         alpha1_ms=0.0, alpha2_ms=0.0, beta1_ms=0.0, a2a_mb_per_token=0.0,
                         a2a_bandwidth_gbps=(), max_degree=world_size)
    assignment = [[(degree, list(range(g * count, (g + 1) * count))) for g in range(groups)]]
    plan = assemble_plan("profile", stand_in, [length] * len(sequences), assignment, solver="profile")
    return plan, GlobalBatch(0, sequences)


def slowest_rank_ms(elapsed_s: float, device: torch.device) -> float:
    """The time of the slowest rank: a micro-batch ends when its last group does."""
    value = torch.tensor([elapsed_s * 1e3], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_rounds(points: list, run, device: torch.device, repeats: int, warmup: int,
                 seed: int = 0) -> list[float]:
    """Median over `repeats` rounds of the slowest rank's time of `run(point)`, per point.

    Each round visits every point once, in an order shuffled per round (the same on every rank):
    on a machine shared with other work, a burst of interference then lands on different points
    in different rounds, and the median discards it instead of biasing one length. `warmup`
    untimed rounds come first (FSDP's lazy initialization, allocator growth, first-call costs).
    """
    order = list(range(len(points)))
    generator = np.random.default_rng(seed)
    times: list[list[float]] = [[] for _ in points]
    for round_index in range(warmup + repeats):
        generator.shuffle(order)
        for i in order:
            dist.barrier()
            synchronize(device)
            t0 = time.perf_counter()
            run(points[i])
            synchronize(device)
            elapsed = time.perf_counter() - t0
            ms = slowest_rank_ms(elapsed, device)
            if round_index >= warmup:
                times[i].append(ms)
    return [statistics.median(t) for t in times]


def measure_compute(model: torch.nn.Module, pool: GroupPool, lengths: list[int], degrees: list[int],
                    counts: list[int], device: torch.device, repeats: int, warmup: int
                    ) -> list[Sample]:
    """forward+backward of the engine under plans whose groups all have one degree, one point
    per (degree, sequences per group, length)."""
    points = [(d, c, n) for d in degrees for c in counts for n in lengths]
    plans = {(d, c, n): uniform_plan(pool.world_size, degree=d, length=n, count=c)
             for d, c, n in points}

    def run(point: tuple[int, int, int]) -> None:
        plan, batch = plans[point]
        forward_backward(model, plan, batch, pool, pool.rank, device)
        model.zero_grad(set_to_none=True)

    times = timed_rounds(points, run, device, repeats, warmup)
    samples = [Sample(n, d, ms, c) for (d, c, n), ms in zip(points, times)]
    for s in samples:
        log.info("compute  d=%d s=%5d x%d: %8.2f ms", s.degree, s.length, s.count, s.ms)
    return samples


def model_all_to_alls(model: ModelShape, tokens: int, degree: int, group: dist.ProcessGroup,
                      dtype: torch.dtype, device: torch.device) -> None:
    """The all-to-alls one forward+backward of the model makes for `tokens` tokens per rank, with
    the shapes attention.py sends (KV heads replicated up to the degree where needed)."""
    kv = max(model.kv_heads, degree)
    heads = [model.heads, kv, kv, model.heads]  # q, k, v scattered; the output gathered
    buffers = [torch.randn(tokens * h * model.head_dim, dtype=dtype, device=device) for h in heads]
    outputs = [torch.empty_like(b) for b in buffers]
    for _ in range(model.layers):
        for _direction in ("forward", "backward"):
            for send, recv in zip(buffers, outputs):
                dist.all_to_all_single(recv, send, group=group)


def measure_all_to_all(model: ModelShape, pool: GroupPool, lengths: list[int], degrees: list[int],
                       dtype: torch.dtype, device: torch.device, repeats: int, warmup: int
                       ) -> list[Sample]:
    """The model's all-to-alls for a group's stream of each length, all groups of a degree at
    once (as in a plan of that degree: groups share the machine's links and cores)."""
    points = [(d, n) for d in degrees if d > 1 for n in lengths]

    def run(point: tuple[int, int]) -> None:
        degree, length = point
        group = pool.get(pool.rank // degree * degree, degree)
        # This rank's slice of the group's stream, padded as data.pack_group pads it.
        model_all_to_alls(model, math.ceil(length / degree), degree, group, dtype, device)

    times = timed_rounds(points, run, device, repeats, warmup, seed=1)
    samples = [Sample(n, d, ms) for (d, n), ms in zip(points, times)]
    for s in samples:
        log.info("a2a      d=%d s=%5d: %8.3f ms", s.degree, s.length, s.ms)
    return samples


def activation_bytes(model: torch.nn.Module, length: int, device: torch.device) -> int:
    """Bytes of activations one forward at degree 1 keeps for backward, for `length` tokens.

    CUDA: the peak allocated during forward+backward above what was allocated before. CPU: the
    distinct storages autograd saves, found with saved_tensors_hooks (a storage shared by
    several saved tensors counts once; parameters are not activations and are left out).
    Runs on this rank alone, so `model` must be an unsharded copy.
    """
    generator = torch.Generator().manual_seed(length)
    tokens, positions, _labels, cu_seqlens = pack_group(
        [torch.randint(model.config.vocab_size, (length,), generator=generator)], 1)
    tokens, positions = tokens.to(device), positions.to(device)
    ctx = PackedContext(None, 1, cu_seqlens)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        logits = forward_logits(model, tokens, positions, ctx)
        torch.nn.functional.cross_entropy(logits.float(), tokens, reduction="sum").backward()
        torch.cuda.synchronize()
        del logits
        model.zero_grad(set_to_none=True)
        return torch.cuda.max_memory_allocated() - before
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = forward_logits(model, tokens, positions, ctx)
        # The loss's own saved tensors (the logits' softmax) belong to the activations too.
        loss = torch.nn.functional.cross_entropy(logits, tokens, reduction="sum")
    del loss, logits
    return sum(storages.values())


def measure_activation_mb_per_token(config: Config, dtype: torch.dtype,
                                    device: torch.device, lengths: list[int]
                                    ) -> tuple[float, dict[int, float]]:
    """MB per token for the memory model, and the measured MB per token at each length.

    The cost model's memory is linear in tokens, but attention that materializes its s x s
    weights (PyTorch's math SDPA, the CPU path) is not: per-token memory grows with s. The
    largest per-token figure, that of the longest length, is taken: memory must be an upper
    bound (an underestimate is an out-of-memory error), and no sequence is longer than that.
    """
    model = build_hf_model(config.model, load_hf_config(config.model), dtype, config.train.seed)
    if config.parallel.activation_checkpointing:
        apply_activation_checkpointing(model)
    model = model.to(device)
    per_token = {n: activation_bytes(model, n, device) / n / MB for n in lengths}
    return max(per_token.values()), per_token


# ---------------------------------------------------------------------------------------------
# The document


def default_lengths(max_seq_len: int, world_size: int) -> tuple[list[int], list[int]]:
    """Fit and held-out lengths spread over [max/16, max], rounded to a multiple of the world (so
    every degree splits them evenly); the held-out ones fall between the fitted ones."""
    def rounded(fraction: float) -> int:
        return max(world_size, round(max_seq_len * fraction / world_size) * world_size)

    fit = [rounded(f) for f in (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 3 / 4, 1)]
    held_out = [rounded(f) for f in (3 / 16, 5 / 8, 7 / 8)]
    return sorted(set(fit)), sorted(set(held_out) - set(fit))


def memory_budget_mb(device: torch.device, states_mb: float, activation_mb: float,
                     budget_mb: float | None, budget_tokens: int | None, max_seq_len: int) -> float:
    """The budget: a flag if given; on CUDA the device's memory less 10% for the allocator's
    fragmentation and the framework; on CPU, where memory is plentiful and the budget is a
    choice, room for `budget_tokens` tokens per rank (default 1.5 x the longest sequence, so one
    rank holds any single sequence and a batch needs micro-batches or SP)."""
    if budget_mb is not None:
        return budget_mb
    if budget_tokens is None and device.type == "cuda":
        return 0.9 * torch.cuda.get_device_properties(device).total_memory / MB
    tokens = budget_tokens if budget_tokens is not None else math.ceil(1.5 * max_seq_len)
    return states_mb + activation_mb * tokens


@dataclass
class ProfileOptions:
    lengths: list[int] | None = None       # fitted lengths; default from data.max_seq_len
    held_out: list[int] | None = None      # lengths left out of the fit, to test it
    a2a_lengths: list[int] | None = None   # group stream lengths for the all-to-all samples
    counts: list[int] | None = None        # sequences per group in the compute samples
    repeats: int = 3
    warmup: int = 1
    memory_budget_mb: float | None = None
    budget_tokens: int | None = None
    name: str | None = None
    config_name: str = "model"            # the document's default name starts with it


def profile(config: Config, options: ProfileOptions, device: torch.device) -> tuple[dict, dict]:
    """Measures this world and returns (cost-model document, report). Collective: every rank
    calls it; all ranks return the same document."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    # Activations and all-to-alls carry the compute dtype (bf16 under mixed precision).
    dtype = compute_dtype(config.parallel.mixed_precision, getattr(torch, config.train.dtype))
    shape = ModelShape.of(load_hf_config(config.model))
    default_fit, default_held_out = default_lengths(config.data.max_seq_len, world_size)
    lengths = options.lengths or default_fit
    held_out = options.held_out if options.held_out is not None else default_held_out
    counts = options.counts or [1]
    max_degree = max_degree_for(shape, world_size)
    degrees = [2 ** i for i in range(max_degree.bit_length())]

    # Imported here: train.py is the entry point's module, and profile only borrows its builders.
    from flexsp.train import build_model
    model, _optimizer = build_model(config, world_size, device)
    pool = GroupPool(world_size, rank, max_degree)

    mb_per_token = a2a_mb_per_token(shape, dtype)
    # All-to-alls are cheap next to compute, and a group's stream holds many sequences: longer
    # streams lift the volume-proportional part above the per-call latency.
    a2a_lengths = options.a2a_lengths or [config.data.max_seq_len * k // 4 for k in (1, 2, 4, 8, 16)]
    a2a_samples = measure_all_to_all(shape, pool, a2a_lengths, degrees, dtype, device,
                                     options.repeats, options.warmup)
    bandwidth = fit_bandwidth(a2a_samples, mb_per_token)

    def a2a_ms(length: int, degree: int) -> float:
        return 0.0 if degree == 1 else mb_per_token * length / (degree * bandwidth[str(degree)])

    samples = measure_compute(model, pool, lengths + held_out, degrees, counts, device,
                              options.repeats, options.warmup)
    fitted = [s for s in samples if s.length in lengths]
    checked = [s for s in samples if s.length not in lengths]
    fit = fit_compute(fitted, a2a_ms)

    # Per-token memory grows with length under materialized attention: measure up to the
    # longest sequence the data can hold, even where the timed lengths stop short of it.
    activation_mb, activation_per_length = measure_activation_mb_per_token(
        config, dtype, device, sorted(set(lengths) | {config.data.max_seq_len}))
    states_mb = model_states_mb(model, world_size)
    budget = memory_budget_mb(device, states_mb, activation_mb, options.memory_budget_mb,
                              options.budget_tokens, config.data.max_seq_len)
    gpus_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    document = {
        "version": COST_MODEL_VERSION,
        "name": options.name or f"{options.config_name}@{device_name.replace(' ', '-')}-"
                                 f"{dist.get_backend()}-{world_size}x",
        "world_size": world_size, "gpus_per_node": gpus_per_node,
        "memory_budget_mb": round(budget, 4), "model_states_mb": round(states_mb, 4),
        "activation_mb_per_token": activation_mb,
        "alpha1_ms": fit.alpha1_ms, "alpha2_ms": fit.alpha2_ms, "beta1_ms": fit.beta1_ms,
        "a2a_mb_per_token": mb_per_token, "a2a_bandwidth_gbps": bandwidth,
        "max_degree": max_degree,
    }
    CostModel.from_document(document)  # the planner's rules: fail here, not in `serve`
    report = {
        "r2": fit.r2,
        "fit_max_relative_error": largest_relative_error(fit, fitted, a2a_ms),
        "held_out_max_relative_error": (largest_relative_error(fit, checked, a2a_ms)
                                        if checked else None),
        "held_out_lengths": sorted({s.length for s in checked}),
        "activation_mb_per_token_by_length": activation_per_length,
        "compute_samples": [vars(s) for s in samples],
        "a2a_samples": [vars(s) for s in a2a_samples],
    }
    return document, report


def describe(document: dict, report: dict) -> str:
    held_out = report["held_out_max_relative_error"]
    per_length = report["activation_mb_per_token_by_length"]
    tokens_per_rank = ((document["memory_budget_mb"] - document["model_states_mb"])
                       / document["activation_mb_per_token"])
    lines = [
        f"cost model {document['name']}: world {document['world_size']}, "
        f"max degree {document['max_degree']}",
        f"  compute  alpha1 {document['alpha1_ms']:.4g} ms/token^2, alpha2 "
        f"{document['alpha2_ms']:.4g} ms/token, beta1 {document['beta1_ms']:.4g} ms",
        f"  fit      R^2 {report['r2']:.5f}; largest relative error "
        f"{100 * report['fit_max_relative_error']:.1f}% on fitted lengths, "
        + (f"{100 * held_out:.1f}% on held-out lengths {report['held_out_lengths']}"
           if held_out is not None else "no held-out lengths"),
        f"  a2a      {document['a2a_mb_per_token']:.4g} MB/token; bandwidth GB/s "
        + (", ".join(f"d={d}: {b:.3g}" for d, b in document["a2a_bandwidth_gbps"].items())
           or "none (world of 1)"),
        f"  memory   {document['activation_mb_per_token']:.4g} MB/token (measured "
        + ", ".join(f"{v:.3g} at {n}" for n, v in per_length.items())
        + f"), model states {document['model_states_mb']:.3g} MB, budget "
        f"{document['memory_budget_mb']:.4g} MB ({tokens_per_rank:.0f} tokens per rank)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry point


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flexsp.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="YAML file; its model and train.dtype")
    parser.add_argument("--out", required=True, help="where to write the cost-model JSON")
    parser.add_argument("--lengths", type=int_list, help="fitted lengths, e.g. 128,256,512")
    parser.add_argument("--held-out", type=int_list, help="lengths measured but left out of the fit")
    parser.add_argument("--a2a-lengths", type=int_list,
                        help="group stream lengths for the all-to-all (default max_seq_len/4..4x)")
    parser.add_argument("--counts", type=int_list,
                        help="sequences per group in the compute samples (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per point (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per point")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--memory-budget-mb", type=float, help="per-rank memory budget, MB")
    budget.add_argument("--budget-tokens", type=int,
                        help="budget = model states + activations of this many tokens per rank")
    parser.add_argument("--name", help="the document's name")
    parser.add_argument("--report", help="also write the samples and fit quality (JSON) here")
    return parser.parse_args(argv)


def init_world(config: Config) -> tuple[int, int, torch.device]:
    """torchrun's world if launched by it, else a world of one (a local gloo or NCCL group), so
    FSDP and the engine run unchanged."""
    if "RANK" not in os.environ:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0",
                           "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
    from flexsp.train import init_distributed
    return init_distributed(config)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_config(args.config)
    rank, world_size, device = init_world(config)
    options = ProfileOptions(args.lengths, args.held_out, args.a2a_lengths, args.counts,
                             args.repeats, args.warmup,
                             args.memory_budget_mb, args.budget_tokens, args.name,
                             Path(args.config).stem)
    document, report = profile(config, options, device)
    if rank == 0:
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
        print(describe(document, report), flush=True)
        print(f"wrote {args.out}", flush=True)
    dist.destroy_process_group()
    return document


if __name__ == "__main__":
    main(sys.argv[1:])
    # See flexsp/train.py's exit_now: gloo + torch._dynamo can abort in static destructors.
    from flexsp.train import exit_now
    exit_now()
