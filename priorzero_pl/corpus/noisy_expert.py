"""Noise-injected expert episodes: the states a prior reaches after its own mistakes, labelled by an expert.

A prior trained on walkthroughs alone has only seen the states of perfect play; one wrong move at
play time puts it where it never was, and its errors compound (Ross & Bagnell 2010). DART (Laskey
et al. 2017) fixes this cheaply: play the expert with noise, so that the recorded states include
the mistakes and the labels are the expert's recovery from them. TextWorld supplies the expert for
any state: it replans the shortest winning command list after every step
(:meth:`~priorzero_pl.envs.text_game.TextGame.winning_plan`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from priorzero_pl.corpus.records import CorpusStep
from priorzero_pl.corpus.walkthrough import record_step
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import HistoryStep, PromptBuilder


def play_noisy_expert(
    game_file: Path,
    game_id: str,
    prompt_builder: PromptBuilder,
    *,
    episode: int,
    noise: float,
    rng: np.random.Generator,
    max_steps: int,
) -> list[CorpusStep]:
    """Play one episode of ``game_file`` in which each step's command is, with probability ``noise``,
    a uniformly drawn candidate other than the expert's, else the expert's; record every step with
    the expert's command as its label.

    The episode ends when the game does, when no win is reachable any more (a lost quest leaves
    nothing to label), or after ``max_steps`` steps.
    """
    if not 0.0 <= noise < 1.0:
        raise PriorZeroInputError(f"noise={noise}: must be a probability in [0, 1)")
    if episode < 1:
        raise PriorZeroInputError(f"episode={episode}: noisy episodes are numbered from 1 (0 is the walkthrough)")
    steps: list[CorpusStep] = []
    with TextGame(game_file, max_steps=1_000_000, track_winning_plan=True) as game:
        record = game.reset()
        history: list[HistoryStep] = []
        for index in range(max_steps):
            plan = game.winning_plan()
            if record.done or not plan:
                break
            expert = plan[0]
            others = [c for c in record.candidates if c != expert]
            played = others[int(rng.integers(len(others)))] if others and rng.random() < noise else expert
            following = game.step(played)
            steps.append(
                record_step(prompt_builder, game_id, index, history, record, expert, following, episode=episode, played=played)
            )
            history.append(HistoryStep(record.observation, played, following.reward))
            record = following
    return steps
