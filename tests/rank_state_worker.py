"""Child process of ``test_rank_state``: a module with light imports, so that spawning is quick."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist

from priorzero_pl.rank_state import gather_rank_states


def gather_in_process_group(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """Join a gloo group, gather a rank-specific state, write what this rank got."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        gathered = gather_rank_states({"rank": rank, "buffer": [rank] * (rank + 2)})
        Path(out_dir, f"{rank}.json").write_text(json.dumps(gathered))
    finally:
        dist.destroy_process_group()
