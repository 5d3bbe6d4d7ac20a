"""Episode transcripts in TensorBoard: what the agent saw, weighed and did, step by step."""

from __future__ import annotations

import re
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info

from callbacks.access import collection
from priorzero_pl import episodes
from priorzero_pl.agent import ACTING_MODES, ActingMode
from priorzero_pl.episodes import EpisodeResult
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.eval_mode import evaluating


# Game text is full of markdown syntax (ASCII-art banners, `*` and `_` in room art); a stray `|`
# or a backslash before one would break the table.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def _cell(text: str) -> str:
    """Text shown literally inside one markdown table cell."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text.strip()).replace("\r", "").replace("\n", "<br>")


def transcript_markdown(result: EpisodeResult, header: str) -> str:
    """One episode as a markdown table: step, observation, each candidate with its prior and visit
    probabilities (the chosen one in bold), the action taken and the reward it earned."""
    lines = [
        f"{header}: score **{result.score:g}** / {result.max_score:g} in {result.length} steps",
        "",
        "| step | observation | candidates (prior / visits) | action | reward |",
        "|---:|---|---|---|---:|",
    ]
    for t, step in enumerate(result.transcript):
        options = []
        for candidate, prior, visits in zip(step.candidates, step.prior, step.visits):
            option = f"{_cell(candidate)} ({prior:.2f} / {visits:.2f})"
            options.append(f"**{option}**" if candidate == step.action else option)
        lines.append(f"| {t} | {_cell(step.observation)} | {'<br>'.join(options)} | {_cell(step.action)} | {step.reward:g} |")
    return "\n".join(lines)


class Transcripts(Callback):
    """Every ``every_n_steps`` optimizer steps, play one greedy episode in ``mode`` and write it
    to TensorBoard's Text tab (tag ``transcript/<mode>``) as a table: observation, candidates with
    their prior and visit probabilities, chosen action, reward. Reading a few of these is the
    fastest way to see whether the prior and the search agree, and where the agent gets stuck.
    The episode is played by ``pl_module.acting_agent("evaluate", mode=mode)``, the agent the
    Evaluation callback measures.

    Needs a :class:`~lightning.pytorch.loggers.TensorBoardLogger` among the trainer's loggers;
    otherwise it says so once and does nothing. Every rank plays the episode (a sharded model's
    forward pass needs all ranks), rank zero writes it.

    Args:
        every_n_steps: period in optimizer steps.
        mode: acting mode (``world_model``, ``world_model+prior`` or ``prior``).
        seed: seed of the game and the agent (fixed, so transcripts compare across steps).
        max_steps: step limit of the episode (``None``: the training episodes' limit).
    """

    def __init__(
        self, every_n_steps: int = 200, mode: ActingMode = "world_model+prior", seed: int = 4321, max_steps: int | None = None
    ) -> None:
        if every_n_steps < 1:
            raise PriorZeroInputError(f"Transcripts.every_n_steps must be >= 1, got {every_n_steps}")
        if mode not in ACTING_MODES:
            raise PriorZeroInputError(f"Transcripts.mode must be one of {list(ACTING_MODES)}, got {mode!r}")
        if max_steps is not None and max_steps < 1:
            raise PriorZeroInputError(f"Transcripts.max_steps must be >= 1 or null, got {max_steps}")
        self.every_n_steps = every_n_steps
        self.mode = mode
        self.seed = seed
        self.max_steps = max_steps
        self._written_at = -1
        self._said_no_tensorboard = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps != 0 or step == self._written_at:
            return
        self._written_at = step
        writers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not writers:
            if not self._said_no_tensorboard:
                rank_zero_info("Transcripts: no TensorBoardLogger among the trainer's loggers; transcripts are off")
                self._said_no_tensorboard = True
            return
        datamodule = collection(trainer, "Transcripts (the game and its options)")
        with evaluating(pl_module):
            (result,) = episodes.play_episodes(
                pl_module.acting_agent("evaluate", mode=self.mode),
                datamodule.game_path,
                episodes=1,
                seed=self.seed,
                **datamodule.game_kwargs(self.max_steps),
            )
        if trainer.is_global_zero:
            text = transcript_markdown(result, f"step {step}, mode `{self.mode}`, seed {self.seed}")
            writers[0].experiment.add_text(f"transcript/{self.mode}", text, global_step=step)
