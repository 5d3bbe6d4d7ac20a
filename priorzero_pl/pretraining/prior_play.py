"""Play games with the prior alone (no search), greedy and sampled, and at random.

Greedy play is the prior's single best guess at every step, and loops as soon as two rooms point
at each other (``go east``, ``go west``, ...): the prompt's few steps of history cannot show
that it has been there. Sampling from the prior is the prior *as a policy*, the distribution the
search starts from, so both are reported.

A small local loop over :class:`TextGame`, built the way collection builds prompts (history of
observation, action, reward), so that a prior's worth as a policy can be measured on unseen games
without a world model. The normalized score of an episode is ``score / max_score``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.llm.candidate_scoring import candidate_logprobs
from priorzero_pl.prior.prompt import HistoryStep, PromptBuilder


@dataclass
class PlayReport:
    """Normalized scores of prior-only and random play over the same games.

    Attributes:
        games: the game files' stems, in order.
        prior_only: ``[G]`` greedy prior-only normalized score of each game (one episode: it is deterministic).
        prior_sampled: ``[G]`` mean normalized score of ``episodes`` episodes per game that sample
            each action from the prior's distribution over the candidates.
        random: ``[G]`` mean normalized score of ``random_episodes`` uniformly random episodes per game.
        max_steps: the step limit of every episode.
    """

    games: list[str]
    prior_only: list[float]
    prior_sampled: list[float]
    random: list[float]
    max_steps: int

    @property
    def prior_only_mean(self) -> float:
        return float(np.mean(self.prior_only))

    @property
    def prior_sampled_mean(self) -> float:
        return float(np.mean(self.prior_sampled))

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random))

    def by_family(self) -> dict[str, dict[str, float]]:
        """Means per game family (the part of a game's id before ``-seed``)."""
        families: dict[str, list[int]] = {}
        for i, game in enumerate(self.games):
            families.setdefault(game.split("-seed")[0], []).append(i)
        return {
            family: {
                "games": len(idx),
                "prior_only": float(np.mean([self.prior_only[i] for i in idx])),
                "prior_sampled": float(np.mean([self.prior_sampled[i] for i in idx])),
                "random": float(np.mean([self.random[i] for i in idx])),
            }
            for family, idx in families.items()
        }

    def to_dict(self) -> dict[str, object]:
        """JSON form, with the means."""
        return {
            **asdict(self),
            "prior_only_mean": self.prior_only_mean,
            "prior_sampled_mean": self.prior_sampled_mean,
            "random_mean": self.random_mean,
            "by_family": self.by_family(),
        }


def _normalized(game: TextGame, score: float) -> float:
    return score / game.max_score if game.max_score > 0 else 0.0


@torch.no_grad()
def play_prior_only(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    game_file: str | os.PathLike[str],
    prompt_builder: PromptBuilder,
    *,
    length_normalise: bool,
    max_steps: int,
    rng: np.random.Generator | None = None,
    episodes: int = 1,
) -> float:
    """Mean normalized score of ``episodes`` episodes that act by the prior alone: the candidate it
    scores highest (``rng`` None), or one drawn from its distribution over the candidates."""
    model.eval()
    scores_per_episode = []
    with TextGame(game_file, max_steps=max_steps) as game:
        for _ in range(episodes):
            record = game.reset()
            history: list[HistoryStep] = []
            while not record.done:
                prompt = prompt_builder.build(history, record.observation, record.candidates)
                (scores,) = candidate_logprobs(model, tokenizer, [prompt], [record.candidates], length_normalise=length_normalise)
                if rng is None:
                    choice = int(torch.argmax(scores))
                else:
                    probs = torch.softmax(scores.double(), dim=-1).numpy()
                    choice = int(rng.choice(len(probs), p=probs / probs.sum()))
                action = record.candidates[choice]
                following = game.step(action)
                history.append(HistoryStep(record.observation, action, following.reward))
                record = following
            scores_per_episode.append(_normalized(game, record.score))
    return float(np.mean(scores_per_episode))


def play_random(game_file: str | os.PathLike[str], *, max_steps: int, episodes: int, seed: int) -> float:
    """Mean normalized score of ``episodes`` episodes that pick uniformly among the candidates."""
    rng = np.random.default_rng(seed)
    scores = []
    with TextGame(game_file, max_steps=max_steps) as game:
        for _ in range(episodes):
            record = game.reset()
            while not record.done:
                record = game.step(record.candidates[int(rng.integers(len(record.candidates)))])
            scores.append(_normalized(game, record.score))
    return float(np.mean(scores))


def compare_prior_with_random(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    game_files: Sequence[str | os.PathLike[str]],
    prompt_builder: PromptBuilder,
    *,
    length_normalise: bool,
    max_steps: int,
    random_episodes: int = 5,
    seed: int = 0,
) -> PlayReport:
    """Greedy prior, sampled prior and random play on each of ``game_files``, at the same step
    limit; the sampled prior and random play ``random_episodes`` episodes per game."""
    prior_only = [
        play_prior_only(model, tokenizer, g, prompt_builder, length_normalise=length_normalise, max_steps=max_steps)
        for g in game_files
    ]
    prior_sampled = [
        play_prior_only(
            model, tokenizer, g, prompt_builder, length_normalise=length_normalise, max_steps=max_steps,
            rng=np.random.default_rng([seed, i]), episodes=random_episodes,
        )
        for i, g in enumerate(game_files)
    ]
    random = [play_random(g, max_steps=max_steps, episodes=random_episodes, seed=seed + i) for i, g in enumerate(game_files)]
    return PlayReport(
        games=[os.path.splitext(os.path.basename(str(g)))[0] for g in game_files],
        prior_only=prior_only,
        prior_sampled=prior_sampled,
        random=random,
        max_steps=max_steps,
    )
