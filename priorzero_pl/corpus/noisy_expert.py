"""Noise-injected expert episodes: the states a prior reaches after its own mistakes, labelled by an expert.

A prior trained on walkthroughs alone has only seen the states of perfect play; one wrong move at
play time puts it where it never was, and its errors compound (Ross & Bagnell 2010). DART (Laskey
et al. 2017) fixes this cheaply: play the expert with noise, so that the recorded states include
the mistakes and the labels are the expert's recovery from them. TextWorld supplies the expert for
any state: it replans the shortest winning command list after every step
(:meth:`~priorzero_pl.envs.text_game.TextGame.winning_plan`).

That replanner is not a fair teacher on its own: it reads the game's hidden state. In tw-cooking
its plan goes straight for the recipe's ingredients (``open fridge``, ``take carrot from fridge``),
which a player only learns by reading the cookbook, and it never contains ``examine cookbook``
(the walkthrough starts ``inventory``, ``examine cookbook``); a prior trained on its labels learns
to name an ingredient it cannot know. So the expert here reads before it acts: while the episode
is still on the walkthrough's path its label is the walkthrough's command (the commands the
walkthrough episode played, so the label it gives that state too); off the path, it reads the
cookbook first whenever it can and has not yet, and otherwise follows the winning plan (which
still knows where unseen objects are: the states are right, some labels are better informed than
a player could be).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from priorzero_pl.corpus.records import CorpusStep
from priorzero_pl.corpus.walkthrough import record_step, without_detours
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import HistoryStep, PromptBuilder

READ_RECIPE = "examine cookbook"
"""The command that shows a tw-cooking player the recipe; TextWorld's winning plan never contains it."""


def play_noisy_expert(
    game_file: Path,
    game_id: str,
    prompt_builder: PromptBuilder,
    *,
    episode: int,
    noise: float,
    rng: np.random.Generator,
    max_steps: int,
    walkthrough: Sequence[str] | None = None,
) -> list[CorpusStep]:
    """Play one episode of ``game_file`` in which each step's command is, with probability ``noise``,
    a uniformly drawn candidate other than the expert's, else the expert's; record every step with
    the expert's command as its label (:func:`expert_command`).

    ``walkthrough`` is the command list the walkthrough episode played (default: the game's
    walkthrough :func:`~priorzero_pl.corpus.walkthrough.without_detours`). The episode ends when
    the game does, when no win is reachable any more (a lost quest leaves nothing to label), or
    after ``max_steps`` steps.
    """
    if not 0.0 <= noise < 1.0:
        raise PriorZeroInputError(f"noise={noise}: must be a probability in [0, 1)")
    if episode < 1:
        raise PriorZeroInputError(f"episode={episode}: noisy episodes are numbered from 1 (0 is the walkthrough)")
    steps: list[CorpusStep] = []
    with TextGame(game_file, max_steps=1_000_000, track_winning_plan=True) as game:
        if walkthrough is None:
            walkthrough = without_detours(game.walkthrough() or [])
        record = game.reset()
        history: list[HistoryStep] = []
        on_walkthrough = True
        for index in range(max_steps):
            plan = game.winning_plan()
            if record.done or not plan:
                break
            on_walkthrough = on_walkthrough and index < len(walkthrough)
            expert = expert_command(
                walkthrough[index] if on_walkthrough else None, plan, record.candidates, [h.action for h in history]
            )
            others = [c for c in record.candidates if c != expert]
            played = others[int(rng.integers(len(others)))] if others and rng.random() < noise else expert
            following = game.step(played)
            steps.append(
                record_step(prompt_builder, game_id, index, history, record, expert, following, episode=episode, played=played)
            )
            history.append(HistoryStep(record.observation, played, following.reward))
            on_walkthrough = on_walkthrough and played == expert
            record = following
    return steps


def expert_command(walkthrough_command: str | None, plan: list[str], candidates: Sequence[str], played: Sequence[str]) -> str:
    """The expert's command in one state: ``walkthrough_command`` while every command so far was the
    walkthrough's (pass None once one was not), else :data:`READ_RECIPE` if it is a candidate and was
    never ``played``, else the winning ``plan``'s first command."""
    if walkthrough_command is not None:
        return walkthrough_command
    if READ_RECIPE in candidates and READ_RECIPE not in played:
        return READ_RECIPE
    return plan[0]
