"""The profiler's cost-model document: this world measured (flexsp/profile_measure.py), the
coefficients fitted (flexsp/profile_fit.py), checked with the planner's rules, and described.
Used by both `python -m flexsp.profile` and `python -m flexsp.profile_check`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from flexsp.config import Config
from flexsp.cost_model import COST_MODEL_VERSION, CostModel
from flexsp.groups import GroupPool
from flexsp.model import ModelShape, load_hf_config, max_degree_for
from flexsp.parallelize import build_sharded_model, compute_dtype
from flexsp.profile_fit import fit_bandwidth, fit_compute, largest_relative_error
from flexsp.profile_measure import (MB, a2a_mb_per_token, measure_activation_mb_per_token,
                                    measure_all_to_all, measure_compute, model_states_mb)


def int_list(text: str) -> list[int]:
    """A list option's value on the command line: "128,256,512"."""
    return [int(x) for x in text.split(",") if x.strip()]


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
    hf_config = load_hf_config(config.model)
    shape = ModelShape.of(hf_config)
    default_fit, default_held_out = default_lengths(config.data.max_seq_len, world_size)
    lengths = options.lengths or default_fit
    held_out = options.held_out if options.held_out is not None else default_held_out
    counts = options.counts or [1]
    max_degree = max_degree_for(shape, world_size)
    degrees = [2 ** i for i in range(max_degree.bit_length())]

    model, _optimizer = build_sharded_model(config, hf_config, world_size, device)
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
        config, hf_config, dtype, device, sorted(set(lengths) | {config.data.max_seq_len}))
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
