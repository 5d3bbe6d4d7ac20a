"""Schedule rejection-sampling fine-tuning of the LLM on the agent's best recent episodes."""

from __future__ import annotations

import functools
import math
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from callbacks.access import collection
from callbacks.llm_schedule import agreed_count, queue_has_room, require_trainable_llm, round_due
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.rft import RFTLoss, RFTObjective, rft_batch, select_top_episodes


class RFT(Callback):
    """Every ``every_n_steps`` optimizer steps: take the ``recent_episodes`` newest episodes of the
    replay buffer, keep the best ``top_fraction`` by return (and at least ``min_return``), and
    queue their ``(prompt, chosen action)`` steps as shuffled minibatches of
    :class:`~priorzero_pl.objectives.rft.RFTObjective` for the module (one per training step).

    Logs ``llm/rft_episodes`` and ``llm/rft_return_mean`` (of the kept episodes) per round; the
    module logs the loss as ``llm/rft_loss``. See :mod:`callbacks.llm_schedule` for when a round
    is skipped.

    Args:
        every_n_steps: round period in optimizer steps.
        recent_episodes: how many of the newest episodes are ranked.
        top_fraction: share of them kept (at least one).
        min_return: kept episodes must have at least this return (``None``: no floor).
        minibatch_size: steps per queued minibatch.
        loss: ``tokens`` (LM loss on the action's tokens after the prompt) or ``candidates``
            (NLL of the action among the step's candidates).
        seed: with the rank and the step, seeds each round's shuffle (so a resumed run shuffles
            as the run it resumes).
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        recent_episodes: int = 32,
        top_fraction: float = 0.25,
        min_return: float | None = None,
        minibatch_size: int = 16,
        loss: RFTLoss = "tokens",
        seed: int = 0,
    ) -> None:
        for name, value in [("every_n_steps", every_n_steps), ("recent_episodes", recent_episodes), ("minibatch_size", minibatch_size)]:
            if value < 1:
                raise PriorZeroInputError(f"RFT.{name} must be >= 1, got {value}")
        if not 0 < top_fraction <= 1:
            raise PriorZeroInputError(f"RFT.top_fraction must be in (0, 1], got {top_fraction}")
        if loss not in ("tokens", "candidates"):
            raise PriorZeroInputError(f"RFT.loss must be 'tokens' or 'candidates', got {loss!r}")
        self.every_n_steps = every_n_steps
        self.recent_episodes = recent_episodes
        self.top_fraction = top_fraction
        self.min_return = min_return
        self.minibatch_size = minibatch_size
        self.loss = loss
        self.seed = seed
        self.objective: RFTObjective | None = None
        self._last_round = -1

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        require_trainable_llm(pl_module, "RFT")
        sequence_logprobs = None
        if self.loss == "tokens":
            # Mean per token, as a language-model loss is: long actions are not favoured or punished.
            sequence_logprobs = functools.partial(pl_module.llm_policy.scores, length_normalise=True)
        self.objective = RFTObjective(self.loss, sequence_logprobs)
        pl_module.register_llm_objective(self.objective)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not round_due(trainer, self.every_n_steps, self._last_round):
            return
        self._last_round = trainer.global_step
        if not queue_has_room(trainer, pl_module, self.every_n_steps, "RFT"):
            return
        segments = collection(trainer, "RFT (the replay buffer's recent episodes)").buffer.recent_segments(self.recent_episodes)
        top = select_top_episodes(segments, top_fraction=self.top_fraction, min_return=self.min_return)
        rows = rft_batch(top)
        count = agreed_count(trainer, math.ceil(len(rows) / self.minibatch_size))
        generator = np.random.default_rng([self.seed, trainer.global_rank, trainer.global_step])
        for minibatch in rows.minibatches(self.minibatch_size, count, generator):
            pl_module.enqueue_llm_objective(self.objective, minibatch)
        returns = [s.episode_return for s in top]
        pl_module.log("llm/rft_episodes", float(len(top)), batch_size=1)
        if returns:
            pl_module.log("llm/rft_return_mean", sum(returns) / len(returns), batch_size=1)
