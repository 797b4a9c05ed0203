"""The group pool: one communicator per aligned rank range, created once at start-up.

A plan's group of degree d starts at a multiple of d (docs/DESIGN.md), so the ranges a plan may use
are known before any plan exists: for every power of two d in 2..world_size, the ranges
[k*d, (k+1)*d). `dist.new_group` is itself a collective over the whole job and must be called by
every rank in the same order, so the pool creates all of them up front, in one fixed order, and
a step only looks them up. Each rank belongs to log2(world_size) of them (plus itself, degree 1,
which needs no communicator).
"""

from __future__ import annotations

import torch.distributed as dist


class GroupPool:
    def __init__(self, world_size: int, rank: int, max_degree: int | None = None) -> None:
        self.world_size = world_size
        self.rank = rank
        self._groups: dict[tuple[int, int], dist.ProcessGroup] = {}
        limit = world_size if max_degree is None else min(max_degree, world_size)
        degree = 2
        while degree <= limit:
            for first_rank in range(0, world_size - degree + 1, degree):
                ranks = list(range(first_rank, first_rank + degree))
                # Every rank calls new_group for every range, members or not.
                group = dist.new_group(ranks)
                if first_rank <= rank < first_rank + degree:
                    self._groups[(first_rank, degree)] = group
            degree *= 2

    def get(self, first_rank: int, degree: int) -> dist.ProcessGroup | None:
        """The communicator of [first_rank, first_rank + degree); None for degree 1."""
        if degree == 1:
            return None
        key = (first_rank, degree)
        if key not in self._groups:
            raise KeyError(
                f"rank {self.rank} has no communicator for ranks [{first_rank}, {first_rank + degree})")
        return self._groups[key]

    def __len__(self) -> int:
        return len(self._groups)
