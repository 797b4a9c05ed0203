"""The plan document (docs/DESIGN.md, "Plan"), seen from the runtime: parsed once into frozen values,
checked once per step, against the job's own cost model and model.

The planner owns the format; the runtime only reads it. A plan that breaks a rule does not fail
loudly: ranks simply disagree about which collectives to call, and the job hangs. So rank 0
checks every plan before it is broadcast (`check_plan`), with the rules of the planner's
`Simulator.violations` (docs/CONTRACT.md) and against the job's cost model, never the copy the
plan embeds: the copy must equal the job's, and the job's degrees, memory budget, world size and
head count decide. `check_plan` is pure (no collectives).

`assemble_plan` is the one way the runtime builds a plan (its fallback, the profiler's shapes):
it places each micro-batch's groups on aligned ranks, largest first, and fills in every estimate
from the cost model, as the planner's `Plan.init(strategy:costModel:sequences:schedule:...)`.
`fallback_plan` is the runtime's own safe plan for when the planner is late, dead or wrong: one
degree for the batch (the smallest that holds the longest sequence), sequences packed first-fit
decreasing. It is valid by construction, never clever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from flexsp.contract import MAX_SEQUENCE_LENGTH, ContractError, integer, number, parse_document
from flexsp.cost_model import CostModel, CostModelError

PLAN_VERSION = 1


class PlanError(ContractError):
    """A plan that breaks the contract or does not fit this job; the message says where."""


@dataclass(frozen=True)
class Group:
    degree: int
    first_rank: int
    sequence_ids: tuple[int, ...]
    tokens: int
    est_ms: float
    memory_mb: float

    @property
    def ranks(self) -> range:
        return range(self.first_rank, self.first_rank + self.degree)


@dataclass(frozen=True)
class MicroBatch:
    est_ms: float
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Plan:
    strategy: str
    world_size: int
    cost_model: CostModel
    sequences: tuple[tuple[int, int], ...]  # (id, length)
    micro_batches: tuple[MicroBatch, ...]
    est_step_ms: float
    lower_bound_ms: float
    solver_name: str
    solver_wall_ms: float

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        return cls.from_document(parse_document(text, "plan", PlanError))

    @classmethod
    def from_document(cls, document: Any) -> Plan:
        """Reads the document's shape and types; PlanError names the field at fault. The rules
        are checked separately (`violations`, `check_plan`)."""
        return _parse(document)

    def to_document(self) -> dict:
        return {
            "version": PLAN_VERSION, "strategy": self.strategy, "world_size": self.world_size,
            "cost_model": self.cost_model.to_document(),
            "sequences": [{"id": i, "length": n} for i, n in self.sequences],
            "micro_batches": [{"est_ms": mb.est_ms, "groups": [
                {"degree": g.degree, "first_rank": g.first_rank, "sequence_ids": list(g.sequence_ids),
                 "tokens": g.tokens, "est_ms": g.est_ms, "memory_mb": g.memory_mb} for g in mb.groups]}
                for mb in self.micro_batches],
            "est_step_ms": self.est_step_ms, "lower_bound_ms": self.lower_bound_ms,
            "solver": {"name": self.solver_name, "wall_ms": self.solver_wall_ms},
        }


# -- reading ---------------------------------------------------------------------------------


def _parse(document: Any) -> Plan:
    def get(obj: Any, key: str, path: str) -> Any:
        if not isinstance(obj, dict):
            raise PlanError(f"plan field '{path or 'the document'}' should be an object")
        if key not in obj:
            raise PlanError(f"plan field '{path + '.' if path else ''}{key}' is missing")
        return obj[key]

    def items(value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise PlanError(f"plan field '{path}' should be a list")
        return value

    def whole(value: Any, path: str) -> int:
        return integer(value, path, PlanError)

    def real(value: Any, path: str) -> float:
        return number(value, path, PlanError)

    def text(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise PlanError(f"plan field '{path}' should be a string")
        return value

    if not isinstance(document, dict):
        raise PlanError("plan: the document must be a JSON object")
    version = whole(get(document, "version", ""), "version")
    if version != PLAN_VERSION:
        raise PlanError(f"plan version {version} is not supported (this build reads version {PLAN_VERSION})")
    strategy = text(get(document, "strategy", ""), "strategy")
    world_size = whole(get(document, "world_size", ""), "world_size")
    try:
        cost_model = CostModel.from_document(get(document, "cost_model", ""))
    except CostModelError as error:
        raise PlanError(f"plan's cost_model: {error}") from None
    sequences = []
    for i, entry in enumerate(items(get(document, "sequences", ""), "sequences")):
        where = f"sequences[{i}]"
        sequences.append((whole(get(entry, "id", where), where + ".id"),
                          whole(get(entry, "length", where), where + ".length")))
    micro_batches = []
    for m, entry in enumerate(items(get(document, "micro_batches", ""), "micro_batches")):
        where = f"micro_batches[{m}]"
        est = real(get(entry, "est_ms", where), where + ".est_ms")
        groups = []
        for g, group in enumerate(items(get(entry, "groups", where), where + ".groups")):
            at = f"{where}.groups[{g}]"
            ids = tuple(whole(x, f"{at}.sequence_ids[{k}]")
                        for k, x in enumerate(items(get(group, "sequence_ids", at), at + ".sequence_ids")))
            groups.append(Group(
                degree=whole(get(group, "degree", at), at + ".degree"),
                first_rank=whole(get(group, "first_rank", at), at + ".first_rank"), sequence_ids=ids,
                tokens=whole(get(group, "tokens", at), at + ".tokens"),
                est_ms=real(get(group, "est_ms", at), at + ".est_ms"),
                memory_mb=real(get(group, "memory_mb", at), at + ".memory_mb")))
        micro_batches.append(MicroBatch(est, tuple(groups)))
    solver = get(document, "solver", "")
    return Plan(strategy=strategy, world_size=world_size, cost_model=cost_model, sequences=tuple(sequences),
                micro_batches=tuple(micro_batches),
                est_step_ms=real(get(document, "est_step_ms", ""), "est_step_ms"),
                lower_bound_ms=real(get(document, "lower_bound_ms", ""), "lower_bound_ms"),
                solver_name=text(get(solver, "name", "solver"), "solver.name"),
                solver_wall_ms=real(get(solver, "wall_ms", "solver"), "solver.wall_ms"))


# -- the rules -------------------------------------------------------------------------------


def _close(stated: float, actual: float) -> bool:
    """Stated estimates are rounded by JSON writers; a relative 1e-6 tolerance accepts that."""
    return abs(stated - actual) <= 1e-6 * max(1.0, abs(actual))


def step_time(plan: Plan, cost_model: CostModel | None = None) -> float:
    """The plan's step time recomputed from the cost model (the plan's own by default)."""
    model = cost_model or plan.cost_model
    length_of = dict(plan.sequences)
    return sum(max((model.group_time([length_of[i] for i in g.sequence_ids if i in length_of], g.degree)
                    for g in mb.groups), default=0.0) for mb in plan.micro_batches)


def violations(plan: Plan, cost_model: CostModel | None = None) -> list[str]:
    """Every broken rule, in document order (the planner's `Simulator.violations`), judged with
    `cost_model` (the plan's own by default); empty when the plan is valid."""
    model = cost_model or plan.cost_model
    found: list[str] = []
    world = plan.world_size
    if world != model.world_size:
        found.append(f"world_size is {world} but the cost model is for {model.world_size} GPUs")
    if not plan.sequences:
        found.append("sequences is empty: a plan must train at least one sequence")
    for name, value in (("lower_bound_ms", plan.lower_bound_ms), ("solver.wall_ms", plan.solver_wall_ms)):
        if not (math.isfinite(value) and value >= 0):
            found.append(f"{name} is {value}; it must be a finite number of zero or more")
    length_of: dict[int, int] = {}
    for sid, length in plan.sequences:
        if sid in length_of:
            found.append(f"sequences: id {sid} appears more than once")
        if length <= 0:
            found.append(f"sequences: id {sid} has length {length}; lengths must be positive")
        if length > MAX_SEQUENCE_LENGTH:
            found.append(f"sequences: id {sid} has length {length}, over the limit of {MAX_SEQUENCE_LENGTH} tokens")
        length_of[sid] = min(length, MAX_SEQUENCE_LENGTH)
    placed: dict[int, str] = {}
    total = 0.0
    top = min(model.max_degree, world)
    for m, mb in enumerate(plan.micro_batches):
        if not mb.groups:
            found.append(f"micro_batches[{m}] has no groups")
        slowest = 0.0
        for g, group in enumerate(mb.groups):
            at = f"micro_batches[{m}].groups[{g}]"
            d = group.degree
            if d < 1 or d & (d - 1) or d > model.max_degree or d > world:
                found.append(f"{at}: degree {d} is not a power of two between 1 and {top}")
                continue
            first = group.first_rank
            if first < 0 or first % d or first > world - d:
                found.append(f"{at}: ranks [{first}, {first + d}) must lie in [0, {world}) and start at a "
                             f"multiple of the degree {d}")
            if not group.sequence_ids:
                found.append(f"{at} holds no sequences")
            lengths = []
            for sid in group.sequence_ids:
                if sid not in length_of:
                    found.append(f"{at}: sequence id {sid} is not in 'sequences'")
                    continue
                if sid in placed:
                    found.append(f"sequence {sid} is placed twice: in {placed[sid]} and in {at}")
                else:
                    placed[sid] = at
                lengths.append(length_of[sid])
            tokens = sum(lengths)
            if tokens != group.tokens:
                found.append(f"{at}: tokens is {group.tokens} but its sequences hold {tokens}")
            memory = model.group_memory_mb(tokens, d)
            if not model.fits(tokens, d):
                found.append(f"{at} needs {memory:.3f} MB per GPU, over the {model.memory_budget_mb:.3f} MB budget")
            time = model.group_time(lengths, d)
            if not _close(group.est_ms, time):
                found.append(f"{at}.est_ms is {group.est_ms:.3f} but the cost model gives {time:.3f}")
            if not _close(group.memory_mb, memory):
                found.append(f"{at}.memory_mb is {group.memory_mb:.3f} but the cost model gives {memory:.3f}")
            slowest = max(slowest, time)
        spans = sorted((group.first_rank, g) for g, group in enumerate(mb.groups))
        widest: tuple[int, int] | None = None  # (end rank, group) of the span reaching furthest so far
        for first, g in spans:
            if widest is not None and first < widest[0]:
                owner = widest[1]
                found.append(f"micro_batches[{m}]: groups[{min(owner, g)}] and groups[{max(owner, g)}] share ranks")
            end = first + mb.groups[g].degree
            if widest is None or end > widest[0]:
                widest = (end, g)
        if not _close(mb.est_ms, slowest):
            found.append(f"micro_batches[{m}].est_ms is {mb.est_ms:.3f} but the cost model gives {slowest:.3f}")
        total += slowest
    for sid, _ in plan.sequences:
        if sid not in placed:
            found.append(f"sequence {sid} is in no group")
    if not _close(plan.est_step_ms, total):
        found.append(f"est_step_ms is {plan.est_step_ms:.3f} but the cost model gives {total:.3f}")
    if plan.lower_bound_ms > total * (1 + 1e-9) + 1e-6:
        found.append(f"lower_bound_ms {plan.lower_bound_ms:.3f} exceeds the plan's own step time {total:.3f}; "
                     "the bound is wrong")
    return found


def check_plan(plan: Plan | dict, cost_model: CostModel, lengths: list[int] | None = None,
               degree_problem: Callable[[int], str | None] | None = None) -> Plan:
    """`plan` (a document or a parsed plan) if this job can run it, else PlanError saying why.

    The job is `cost_model` (its world size, degrees, memory budget), the batch `lengths`
    (sequence ids 0..K-1 in batch order) and the model: `degree_problem(d)` says why the model's
    attention heads cannot be split over d ranks, or None when they can
    (`attention.check_degree`).
    """
    if not isinstance(plan, Plan):
        plan = Plan.from_document(plan)
    different = plan.cost_model.first_difference(cost_model)
    if different is not None:
        raise PlanError(f"plan: its cost_model.{different} is {getattr(plan.cost_model, different)!r} but this "
                        f"job's is {getattr(cost_model, different)!r}; it was made for another job")
    broken = violations(plan, cost_model)
    if broken:
        more = f" (and {len(broken) - 3} more)" if len(broken) > 3 else ""
        raise PlanError("plan: " + "; ".join(broken[:3]) + more)
    if lengths is not None and list(plan.sequences) != list(enumerate(lengths)):
        raise PlanError(f"plan: its {len(plan.sequences)} sequences do not match this batch's {len(lengths)} "
                        "(ids 0..K-1 in batch order with the batch's lengths)")
    if degree_problem is not None:
        for m, mb in enumerate(plan.micro_batches):
            for g, group in enumerate(mb.groups):
                problem = degree_problem(group.degree)
                if problem is not None:
                    raise PlanError(f"plan: micro_batches[{m}].groups[{g}]: degree {group.degree}: {problem}")
    return plan


# -- building --------------------------------------------------------------------------------


class GroupAssignment(NamedTuple):
    """One group of a micro-batch before it is placed on ranks: its degree and its sequences
    (the mirror of Swift's `Schedule.Group`)."""
    degree: int
    sequence_ids: list[int]


def assemble_plan(strategy: str, cost_model: CostModel, lengths: list[int],
                  schedule: list[list[GroupAssignment]], solver: str = "runtime") -> Plan:
    """A plan from micro-batches given as (degree, sequence ids) groups: each micro-batch's
    groups placed largest first on consecutive aligned ranks, every estimate from `cost_model`.
    Sequence ids are 0..K-1 in `lengths` order; degrees must be powers of two whose sum fits
    the world (checked by `violations`, not here)."""
    micro_batches = []
    for groups in schedule:
        placed, next_rank = [], 0
        for degree, ids in sorted(groups, key=lambda group: -group.degree):
            group_lengths = [lengths[i] for i in ids]
            tokens = sum(group_lengths)
            placed.append(Group(degree, next_rank, tuple(ids), tokens, cost_model.group_time(group_lengths, degree),
                                cost_model.group_memory_mb(tokens, degree)))
            next_rank += degree
        micro_batches.append(MicroBatch(max((g.est_ms for g in placed), default=0.0), tuple(placed)))
    return Plan(strategy=strategy, world_size=cost_model.world_size, cost_model=cost_model,
                sequences=tuple(enumerate(lengths)), micro_batches=tuple(micro_batches),
                est_step_ms=sum(mb.est_ms for mb in micro_batches), lower_bound_ms=0.0,
                solver_name=solver, solver_wall_ms=0.0)


def fallback_plan(lengths: list[int], cost_model: CostModel) -> Plan:
    """A safe plan computed locally: one degree for the batch, first-fit decreasing packing.

    The degree is the smallest allowed one whose group holds the longest sequence; each
    micro-batch has world_size / degree groups of it. PlanError if no allowed degree holds the
    longest sequence (or the batch is empty).
    """
    if not lengths:
        raise PlanError("fallback: the batch has no sequences")
    longest = max(lengths)
    degree = cost_model.minimum_degree(longest)
    if degree is None:
        top = cost_model.degrees[-1]
        raise PlanError(f"fallback: a sequence of {longest} tokens does not fit even a group of {top} ranks "
                        f"({cost_model.token_capacity(top)} tokens)")
    capacity = cost_model.token_capacity(degree)
    bins: list[list[int]] = []
    used: list[int] = []
    for sid in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, tokens in enumerate(used):
            if tokens + lengths[sid] <= capacity:
                bins[b].append(sid)
                used[b] += lengths[sid]
                break
        else:
            bins.append([sid])
            used.append(lengths[sid])
    per_micro_batch = cost_model.world_size // degree
    schedule = [[GroupAssignment(degree, ids) for ids in bins[start:start + per_micro_batch]]
                  for start in range(0, len(bins), per_micro_batch)]
    return assemble_plan("fallback", cost_model, lengths, schedule, solver="runtime-fallback")


def plan_shape(plan: Plan) -> str:
    """The groups' degrees per micro-batch, largest first: e.g. '<2,1,1> <4>'."""
    return " ".join("<" + ",".join(str(d) for d in sorted((g.degree for g in mb.groups), reverse=True)) + ">"
                    for mb in plan.micro_batches)
