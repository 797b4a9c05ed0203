"""Throughput figures of a step: tokens/s, model TFLOP/s per rank, MFU, peak memory.

Model FLOPs of one training step (forward + backward = 3 x forward; recomputation under
activation checkpointing is not counted, as MFU is defined):
  - dense: 6 x (weights of the linear layers, the output layer included) x tokens;
  - attention: per layer, per sequence of s tokens, QK^T and PV each take 2 s^2 H hd / 2
    FLOPs forward under the causal mask (half the scores), so 6 s^2 H hd per training step.
    Summed over the packed sequences (sum of s^2), never as if a stream were one sequence,
    which would count the attention between packed sequences that no kernel computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flexsp.model import ModelShape

# Dense bf16/fp16 tensor-core peak per device, TFLOP/s (vendor data sheets, no sparsity).
PEAK_TFLOPS_BF16 = {
    "H200": 989.4, "H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4,
    "H800": 989.4, "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "A800": 312.0, "L40S": 362.1,
    "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.2, "RTX 3090": 71.0,
}


def linear_weights(model: torch.nn.Module) -> int:
    """Weights of the model's linear layers (global count, also of a sharded model)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def step_flops(shape: ModelShape, linear_weight_count: int, lengths: list[int]) -> float:
    """Model FLOPs of one training step over sequences of `lengths` (see the module doc)."""
    tokens = sum(lengths)
    squares = sum(n * n for n in lengths)
    return 6.0 * linear_weight_count * tokens + 6.0 * shape.layers * shape.heads * shape.head_dim * squares


def peak_tflops(device: torch.device, compute_dtype: torch.dtype, configured: float | None
                ) -> float | None:
    """A rank's peak TFLOP/s for MFU: the config's value, else a known CUDA device's dense
    half-precision peak when the model computes in half precision, else unknown."""
    if configured is not None:
        return configured
    if device.type != "cuda" or compute_dtype not in (torch.bfloat16, torch.float16):
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_TFLOPS_BF16, key=len, reverse=True):  # "H100 SXM" before "H100"
        if key in name:
            return PEAK_TFLOPS_BF16[key]
    return None


def throughput(shape: ModelShape, linear_weight_count: int, lengths: list[int], step_ms: float,
               world_size: int, peak: float | None) -> dict:
    """A step's throughput figures, for the step record."""
    seconds = step_ms / 1e3
    tokens = sum(lengths)
    tflops = step_flops(shape, linear_weight_count, lengths) / seconds / world_size / 1e12
    return {
        "tokens_per_s": tokens / seconds,
        "tokens_per_s_per_rank": tokens / seconds / world_size,
        "attention_sum_s2": sum(n * n for n in lengths),
        "tflops_per_rank": tflops,
        "mfu": tflops / peak if peak else None,
    }


def peak_memory_gb(device: torch.device) -> list[float] | None:
    """Every rank's peak allocated CUDA memory since the last call, GB (a collective on CUDA;
    None on CPU, where the allocator keeps no such figure)."""
    if device.type != "cuda":
        return None
    import torch.distributed as dist
    mine = torch.tensor([torch.cuda.max_memory_allocated(device) / 1e9], device=device)
    torch.cuda.reset_peak_memory_stats(device)
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    return [round(float(t.item()), 3) for t in every]


@dataclass(frozen=True)
class StepMeter:
    """What a job's step figures depend on, fixed at start-up."""

    shape: ModelShape
    linear_weight_count: int
    world_size: int
    device: torch.device
    peak: float | None  # TFLOP/s per rank, None if unknown

    def figures(self, lengths: list[int], step_ms: float) -> dict:
        """Throughput and (on CUDA) every rank's peak memory; a collective on CUDA."""
        return {**throughput(self.shape, self.linear_weight_count, lengths, step_ms,
                             self.world_size, self.peak),
                "peak_memory_gb": peak_memory_gb(self.device)}
