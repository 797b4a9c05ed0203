"""The profiler's measurements, made with the runtime's own code the way the planner will use
it (see flexsp/profile.py): the model's facts (all-to-all volume, model states), and timings and
memory of this world. The timed ones are collective: every rank calls them with the same
arguments.
"""

from __future__ import annotations

import logging
import math
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist

from flexsp.attention import PackedContext
from flexsp.config import Config
from flexsp.cost_model import CostModel
from flexsp.data import GlobalBatch, pack_group
from flexsp.distributed import slowest_rank_ms, synchronize
from flexsp.engine import forward_backward
from flexsp.groups import GroupPool
from flexsp.model import ModelShape, build_model, decoder_layers, forward_logits
from flexsp.parallelize import apply_activation_checkpointing
from flexsp.plan import GroupAssignment, Plan, assemble_plan
from flexsp.profile_fit import Sample

log = logging.getLogger("flexsp.profile")

MB = 2 ** 20  # the cost model's MB (budgets are given in MiB, e.g. 30720 for 40 GB cards)


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
    schedule = [[GroupAssignment(degree, list(range(g * count, (g + 1) * count))) for g in range(groups)]]
    plan = assemble_plan("profile", stand_in, [length] * len(sequences), schedule, solver="profile")
    return plan, GlobalBatch(0, sequences)


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


def measure_activation_mb_per_token(config: Config, hf_config, dtype: torch.dtype,
                                    device: torch.device, lengths: list[int]
                                    ) -> tuple[float, dict[int, float]]:
    """MB per token for the memory model, and the measured MB per token at each length.

    The cost model's memory is linear in tokens, but attention that materializes its s x s
    weights (PyTorch's math SDPA, the CPU path) is not: per-token memory grows with s. The
    largest per-token figure, that of the longest length, is taken: memory must be an upper
    bound (an underestimate is an out-of-memory error), and no sequence is longer than that.
    """
    model = build_model(config.model, hf_config, dtype, config.train.seed)
    if config.parallel.activation_checkpointing:
        apply_activation_checkpointing(model)
    model = model.to(device)
    per_token = {n: activation_bytes(model, n, device) / n / MB for n in lengths}
    return max(per_token.values()), per_token
