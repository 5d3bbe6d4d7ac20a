"""Per-rank state in checkpoints: every rank's buffer, generators and counters, each back on its rank."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from datamodules.collection import PriorZeroDataModule
from priorzero_pl.rank_state import gather_rank_states, own_rank_state
from tests.rank_state_worker import gather_in_process_group
from tests.test_buffer import make_segment


def rank_datamodule(game: Path, rank: int) -> PriorZeroDataModule:
    datamodule = PriorZeroDataModule(game=str(game), seed=7)
    datamodule.trainer = SimpleNamespace(global_rank=rank)
    datamodule.setup("fit")
    return datamodule


def test_two_ranks_get_their_own_state_back(tw_game_path: Path) -> None:
    """Two ranks with different buffers, generators and counters write one checkpoint (as rank
    zero would after gathering); resumed, each rank has its own again, not rank zero's."""
    ranks = [rank_datamodule(tw_game_path, rank) for rank in (0, 1)]
    assert ranks[0].env_seed == 7 and ranks[1].env_seed == 1007
    assert ranks[0].rng.random() != ranks[1].rng.random(), "each rank acts with its own stream"
    for rank, datamodule in enumerate(ranks):
        for i in range(rank + 1):
            datamodule.buffer.add(make_segment(3 + rank, game=f"rank{rank}-{i}"))
        datamodule.buffer.sample(2)
        datamodule.env_steps, datamodule.batches_left = 100 + rank, rank
    checkpoint = {"ranks": [datamodule.state_dict()["ranks"][0] for datamodule in ranks]}
    expected = [(dm.rng.random(), dm.buffer.sample(3).observations) for dm in ranks]

    resumed = [rank_datamodule(tw_game_path, rank) for rank in (0, 1)]
    for datamodule in resumed:
        datamodule.load_state_dict(checkpoint)
    for rank, datamodule in enumerate(resumed):
        assert [s.game for s in datamodule.buffer.recent_segments(5)] == [f"rank{rank}-{i}" for i in range(rank + 1)]
        assert (datamodule.env_steps, datamodule.batches_left, datamodule.env_seed) == (100 + rank, rank, 7 + 1000 * rank)
        assert (datamodule.rng.random(), datamodule.buffer.sample(3).observations) == expected[rank]

    third = rank_datamodule(tw_game_path, 2)
    with pytest.warns(UserWarning, match="for 2 ranks; rank 2 starts it afresh"):
        third.load_state_dict(checkpoint)
    assert third.buffer.num_steps == 0


def test_each_rank_samples_its_replay_with_its_own_seed(tw_game_path: Path) -> None:
    """Two ranks holding the same episodes draw different replay samples: every rank's sampler
    is seeded with its rank (``[seed, rank, stream]``), not all with the run's one seed."""
    ranks = [rank_datamodule(tw_game_path, rank) for rank in (0, 1)]
    for datamodule in ranks:
        for i in range(4):
            datamodule.buffer.add(make_segment(6, game=f"g{i}"))
    draws = [datamodule.buffer.sample(16).indices.tolist() for datamodule in ranks]
    assert draws[0] != draws[1]
    again = rank_datamodule(tw_game_path, 1)
    for i in range(4):
        again.buffer.add(make_segment(6, game=f"g{i}"))
    assert again.buffer.sample(16).indices.tolist() == draws[1], "a rank's sampler is a function of (seed, rank)"


def test_a_resume_keeps_the_checkpoint_s_env_seeds(tw_game_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The episodes in progress are replayed into games seeded as the ones that played them: a
    resumed rank takes its env seed from the checkpoint, even where its own config would seed
    its games differently, and builds its pool with it."""
    import datamodules.collection as collection

    pools = []
    monkeypatch.setattr(collection, "EnvPool", lambda path, num_envs, seed, **kwargs: pools.append(seed) or SimpleNamespace())
    written = rank_datamodule(tw_game_path, 1)
    checkpoint = {"ranks": [None, written.state_dict()["ranks"][0]]}
    resumed = PriorZeroDataModule(game=str(tw_game_path), seed=8)
    resumed.trainer = SimpleNamespace(global_rank=1)
    resumed.setup("fit")
    assert resumed.env_seed == 1008
    resumed.load_state_dict(checkpoint)
    assert resumed.env_seed == 1007
    resumed._ensure_rollout()
    assert pools == [1007]


def test_gather_collects_every_rank_on_rank_zero(tmp_path: Path) -> None:
    """A real two-process group (gloo): rank zero, which writes the checkpoint, holds both states."""
    mp.spawn(gather_in_process_group, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    on_zero = json.loads((tmp_path / "0.json").read_text())
    assert on_zero == [{"rank": 0, "buffer": [0, 0]}, {"rank": 1, "buffer": [1, 1, 1]}]
    assert own_rank_state(on_zero, 1, "x") == {"rank": 1, "buffer": [1, 1, 1]}
    assert json.loads((tmp_path / "1.json").read_text()) == [None, {"rank": 1, "buffer": [1, 1, 1]}]


def test_outside_a_process_group_the_state_is_one_rank_s() -> None:
    assert not (dist.is_available() and dist.is_initialized())
    assert gather_rank_states({"a": 1}) == [{"a": 1}]
