"""Collection: the rollout plays a number of env steps and finished episodes go to the replay buffer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from priorzero_pl.agent import Agent
from priorzero_pl.buffer import ReplayBuffer
from priorzero_pl.rollout import Rollout, RolloutStep


@dataclass
class CollectStats:
    """What one collection round did: the figures the module logs under ``collect/``."""

    env_steps: int = 0
    episode_returns: list[float] = field(default_factory=list)
    episode_scores: list[float] = field(default_factory=list)
    normalized_scores: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    candidate_fallbacks: int = 0
    search_depths: list[int] = field(default_factory=list)
    prior_tvs: list[float] = field(default_factory=list)

    def add(self, step: RolloutStep) -> None:
        """Count one rollout step: its decisions and the episodes that ended in it."""
        self.env_steps += len(step.decisions)
        self.candidate_fallbacks += sum(int(record.candidates_fallback) for record in step.records)
        self.search_depths += [decision.search_depth for decision in step.decisions]
        self.prior_tvs += [decision.prior_tv for decision in step.decisions]
        for _, segment in step.finished:
            self.episode_returns.append(segment.episode_return)
            self.episode_scores.append(segment.final_score)
            self.normalized_scores.append(segment.final_score / segment.max_score if segment.max_score > 0 else 0.0)
            self.episode_lengths.append(len(segment))

    def metrics(self) -> dict[str, float]:
        """Means over the round; episode figures only when an episode ended in it."""
        out = {"env_steps_round": float(self.env_steps), "candidate_fallbacks": float(self.candidate_fallbacks)}
        if self.search_depths:
            out["search_depth"] = float(np.mean(self.search_depths))
            out["prior_influence_tv"] = float(np.mean(self.prior_tvs))
        if self.episode_returns:
            out["episode_return"] = float(np.mean(self.episode_returns))
            out["episode_score"] = float(np.mean(self.episode_scores))
            out["normalized_score"] = float(np.mean(self.normalized_scores))
            out["episode_length"] = float(np.mean(self.episode_lengths))
            out["episodes_round"] = float(len(self.episode_returns))
        return out


def collect(
    rollout: Rollout,
    agent: Agent,
    rng: np.random.Generator,
    buffer: ReplayBuffer,
    num_steps: int,
    stop_requested: Callable[[], bool] = lambda: False,
) -> CollectStats:
    """Play at least ``num_steps`` env steps (summed over games); every episode that ends goes to
    ``buffer`` whole, so that n-step targets never see a half-written one.

    ``stop_requested`` is asked before every env step: when it says True the round ends there
    (fewer steps), so that a stop signal is acted on within one step, not one round (a warm-up
    round can take minutes). The episodes in progress stay in ``rollout``, where a checkpoint
    keeps them."""
    stats = CollectStats()
    while stats.env_steps < num_steps and not stop_requested():
        step = rollout.step(agent, rng)
        stats.add(step)
        for _, segment in step.finished:
            buffer.add(segment)
    return stats
