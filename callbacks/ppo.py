"""Schedule PPO updates of the LLM policy on recent episodes, against a frozen reference LLM."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DeepSpeedStrategy

from callbacks.access import collection
from callbacks.llm_schedule import agreed_count, queue_has_room, require_trainable_llm, round_due
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.objectives.ppo import PPOBatch, PPOObjective, ppo_rows


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short digest of every parameter (name, shape, sum, sum of squares in float64): equal for
    the same weights, different after any training step or for another model directory."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        data = param.detach().double()
        digest.update(f"{name}{tuple(param.shape)}".encode())
        digest.update(np.asarray([data.sum().item(), data.square().sum().item()]).tobytes())
    return digest.hexdigest()[:16]


class PPO(Callback):
    """Every ``every_n_steps`` optimizer steps: turn the ``recent_episodes`` newest episodes into
    PPO rows and queue ``epochs`` shuffled passes of minibatches of
    :class:`~priorzero_pl.objectives.ppo.PPOObjective` for the module (one per training step).

    Per row (see :mod:`priorzero_pl.objectives.ppo` for the estimator): the behaviour log-prob
    is the one **stored at collection**, of the distribution the action was really drawn from;
    ``pi_old`` (the trust region's centre) is the LLM as it is when the round begins; advantages
    come from GAE over the stored MCTS root values, discounted by ``model.mcts.discount`` (the
    discount those values were computed with: there is one), normalised over the round when
    ``normalize_advantages``. Both ``pi_old`` and the reference are scored by the module's own
    ``policy_logprobs``, so they are normalised exactly as the policy is.

    The reference is the LLM as loaded from ``model.llm.path``: the pretrained policy the KL
    keeps the fine-tuned one near. It is loaded at train start (after any checkpoint is restored,
    whatever the strategy) and is therefore the same on a resumed run as on the run it resumes;
    the checkpoint keeps its fingerprint, and a resume whose model directory no longer holds those
    weights is an error. It costs one more LLM in memory.

    Logs ``llm/adv_mean`` and ``llm/adv_std`` (before normalisation) and ``llm/ppo_rows`` per
    round; the module logs ``llm/ppo_loss``, ``old_kl``, ``clipfrac``, ``ref_kl``, ``entropy``,
    ``importance_weight``.

    Args:
        every_n_steps: round period in optimizer steps.
        recent_episodes: how many of the newest episodes a round uses.
        gae_lambda: GAE lambda.
        clip: ratio clip range.
        kl_coef: weight of the exact KL(policy || reference).
        entropy_coef: weight of the entropy bonus.
        importance_weight_cap: upper bound of ``pi_old(a) / mu(a)`` (None: unbounded, unbiased).
        epochs: passes over a round's rows.
        minibatch_size: rows per queued minibatch.
        normalize_advantages: standardise advantages over the round (CleanRL's ``norm_adv``;
            over the whole round rather than per minibatch, so small minibatches stay defined).
        seed: with the rank and the step, seeds each round's shuffle (so a resumed run shuffles
            as the run it resumes).
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        recent_episodes: int = 16,
        gae_lambda: float = 0.95,
        clip: float = 0.2,
        kl_coef: float = 0.05,
        entropy_coef: float = 0.0,
        importance_weight_cap: float | None = None,
        epochs: int = 2,
        minibatch_size: int = 16,
        normalize_advantages: bool = True,
        seed: int = 0,
    ) -> None:
        for name, value in [
            ("every_n_steps", every_n_steps),
            ("recent_episodes", recent_episodes),
            ("epochs", epochs),
            ("minibatch_size", minibatch_size),
        ]:
            if value < 1:
                raise PriorZeroInputError(f"PPO.{name} must be >= 1, got {value}")
        if not 0 <= gae_lambda <= 1:
            raise PriorZeroInputError(f"PPO.gae_lambda must be in [0, 1], got {gae_lambda}")
        self.objective = PPOObjective(
            clip=clip, kl_coef=kl_coef, entropy_coef=entropy_coef, importance_weight_cap=importance_weight_cap
        )
        self.every_n_steps = every_n_steps
        self.recent_episodes = recent_episodes
        self.gae_lambda = gae_lambda
        self.epochs = epochs
        self.minibatch_size = minibatch_size
        self.normalize_advantages = normalize_advantages
        self.seed = seed
        self.reference: torch.nn.Module | None = None
        self.reference_fingerprint: str | None = None
        """The reference's fingerprint: set when it is loaded, or by a checkpoint to check against."""
        self._last_round = -1

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        require_trainable_llm(pl_module, "PPO")
        strategy = trainer.strategy
        if isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3:
            raise PriorZeroInputError("the PPO callback's reference LLM copy needs whole parameters: use ZeRO stage 1 or 2")
        pl_module.register_llm_objective(self.objective)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Load the reference now: every strategy has restored its checkpoint by this hook."""
        reference, _ = load_llm(pl_module.llm_path)
        like = next(pl_module.llm.parameters())
        reference = reference.to(device=like.device, dtype=like.dtype).eval().requires_grad_(False)
        fingerprint = weights_fingerprint(reference)
        if self.reference_fingerprint is not None and fingerprint != self.reference_fingerprint:
            raise PriorZeroInputError(
                f"the PPO reference is the LLM in model.llm.path={pl_module.llm_path}, but its weights changed since "
                f"the checkpoint was written (fingerprint {fingerprint}, checkpoint {self.reference_fingerprint}): "
                "resume with the model directory the run started from"
            )
        self.reference, self.reference_fingerprint = reference, fingerprint

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.reference = None

    def state_dict(self) -> dict[str, Any]:
        return {"reference_fingerprint": self.reference_fingerprint}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reference_fingerprint = state_dict.get("reference_fingerprint")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not round_due(trainer, self.every_n_steps, self._last_round):
            return
        self._last_round = trainer.global_step
        if not queue_has_room(trainer, pl_module, self.every_n_steps, "PPO"):
            return
        segments = collection(trainer, "PPO (the replay buffer's recent episodes)").buffer.recent_segments(self.recent_episodes)
        rows = ppo_rows(segments, pl_module.mcts_config.discount, self.gae_lambda)
        per_epoch = agreed_count(trainer, math.ceil(len(rows) / self.minibatch_size))
        if per_epoch == 0:
            return
        pl_module.log_dict(
            {
                "llm/adv_mean": rows.advantages.mean(),
                "llm/adv_std": rows.advantages.std(unbiased=False),
                "llm/ppo_rows": float(len(rows)),
            },
            batch_size=1,
        )
        if self.normalize_advantages:
            rows.advantages = (rows.advantages - rows.advantages.mean()) / (rows.advantages.std(unbiased=False) + 1e-8)
        rows.old_logprobs = self.score(trainer, pl_module, rows, model=None)
        rows.ref_logprobs = self.score(trainer, pl_module, rows, model=self.reference)
        generator = np.random.default_rng([self.seed, trainer.global_rank, trainer.global_step])
        for _ in range(self.epochs):
            for minibatch in rows.minibatches(self.minibatch_size, per_epoch, generator):
                pl_module.enqueue_llm_objective(self.objective, minibatch)

    @torch.no_grad()
    def score(
        self, trainer: L.Trainer, pl_module: L.LightningModule, rows: PPOBatch, model: torch.nn.Module | None
    ) -> list[torch.Tensor]:
        """``[N][A_i]`` log-probs of every row's candidates under ``model`` (None: the LLM being
        trained, as it is now), scored by the module's own ``policy_logprobs`` under the trainer's
        precision, as float32 on the CPU."""
        out: list[torch.Tensor] = []
        with trainer.precision_plugin.forward_context():
            for start in range(0, len(rows), self.minibatch_size):
                end = start + self.minibatch_size
                logprobs = pl_module.policy_logprobs(rows.prompts[start:end], rows.candidates[start:end], model=model)
                out += [lp.float().cpu() for lp in logprobs]
        return out
