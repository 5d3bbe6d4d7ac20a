"""Replay: played episodes (GameSegment) sampled as unrolled training windows (WorldModelBatch)."""

from priorzero_pl.buffer.batch import WorldModelBatch
from priorzero_pl.buffer.config import ReplayConfig
from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.buffer.replay_buffer import ReplayBuffer
from priorzero_pl.buffer.value_targets import n_step_value_targets

__all__ = ["GameSegment", "ReplayBuffer", "ReplayConfig", "WorldModelBatch", "n_step_value_targets"]
