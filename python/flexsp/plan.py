"""The plan and cost-model documents (DESIGN.md, "Cost model" and "Plan"), seen from the runtime.

The planner owns both formats; the runtime only reads them. It re-checks every rule a plan must
obey before it runs one, because a plan that breaks a rule does not fail loudly: ranks simply
disagree about which collectives to call, and the job hangs. `validate_plan` is pure (no
collectives), so every rank reaches the same verdict on the same document on its own.

`fallback_plan` is the runtime's own safe plan for when the planner is late, dead or wrong: one
SP degree for the whole batch (the smallest that fits the longest sequence), sequences packed
first-fit decreasing into groups. It is valid by construction, never clever.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PLAN_VERSION = 1
COST_MODEL_VERSION = 1

COST_MODEL_KEYS = (
    "version", "name", "world_size", "gpus_per_node", "memory_budget_mb", "model_states_mb",
    "activation_mb_per_token", "alpha1_ms", "alpha2_ms", "beta1_ms", "a2a_mb_per_token",
    "a2a_bandwidth_gbps", "max_degree",
)
PLAN_KEYS = (
    "version", "strategy", "world_size", "cost_model", "sequences", "micro_batches",
    "est_step_ms", "lower_bound_ms", "solver",
)

# Slack for floating-point sums written by another language: a memory figure equal to the
# budget up to rounding is within it.
_MEMORY_SLACK = 1e-6


class PlanError(ValueError):
    """A plan or cost model that breaks the contract; the message names the part at fault."""


def _is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and (n & (n - 1)) == 0


def validate_cost_model(cost_model: Any) -> None:
    """Checks the cost-model document's shape (version 1, all keys, sane numbers)."""
    if not isinstance(cost_model, dict):
        raise PlanError("cost model: not a JSON object")
    missing = [key for key in COST_MODEL_KEYS if key not in cost_model]
    if missing:
        raise PlanError(f"cost model: missing keys {missing}")
    if cost_model["version"] != COST_MODEL_VERSION:
        raise PlanError(f"cost model: version {cost_model['version']!r}, expected {COST_MODEL_VERSION}")
    if not _is_power_of_two(cost_model["max_degree"]):
        raise PlanError(f"cost model: max_degree {cost_model['max_degree']!r} is not a power of two")
    if not isinstance(cost_model["a2a_bandwidth_gbps"], dict):
        raise PlanError("cost model: a2a_bandwidth_gbps must map a degree (string) to GB/s")
    if cost_model["activation_mb_per_token"] <= 0:
        raise PlanError("cost model: activation_mb_per_token must be positive")


def load_cost_model(path: str | Path) -> dict:
    with open(path) as f:
        cost_model = json.load(f)
    validate_cost_model(cost_model)
    return cost_model


def group_memory_mb(cost_model: dict, tokens: int, degree: int) -> float:
    """Per-rank memory of a group (eq. 11): sharded model states plus this rank's activations."""
    return cost_model["model_states_mb"] + cost_model["activation_mb_per_token"] * tokens / degree


def group_time_ms(cost_model: dict, lengths: list[int], degree: int) -> float:
    """Estimated time of one group (eq. 12-14): beta1 once, then compute and all-to-all per sequence."""
    if not lengths:
        return 0.0
    time = cost_model["beta1_ms"]
    for s in lengths:
        time += (cost_model["alpha1_ms"] * s * s + cost_model["alpha2_ms"] * s) / degree
        if degree > 1:
            bandwidth = float(cost_model["a2a_bandwidth_gbps"][str(degree)])
            time += cost_model["a2a_mb_per_token"] * s / (degree * bandwidth)
    return time


def validate_plan(plan: Any, world_size: int, lengths: list[int] | None = None) -> None:
    """Raises PlanError unless `plan` obeys every rule of DESIGN.md for a job of `world_size` ranks.

    With `lengths`, the plan must also describe exactly this batch: sequence ids 0..K-1 in batch
    order with these lengths. Pure and deterministic: no collectives, same verdict on every rank.
    A document of the wrong shape (a missing key, a list where an object belongs) is a PlanError
    too, so that callers can fall back on any bad plan.
    """
    try:
        _check_plan(plan, world_size, lengths)
    except PlanError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise PlanError(f"plan: malformed document ({type(error).__name__}: {error})") from error


