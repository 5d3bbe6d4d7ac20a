"""Collection: the agent plays the `EnvPool` and finished episodes become `GameSegment`s."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from priorzero_pl.agent import Agent
from priorzero_pl.buffer import GameSegment, ReplayBuffer
from priorzero_pl.envs import EnvPool, StepRecord
from priorzero_pl.prior import HistoryStep


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


class Collector:
    """Steps every game of an `EnvPool` together, one agent decision per game per step.

    Episodes in progress live here (records, prompt histories, open segments); a finished episode
    goes to the replay buffer whole, so that n-step targets never see a half-written segment.
    Episodes in progress are not checkpointed: a resumed run starts fresh episodes.
    """

    def __init__(self, env_pool: EnvPool, buffer: ReplayBuffer, *, game: str, seed: int) -> None:
        self.env_pool = env_pool
        self.buffer = buffer
        self.game = game
        self.rng = np.random.default_rng(seed)
        self._records: list[StepRecord] = []
        self._histories: list[list[HistoryStep]] = []
        self._segments: list[GameSegment] = []

    def _start(self, index: int, record: StepRecord) -> None:
        self._records[index] = record
        self._histories[index] = []
        self._segments[index] = GameSegment(game=self.game, max_score=record.max_score)

    def reset(self) -> None:
        """Begin fresh episodes in every game."""
        records = self.env_pool.reset()
        self._records = list(records)
        self._histories = [[] for _ in records]
        self._segments = [GameSegment(game=self.game, max_score=r.max_score) for r in records]

    def collect(self, agent: Agent, num_steps: int, *, temperature: float, prior_weight: float | None) -> CollectStats:
        """Play at least ``num_steps`` env steps (summed over games) and return what happened."""
        if not self._records:
            self.reset()
        stats = CollectStats()
        while stats.env_steps < num_steps:
            decisions = agent.act(
                self._records, self._histories, self.rng, explore=True, temperature=temperature, prior_weight=prior_weight
            )
            next_records = self.env_pool.step([d.action for d in decisions])
            finished = []
            for i, (record, decision, nxt) in enumerate(zip(self._records, decisions, next_records)):
                stats.candidate_fallbacks += int(record.candidates_fallback)
                stats.search_depths.append(decision.search_depth)
                stats.prior_tvs.append(decision.prior_tv)
                self._segments[i].append(
                    observation=record.observation,
                    candidates=list(record.candidates),
                    prompt=decision.prompt,
                    action=decision.action_index,
                    reward=float(nxt.reward),
                    visit_policy=decision.visit_policy,
                    prior_logprobs=decision.prior_logprobs,
                    root_value=decision.root_value,
                    behaviour_logprob=decision.behaviour_logprob,
                )
                self._histories[i].append(HistoryStep(record.observation, decision.action, float(nxt.reward)))
                self._records[i] = nxt
                if nxt.done:
                    finished.append(i)
            stats.env_steps += len(decisions)
            for i in finished:
                self._finish(i, stats)
            if finished:
                for i, record in zip(finished, self.env_pool.reset(finished)):
                    self._start(i, record)
        return stats

    def _finish(self, index: int, stats: CollectStats) -> None:
        record, segment = self._records[index], self._segments[index]
        segment.terminal = record.done and not record.truncated
        segment.final_observation = record.observation
        segment.final_score = float(record.score)
        segment.max_score = float(record.max_score)
        self.buffer.add(segment)
        stats.episode_returns.append(segment.episode_return)
        stats.episode_scores.append(float(record.score))
        stats.normalized_scores.append(float(record.score) / record.max_score if record.max_score > 0 else 0.0)
        stats.episode_lengths.append(len(segment))
