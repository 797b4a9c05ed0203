"""A plan that breaks a rule is refused, with the reason, by a pure check that calls no collective,
so the job stays in step and the next (fallback) plan runs."""

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from conftest import cost_model_for, job_model, make_plan, tiny_model
from dist_harness import run_world
from flexsp.data import GlobalBatch
from flexsp.engine import train_step
from flexsp.groups import GroupPool
from flexsp.parallelize import apply_fsdp
from flexsp.plan import PlanError, check_plan, fallback_plan

COLLECTIVES = ["all_reduce", "broadcast", "all_to_all_single", "all_gather_into_tensor",
               "reduce_scatter_tensor", "all_gather", "barrier", "broadcast_object_list",
               "reduce_scatter_single" if hasattr(dist, "reduce_scatter_single") else "reduce"]
LENGTHS = [30, 7, 12, 1]


def refuse_then_recover(rank: int, world_size: int) -> str:
    model = tiny_model()
    pool = GroupPool(world_size, rank)
    apply_fsdp(model, init_device_mesh("cpu", (world_size,)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = GlobalBatch(0, [torch.randint(256, (n,)) for n in LENGTHS])
    # Groups [0, 2) and [1, 2) overlap in micro-batch 1: ranks would disagree on collectives.
    bad = make_plan(cost_model_for(world_size), LENGTHS,
                    [[(2, 0, [0, 1])], [(2, 0, [2]), (1, 1, [3])]])

    saved = {name: getattr(dist, name) for name in COLLECTIVES}

    def forbidden(*args, **kwargs):
        raise AssertionError("a collective was called before the plan was validated")

    for name in COLLECTIVES:
        setattr(dist, name, forbidden)
    try:
        with pytest.raises(PlanError) as error:
            check_plan(bad, job_model(world_size), LENGTHS)
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)
    # Nobody entered a collective, so the job is still in step: a good plan runs.
    loss, _ = train_step(model, optimizer, fallback_plan(LENGTHS, job_model(world_size)), batch, pool, rank,
                         world_size)
    assert 5.0 < loss < 6.0
    return str(error.value)


def test_bad_plan_is_refused_on_every_rank_before_any_collective():
    messages = run_world(2, refuse_then_recover)
    assert messages == ["plan: micro_batches[1]: groups[0] and groups[1] share ranks"] * 2