def _check_plan(plan: Any, world_size: int, lengths: list[int] | None) -> None:
    if not isinstance(plan, dict):
        raise PlanError("plan: not a JSON object")
    missing = [key for key in PLAN_KEYS if key not in plan]
    if missing:
        raise PlanError(f"plan: missing keys {missing}")
    if plan["version"] != PLAN_VERSION:
        raise PlanError(f"plan: version {plan['version']!r}, expected {PLAN_VERSION}")
    if plan["world_size"] != world_size:
        raise PlanError(f"plan: world_size {plan['world_size']} but this job has {world_size} ranks")
    cost_model = plan["cost_model"]
    validate_cost_model(cost_model)
    max_degree = cost_model["max_degree"]

    length_of: dict[int, int] = {}
    for entry in plan["sequences"]:
        sid, length = entry.get("id"), entry.get("length")
        if not isinstance(sid, int) or sid in length_of:
            raise PlanError(f"plan: sequence id {sid!r} is missing, not an integer or repeated")
        if not isinstance(length, int) or length < 1:
            raise PlanError(f"plan: sequence {sid} has length {length!r}, expected a positive integer")
        length_of[sid] = length
    if lengths is not None:
        expected = {i: n for i, n in enumerate(lengths)}
        if length_of != expected:
            raise PlanError(
                f"plan: its {len(length_of)} sequences do not match this batch's {len(lengths)} "
                "(ids 0..K-1 in batch order with the batch's lengths)")

    placed: dict[int, tuple[int, int]] = {}
    for m, micro_batch in enumerate(plan["micro_batches"]):
        used: list[tuple[int, int, int]] = []  # (first, last_exclusive, group index)
        for g, group in enumerate(micro_batch["groups"]):
            where = f"plan: micro-batch {m}, group {g}"
            degree, first = group.get("degree"), group.get("first_rank")
            if not _is_power_of_two(degree):
                raise PlanError(f"{where}: degree {degree!r} is not a power of two")
            if degree > max_degree:
                raise PlanError(f"{where}: degree {degree} exceeds max_degree {max_degree}")
            if not isinstance(first, int) or first < 0 or first + degree > world_size:
                raise PlanError(
                    f"{where}: ranks [{first}, {first}+{degree}) fall outside [0, {world_size})")
            if first % degree != 0:
                raise PlanError(f"{where}: first_rank {first} is not a multiple of degree {degree}")
            for other_first, other_end, h in used:
                if first < other_end and other_first < first + degree:
                    raise PlanError(
                        f"{where}: ranks [{first}, {first + degree}) overlap group {h}'s "
                        f"[{other_first}, {other_end})")
            used.append((first, first + degree, g))
            tokens = 0
            for sid in group["sequence_ids"]:
                if sid not in length_of:
                    raise PlanError(f"{where}: sequence id {sid!r} is not in the plan's sequences")
                if sid in placed:
                    pm, pg = placed[sid]
                    raise PlanError(
                        f"{where}: sequence {sid} is already in micro-batch {pm}, group {pg}")
                placed[sid] = (m, g)
                tokens += length_of[sid]
            if group.get("tokens") != tokens:
                raise PlanError(
                    f"{where}: tokens {group.get('tokens')!r} but its sequences sum to {tokens}")
            memory = group_memory_mb(cost_model, tokens, degree)
            budget = cost_model["memory_budget_mb"]
            if memory > budget * (1 + _MEMORY_SLACK):
                raise PlanError(
                    f"{where}: needs {memory:.1f} MB per rank ({tokens} tokens over {degree} ranks), "
                    f"over the budget of {budget} MB")
    unplaced = sorted(set(length_of) - set(placed))
    if unplaced:
        raise PlanError(f"plan: sequences {unplaced[:10]} are in no group")


def plan_shape(plan: dict) -> str:
    """The groups' degrees per micro-batch, largest first: e.g. '<2,1,1> <4>'."""
    shapes = []
    for micro_batch in plan["micro_batches"]:
        degrees = sorted((group["degree"] for group in micro_batch["groups"]), reverse=True)
        shapes.append("<" + ",".join(str(d) for d in degrees) + ">")
    return " ".join(shapes)


def rank_capacity_tokens(cost_model: dict) -> float:
    """Tokens one rank can hold: (E - M_ms) / M_token."""
    return (cost_model["memory_budget_mb"] - cost_model["model_states_mb"]) / cost_model[
        "activation_mb_per_token"]


def fallback_plan(lengths: list[int], cost_model: dict, world_size: int) -> dict:
    """A safe plan computed locally: one degree for the batch, first-fit decreasing packing.

    The degree is the smallest power of two whose group holds the longest sequence; each
    micro-batch has world_size / degree groups of that degree. Raises PlanError if even the
    largest allowed degree cannot hold the longest sequence.
    """
    capacity = rank_capacity_tokens(cost_model)
    max_degree = min(cost_model["max_degree"], world_size)
    longest = max(lengths, default=1)
    degree = 1
    while degree < max_degree and group_memory_mb(cost_model, longest, degree) > cost_model[
            "memory_budget_mb"]:
        degree *= 2
    if group_memory_mb(cost_model, longest, degree) > cost_model["memory_budget_mb"]:
        raise PlanError(
            f"fallback: a sequence of {longest} tokens does not fit even a group of {degree} ranks "
            f"({capacity:.0f} tokens per rank)")
    group_capacity = math.floor(capacity * degree)

    bins: list[list[int]] = []  # sequence ids per group
    bin_tokens: list[int] = []
    for sid in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, used in enumerate(bin_tokens):
            if used + lengths[sid] <= group_capacity:
                bins[b].append(sid)
                bin_tokens[b] += lengths[sid]
                break
        else:
            bins.append([sid])
            bin_tokens.append(lengths[sid])

    groups_per_micro_batch = world_size // degree
    micro_batches = []
    for start in range(0, len(bins), groups_per_micro_batch):
        groups = []
        for slot, ids in enumerate(bins[start:start + groups_per_micro_batch]):
            tokens = sum(lengths[i] for i in ids)
            groups.append({
                "degree": degree, "first_rank": slot * degree, "sequence_ids": ids,
                "tokens": tokens,
                "est_ms": group_time_ms(cost_model, [lengths[i] for i in ids], degree),
                "memory_mb": group_memory_mb(cost_model, tokens, degree),
            })
        micro_batches.append({"est_ms": max(g["est_ms"] for g in groups), "groups": groups})
    est_step_ms = sum(mb["est_ms"] for mb in micro_batches)
    return {
        "version": PLAN_VERSION, "strategy": "fallback", "world_size": world_size,
        "cost_model": cost_model,
        "sequences": [{"id": i, "length": n} for i, n in enumerate(lengths)],
        "micro_batches": micro_batches,
        "est_step_ms": est_step_ms, "lower_bound_ms": 0.0,
        "solver": {"name": "runtime-fallback", "wall_ms": 0.0},
    }
