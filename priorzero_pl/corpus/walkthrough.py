"""Play a generated game's walkthrough through the project's own game layer, recording each step.

The game runs in :class:`~priorzero_pl.envs.TextGame`, so the observations and candidates stored
are exactly those the agent sees when it plays the game, and the prompt is built by the same
:class:`~priorzero_pl.prior.PromptBuilder` from the same history (observation, action, reward of
each past step) that collection and evaluation give it.

TextWorld's cooking walkthroughs put the knife down after every cut and pick it up again for the
next (``chop carrot with knife``, ``drop knife``, ``take knife``, ``slice potato with knife``). A
prior trained on them learns that ``drop knife`` follows a cut and ``take knife`` follows
``drop knife``, and played greedily it loops between the two (seen on an unseen test-split game);
so the corpus plays the walkthrough with those put-down-and-pick-up detours removed
(:func:`without_detours`), and the full one only when the shorter one does not win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from priorzero_pl.corpus.records import CorpusStep
from priorzero_pl.envs.step import StepRecord
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import HistoryStep, PromptBuilder


@dataclass
class WalkthroughPlay:
    """The recorded steps of one walkthrough and how the game ended.

    Attributes:
        steps: one :class:`CorpusStep` per walkthrough command played.
        score: the score reached.
        max_score: the game's maximum score.
        won: whether the game reported a win.
        fallback_steps: steps whose candidates were ``TextGame``'s default actions (none computed).
    """

    steps: list[CorpusStep]
    score: float
    max_score: float
    won: bool
    fallback_steps: int

    @property
    def off_candidate_steps(self) -> int:
        """Steps whose walkthrough command was not among the candidates."""
        return sum(not step.scorable for step in self.steps)


def play_walkthrough(game_file: Path, game_id: str, prompt_builder: PromptBuilder) -> WalkthroughPlay:
    """Reset ``game_file``, play its walkthrough (:func:`without_detours` where that still wins) to
    the end and record every step.

    A step's history is what its prompt shows: the last ``prompt_builder.history_len`` steps and the notes.
    """
    with TextGame(game_file, max_steps=1_000_000) as game:
        walkthrough = game.walkthrough()
        if not walkthrough:
            raise PriorZeroInputError(f"{game_file} has no walkthrough: corpus games must be TextWorld games made by tw-make")
        shorter = without_detours(walkthrough)
        played = _play(game, game_id, prompt_builder, shorter)
        if shorter != walkthrough and not played.won:
            played = _play(game, game_id, prompt_builder, walkthrough)
        return played


def without_detours(commands: list[str]) -> list[str]:
    """``commands`` without each ``drop X`` that the next command undoes with ``take X``."""
    kept: list[str] = []
    index = 0
    while index < len(commands):
        command = commands[index]
        following = commands[index + 1] if index + 1 < len(commands) else None
        if command.startswith("drop ") and following == "take " + command[len("drop ") :]:
            index += 2
            continue
        kept.append(command)
        index += 1
    return kept


def _play(game: TextGame, game_id: str, prompt_builder: PromptBuilder, commands: list[str]) -> WalkthroughPlay:
    record = game.reset()
    history: list[HistoryStep] = []
    steps: list[CorpusStep] = []
    fallback = 0
    for index, action in enumerate(commands):
        if record.done:
            break
        fallback += record.candidates_fallback
        following = game.step(action)
        steps.append(record_step(prompt_builder, game_id, index, history, record, action, following))
        history.append(HistoryStep(record.observation, action, following.reward))
        record = following
    return WalkthroughPlay(steps=steps, score=record.score, max_score=game.max_score, won=record.won, fallback_steps=fallback)


def record_step(
    prompt_builder: PromptBuilder,
    game_id: str,
    index: int,
    history: list[HistoryStep],
    record: StepRecord,
    label: str,
    following: StepRecord,
    *,
    episode: int = 0,
    played: str | None = None,
) -> CorpusStep:
    """The corpus record of one step: what the agent saw at ``record`` (the prompt with its notes
    and last ``history_len`` steps), the expert's ``label``, and what the command played
    (``played``, else the label) earned on the way to ``following``."""
    notes, shown = prompt_builder.visible(history)
    return CorpusStep(
        game=game_id,
        step=index,
        history=[[h.observation, h.action, h.reward] for h in shown],
        notes=[[note.action, note.text] for note in notes],
        observation=record.observation,
        candidates=list(record.candidates),
        action=label,
        action_index=record.candidates.index(label) if label in record.candidates else -1,
        reward=following.reward,
        prompt=prompt_builder.render(notes, shown, record.observation, record.candidates),
        episode=episode,
        played=None if played == label else played,
    )
