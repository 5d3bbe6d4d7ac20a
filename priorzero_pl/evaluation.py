"""Evaluation episodes: the agent plays greedily (no noise), one game per episode, all stepped together.

Games run in this process (no worker pool): evaluation is short and must not disturb the
collection pool's episodes in progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from priorzero_pl.agent import ActingMode
from priorzero_pl.envs import StepRecord, TextGame
from priorzero_pl.prior import HistoryStep

if TYPE_CHECKING:
    from priorzero_pl.module import PriorZeroModule


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
    """Outcome of one evaluation episode."""

    score: float
    max_score: float
    length: int
    transcript: list[TranscriptStep] = field(default_factory=list)

    @property
    def normalized_score(self) -> float:
        return self.score / self.max_score if self.max_score > 0 else 0.0


def play_episodes(
    module: "PriorZeroModule",
    *,
    episodes: int,
    mode: ActingMode,
    seed: int,
    max_steps: int | None = None,
) -> list[EpisodeResult]:
    """Play ``episodes`` greedy episodes of the run's game with the module's current agent."""
    datamodule = module.trainer.datamodule
    game_kwargs: dict[str, Any] = datamodule.game_kwargs()
    if max_steps is not None:
        game_kwargs["max_steps"] = max_steps
    agent = module.agent()
    rng = np.random.default_rng(seed)
    games = [TextGame(datamodule.game_path, seed=seed + i, **game_kwargs) for i in range(episodes)]
    try:
        records = [g.reset() for g in games]
        histories: list[list[HistoryStep]] = [[] for _ in games]
        transcripts: list[list[TranscriptStep]] = [[] for _ in games]
        active = list(range(episodes))
        while active:
            decisions = agent.act([records[i] for i in active], [histories[i] for i in active], rng, mode=mode, explore=False)
            still_active = []
            for i, decision in zip(active, decisions):
                record = records[i]
                nxt = games[i].step(decision.action)
                transcripts[i].append(
                    TranscriptStep(
                        observation=record.observation,
                        candidates=list(record.candidates),
                        prior=np.exp(decision.prior_logprobs).round(4).tolist(),
                        visits=decision.visit_policy.round(4).tolist(),
                        action=decision.action,
                        reward=float(nxt.reward),
                    )
                )
                histories[i].append(HistoryStep(record.observation, decision.action, float(nxt.reward)))
                records[i] = nxt
                if not nxt.done:
                    still_active.append(i)
            active = still_active
        return [_result(r, t) for r, t in zip(records, transcripts)]
    finally:
        for g in games:
            g.close()


def play_random_episodes(
    game: str | os.PathLike, *, episodes: int, seed: int, **game_kwargs: Any
) -> list[EpisodeResult]:
    """The baseline: uniformly random valid actions, same step limit as the agent."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(episodes):
        with TextGame(game, seed=seed + i, **game_kwargs) as env:
            record, length = env.reset(), 0
            while not record.done:
                record = env.step(record.candidates[int(rng.integers(len(record.candidates)))])
                length += 1
            results.append(EpisodeResult(score=float(record.score), max_score=float(record.max_score), length=length))
    return results


def _result(final: StepRecord, transcript: Sequence[TranscriptStep]) -> EpisodeResult:
    return EpisodeResult(
        score=float(final.score), max_score=float(final.max_score), length=len(transcript), transcript=list(transcript)
    )
