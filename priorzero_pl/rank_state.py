"""State that differs per rank, kept in one checkpoint: every rank's gathered on save, each rank
takes its own back on load.

Lightning writes a checkpoint from rank zero's copy of every ``state_dict()``; anything that
differs per rank (a replay buffer, a generator, queued LLM batches) would come back as rank
zero's on every rank after a resume. :func:`gather_rank_states` is a collective (every rank must
call it, as every rank does while Lightning builds a checkpoint); outside a process group it is
the identity on one rank.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch.distributed as dist


def gather_rank_states(local: Any) -> list[Any]:
    """``[world_size]`` every rank's ``local`` in rank order, on rank zero (which writes the
    checkpoint); other ranks get their own entry only, at their index, the rest None."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [local]
    rank, world = dist.get_rank(), dist.get_world_size()
    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(local, gathered, dst=0)
    if gathered is None:
        gathered = [None] * world
        gathered[rank] = local
    return gathered


def own_rank_state(states: list[Any], rank: int, what: str) -> Any | None:
    """Rank ``rank``'s entry of a gathered list; None (with a warning) when the checkpoint was
    written by fewer ranks, so that this rank starts ``what`` afresh."""
    if rank < len(states):
        return states[rank]
    warnings.warn(f"the checkpoint holds {what} for {len(states)} ranks; rank {rank} starts it afresh")
    return None
