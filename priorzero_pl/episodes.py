"""Whole episodes played for their outcome: evaluation, transcripts, the demo and the baselines.

:func:`play_episodes` is a function of an agent and a game: it plays ``episodes`` games in this
process through the one episode loop (:class:`~priorzero_pl.rollout.Rollout`), each game its own
seed, all stepped together. Games run here rather than in a worker pool: evaluation is short, and
must not disturb the collection pool's episodes in progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from priorzero_pl.agent import Decision
from priorzero_pl.buffer import GameSegment
from priorzero_pl.envs import StepRecord, TextGame
from priorzero_pl.prior import HistoryStep
from priorzero_pl.rollout import Actor, InProcessGames, Rollout


@dataclass
class TranscriptStep:
    """One step of a played episode, as a researcher reads it."""

    observation: str
    candidates: list[str]
    prior: list[float]
    """LLM prior probability of each candidate."""
    visits: list[float]
    """Search visit distribution over the candidates."""
    action: str
    reward: float


@dataclass
class EpisodeResult:
    """Outcome of one episode."""

    score: float
    max_score: float
    length: int
    transcript: list[TranscriptStep] = field(default_factory=list)

    @property
    def normalized_score(self) -> float:
        return self.score / self.max_score if self.max_score > 0 else 0.0

    @classmethod
    def from_segment(cls, segment: GameSegment) -> EpisodeResult:
        """The finished episode's score, length and step-by-step transcript."""
        transcript = [
            TranscriptStep(
                observation=segment.observations[t],
                candidates=list(segment.candidates[t]),
                prior=np.exp(segment.prior_logprobs[t]).round(4).tolist(),
                visits=segment.visit_policies[t].round(4).tolist(),
                action=segment.candidates[t][segment.actions[t]],
                reward=float(segment.rewards[t]),
            )
            for t in range(len(segment))
        ]
        return cls(score=segment.final_score, max_score=segment.max_score, length=len(segment), transcript=transcript)


@dataclass(frozen=True)
class EvaluationRequest:
    """What a validation batch asks the module to play: ``episodes`` episodes of ``game``, each
    :class:`~priorzero_pl.envs.TextGame` built with ``game_kwargs``."""

    game: str
    episodes: int
    game_kwargs: dict[str, Any] = field(default_factory=dict)


def play_episodes(
    agent: Actor, game: str | os.PathLike, *, episodes: int, seed: int, **game_kwargs: Any
) -> list[EpisodeResult]:
    """``agent`` plays one episode in each of ``episodes`` games of ``game`` (game ``i`` seeded
    ``seed + i``; the agent's generator seeded ``seed``); results in game order.

    ``game_kwargs`` go to every :class:`~priorzero_pl.envs.TextGame` (``max_steps``,
    ``valid_actions_timeout``, ...). The agent acts as its settings say (an evaluation agent from
    ``PriorZeroModule.acting_agent("evaluate")`` is greedy and noise-free)."""
    games = InProcessGames([TextGame(game, seed=seed + i, **game_kwargs) for i in range(episodes)])
    try:
        rollout = Rollout(games, game=str(game), restart=False)
        rng = np.random.default_rng(seed)
        results: dict[int, EpisodeResult] = {}
        rollout.begin()
        while rollout.active:
            for index, segment in rollout.step(agent, rng).finished:
                results[index] = EpisodeResult.from_segment(segment)
        return [results[i] for i in range(episodes)]
    finally:
        games.close()


class RandomAgent:
    """The baseline: a uniformly random valid action, no prior, no search."""

    def act(
        self, records: Sequence[StepRecord], histories: Sequence[Sequence[HistoryStep]], rng: np.random.Generator
    ) -> list[Decision]:
        decisions = []
        for record in records:
            count = len(record.candidates)
            a = int(rng.integers(count))
            uniform = np.full(count, 1.0 / count, dtype=np.float32)
            decisions.append(
                Decision(
                    action_index=a,
                    action=record.candidates[a],
                    prompt="",
                    prior_logprobs=np.log(uniform),
                    visit_policy=uniform,
                    root_value=0.0,
                    behaviour_logprob=float(-np.log(count)),
                )
            )
        return decisions


def play_random_episodes(game: str | os.PathLike, *, episodes: int, seed: int, **game_kwargs: Any) -> list[EpisodeResult]:
    """:func:`play_episodes` with :class:`RandomAgent`: the score a policy must beat."""
    return play_episodes(RandomAgent(), game, episodes=episodes, seed=seed, **game_kwargs)
