"""Replay of played episodes as unrolled world-model training windows."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any, Sequence

import numpy as np
import torch

from priorzero_pl.buffer.batch import WorldModelBatch
from priorzero_pl.buffer.config import ReplayConfig
from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.buffer.value_targets import n_step_value_targets

_MIN_PRIORITY = 1e-6
"""Floor on priorities: a zero-error position must stay sampleable."""


class ReplayBuffer:
    """Whole episodes, sampled as ``K``-step windows with n-step value targets.

    Every stored step has a replay id: ``num_added_steps`` at the time it was added. Ids only
    grow, so :meth:`update_priorities` can tell a still-stored position from an evicted one
    (which it ignores) even after eviction shifted everything.

    Sampling draws positions with replacement, uniformly or, with ``prioritized``, with
    probability ``p_i^alpha / sum_j p_j^alpha`` and importance weights
    ``(N P(i))^-beta / max_j (N P(j))^-beta`` (normalised by the largest weight in the buffer,
    as in the prioritised replay paper). New steps enter with the largest priority seen so far.
    """

    def __init__(
        self,
        capacity_steps: int,
        *,
        unroll_steps: int = 5,
        td_steps: int = 5,
        discount: float = 0.997,
        prioritized: bool = False,
        priority_alpha: float = 0.6,
        priority_beta: float = 0.4,
        seed: int | Sequence[int] = 0,
    ) -> None:
        self.config = ReplayConfig(
            capacity_steps=capacity_steps,
            unroll_steps=unroll_steps,
            td_steps=td_steps,
            discount=discount,
            prioritized=prioritized,
            priority_alpha=priority_alpha,
            priority_beta=priority_beta,
        )
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._segments: deque[GameSegment] = deque()
        self._value_targets: deque[np.ndarray] = deque()
        self._starts = np.zeros(1, dtype=np.int64)
        """``[num_segments + 1]`` position of each segment's first step; the last entry is ``num_steps``."""
        self._priorities = np.zeros(0, dtype=np.float64)
        self._max_priority = 1.0
        self._first_id = 0
        self._num_added_steps = 0
        self._num_added_segments = 0

    @classmethod
    def from_config(cls, config: ReplayConfig, *, seed: int | Sequence[int] = 0) -> ReplayBuffer:
        """The buffer a YAML-built :class:`ReplayConfig` describes, its sampler seeded with ``seed``
        (the run's seed: the config has none of its own, so there is one seed to set)."""
        return cls(**asdict(config), seed=seed)

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Restart the sampler from ``seed`` (an int, or a list of ints as numpy's seed entropy:
        ``[run seed, rank]`` gives each rank its own stream)."""
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def num_steps(self) -> int:
        """Steps stored now."""
        return int(self._starts[-1])

    @property
    def num_segments(self) -> int:
        """Episodes stored now."""
        return len(self._segments)

    @property
    def num_added_steps(self) -> int:
        """Steps ever added, evicted ones included."""
        return self._num_added_steps

    @property
    def num_added_segments(self) -> int:
        """Episodes ever added, evicted ones included."""
        return self._num_added_segments

    def __len__(self) -> int:
        return self.num_steps

    def add(self, segment: GameSegment) -> None:
        """Store a validated, non-empty episode, then evict the oldest episodes beyond capacity.

        The newest episode is never evicted, even when it alone exceeds ``capacity_steps``.
        """
        segment.validate()
        if len(segment) == 0:
            raise ValueError(f"GameSegment({segment.game!r}) has no steps; there is nothing to replay")
        self._store(segment)
        self._priorities = np.concatenate([self._priorities, np.full(len(segment), self._max_priority)])
        self._num_added_steps += len(segment)
        self._num_added_segments += 1
        self._evict()

    def _store(self, segment: GameSegment) -> None:
        config = self.config
        self._segments.append(segment)
        self._value_targets.append(
            n_step_value_targets(
                segment.rewards,
                segment.root_values,
                terminal=segment.terminal,
                td_steps=config.td_steps,
                discount=config.discount,
            )
        )
        self._starts = np.append(self._starts, self._starts[-1] + len(segment))

    def _evict(self) -> None:
        while self.num_steps > self.config.capacity_steps and len(self._segments) > 1:
            length = len(self._segments.popleft())
            self._value_targets.popleft()
            self._priorities = self._priorities[length:]
            self._starts = self._starts[1:] - length
            self._first_id += length

    def recent_segments(self, n: int) -> list[GameSegment]:
        """The ``n`` most recently added episodes still stored, oldest first (most recent last)."""
        if n <= 0:
            return []
        return list(self._segments)[-n:]

    def sample(self, batch_size: int) -> WorldModelBatch:
        """``batch_size`` windows of ``unroll_steps`` steps from positions drawn with replacement."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.num_steps == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if self.config.prioritized:
            scaled = self._priorities ** self.config.priority_alpha
            probabilities = scaled / scaled.sum()
            positions = self._rng.choice(self.num_steps, size=batch_size, p=probabilities)
            # The largest weight belongs to the least likely position in the whole buffer.
            weights = (probabilities[positions] / probabilities.min()) ** -self.config.priority_beta
        else:
            positions = self._rng.integers(0, self.num_steps, size=batch_size)
            weights = np.ones(batch_size)
        return self._collate(positions, weights)

    def _collate(self, positions: np.ndarray, weights: np.ndarray) -> WorldModelBatch:
        unroll = self.config.unroll_steps
        segment_indices = np.searchsorted(self._starts, positions, side="right") - 1
        windows = [(int(s), int(p - self._starts[s])) for s, p in zip(segment_indices, positions)]
        width = max(
            len(self._segments[s].candidates[min(t + k, len(self._segments[s]) - 1)])
            for s, t in windows
            for k in range(unroll + 1)
        )
        size = len(windows)
        actions = torch.zeros(size, unroll, dtype=torch.long)
        target_reward = torch.zeros(size, unroll)
        target_value = torch.zeros(size, unroll + 1)
        target_policy = torch.zeros(size, unroll + 1, width)
        candidate_mask = torch.zeros(size, unroll + 1, width, dtype=torch.bool)
        policy_mask = torch.zeros(size, unroll + 1, dtype=torch.bool)
        value_mask = torch.zeros(size, unroll + 1, dtype=torch.bool)
        reward_mask = torch.zeros(size, unroll, dtype=torch.bool)
        observation_mask = torch.zeros(size, unroll + 1, dtype=torch.bool)
        observations: list[list[str]] = []
        candidates: list[list[list[str]]] = []
        prompts: list[str] = []
        for b, (s, t) in enumerate(windows):
            segment, values, length = self._segments[s], self._value_targets[s], len(self._segments[s])
            has_final = segment.final_observation is not None
            last_observation = segment.final_observation if has_final else segment.observations[-1]
            row_observations, row_candidates = [], []
            for k in range(unroll + 1):
                position = t + k
                real = position < length
                step_candidates = segment.candidates[min(position, length - 1)]
                row_observations.append(segment.observations[position] if real else last_observation)
                row_candidates.append(step_candidates)
                candidate_mask[b, k, : len(step_candidates)] = True
                policy_mask[b, k] = real
                observation_mask[b, k] = real or (position == length and has_final)
                # Past a terminal end the state is absorbing: value and rewards 0, any action.
                known = real or segment.terminal
                value_mask[b, k] = known
                if k < unroll:
                    reward_mask[b, k] = known
                if real:
                    target_value[b, k] = float(values[position])
                    target_policy[b, k, : len(step_candidates)] = torch.from_numpy(segment.visit_policies[position])
                    if k < unroll:
                        actions[b, k] = segment.actions[position]
                        target_reward[b, k] = segment.rewards[position]
                elif segment.terminal and k < unroll:
                    actions[b, k] = int(self._rng.integers(len(step_candidates)))
            observations.append(row_observations)
            candidates.append(row_candidates)
            prompts.append(segment.prompts[t])
        return WorldModelBatch(
            observations=observations,
            candidates=candidates,
            actions=actions,
            target_reward=target_reward,
            target_value=target_value,
            target_policy=target_policy,
            candidate_mask=candidate_mask,
            policy_mask=policy_mask,
            value_mask=value_mask,
            reward_mask=reward_mask,
            observation_mask=observation_mask,
            weights=torch.as_tensor(weights, dtype=torch.float32),
            indices=torch.as_tensor(positions + self._first_id, dtype=torch.long),
            root_prompts=prompts,
        )

    def update_priorities(
        self,
        indices: torch.Tensor | np.ndarray | Sequence[int],
        priorities: torch.Tensor | np.ndarray | Sequence[float],
    ) -> None:
        """Set the priorities of the replay ids ``indices`` ``[N]`` (e.g. ``|value error|``, ``[N]``).

        Ids of evicted steps are skipped: the batch may have been sampled before an ``add``.
        """
        ids = _as_numpy(indices).astype(np.int64).reshape(-1)
        values = _as_numpy(priorities).astype(np.float64).reshape(-1)
        if ids.shape != values.shape:
            raise ValueError(f"{ids.size} indices but {values.size} priorities")
        if not np.all(np.isfinite(values)):
            raise ValueError("priorities must be finite")
        positions = ids - self._first_id
        kept = (positions >= 0) & (positions < self.num_steps)
        values = np.maximum(np.abs(values[kept]), _MIN_PRIORITY)
        self._priorities[positions[kept]] = values
        if values.size:
            self._max_priority = max(self._max_priority, float(values.max()))

    def state_dict(self) -> dict[str, Any]:
        """Contents, counters and sampler RNG as plain python objects (lists, dicts, numbers,
        strings), so the checkpoint loads with ``torch.load`` even under ``weights_only=True``."""
        return {
            "segments": [segment.to_state() for segment in self._segments],
            "priorities": self._priorities.tolist(),
            "max_priority": self._max_priority,
            "first_id": self._first_id,
            "num_added_steps": self._num_added_steps,
            "num_added_segments": self._num_added_segments,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved. The buffer's own config stays in force: value
        targets are recomputed with its ``td_steps`` and ``discount``, and a smaller capacity
        evicts on load."""
        self._segments.clear()
        self._value_targets.clear()
        self._starts = np.zeros(1, dtype=np.int64)
        for segment_state in state["segments"]:
            self._store(GameSegment.from_state(segment_state))
        self._priorities = np.asarray(state["priorities"], dtype=np.float64)
        if self._priorities.shape != (self.num_steps,):
            raise ValueError(f"replay state has {self._priorities.size} priorities for {self.num_steps} steps")
        self._max_priority = float(state["max_priority"])
        self._first_id = int(state["first_id"])
        self._num_added_steps = int(state["num_added_steps"])
        self._num_added_segments = int(state["num_added_segments"])
        self._rng.bit_generator.state = state["rng"]
        self._evict()


def _as_numpy(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
