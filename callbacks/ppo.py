"""Schedule PPO updates of the LLM policy on recent episodes, against a frozen reference LLM."""

from __future__ import annotations

import copy
import math
from typing import Any, Literal, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DeepSpeedStrategy

from callbacks.llm_schedule import agreed_count, queue_has_room, require_trainable_llm, round_due
from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.ppo import KLKind, PPOBatch, PPOObjective, gae

Critic = Literal["world_model", "value_head"]


def rollout(segments: Sequence[GameSegment], gamma: float, lam: float) -> PPOBatch:
    """Every usable step of ``segments`` as a PPO row, advantages from the stored MCTS root values.

    The critic is the search's root value stored at collection (the world model's value, sharpened
    by the search, on the same scale as the rewards): no second forward pass, and the value the
    agent actually acted on. A terminal segment bootstraps nothing past its end; a non-terminal
    one (truncated, or still running) has no value for the state after its last action, so its
    last step only serves as the bootstrap of the one before. ``ref_logprob`` is left empty.
    """
    prompts: list[str] = []
    candidates: list[list[str]] = []
    actions: list[int] = []
    old: list[float] = []
    advantages: list[torch.Tensor] = []
    returns: list[torch.Tensor] = []
    for segment in segments:
        steps = len(segment) if segment.terminal else len(segment) - 1
        if steps < 1:
            continue
        next_value = 0.0 if segment.terminal else segment.root_values[steps]
        adv, ret = gae(
            torch.tensor(segment.rewards[:steps]),
            torch.tensor(segment.root_values[:steps]),
            next_value,
            segment.terminal,
            gamma,
            lam,
        )
        prompts.extend(segment.prompts[:steps])
        candidates.extend(list(c) for c in segment.candidates[:steps])
        actions.extend(segment.actions[:steps])
        old.extend(segment.behaviour_logprobs[:steps])
        advantages.append(adv)
        returns.append(ret)
    empty = torch.zeros(0)
    return PPOBatch(
        prompts=prompts,
        candidates=candidates,
        action_index=torch.tensor(actions, dtype=torch.long),
        old_logprob=torch.tensor(old, dtype=torch.float32),
        advantages=torch.cat(advantages) if advantages else empty,
        returns=torch.cat(returns) if returns else empty,
        ref_logprob=empty,
    )


def take(batch: PPOBatch, rows: torch.Tensor) -> PPOBatch:
    """The rows ``rows`` (``[M]`` long) of ``batch``."""
    index = rows.tolist()
    return PPOBatch(
        prompts=[batch.prompts[i] for i in index],
        candidates=[batch.candidates[i] for i in index],
        action_index=batch.action_index[rows],
        old_logprob=batch.old_logprob[rows],
        advantages=batch.advantages[rows],
        returns=batch.returns[rows],
        ref_logprob=batch.ref_logprob[rows],
    )


class PPO(Callback):
    """Every ``every_n_steps`` optimizer steps: turn the ``recent_episodes`` newest episodes into
    PPO rows and queue ``epochs`` shuffled passes of minibatches of
    :class:`~priorzero_pl.objectives.ppo.PPOObjective` for the module (one per training step).

    Per row: the behaviour log-prob is the one **stored at collection** (never recomputed, or the
    ratio would be 1 by construction); advantages come from GAE with the stored MCTS root values
    as the critic (see :func:`rollout`), normalised over the round when ``normalize_advantages``;
    the reference log-prob comes from a frozen copy of the LLM taken at fit start, scored exactly
    as the policy is (same length normalisation and temperature) under the trainer's precision.
    The copy costs one more LLM in memory; on resume it is taken from the resumed weights.

    Logs ``llm/adv_mean`` and ``llm/adv_std`` (before normalisation) and ``llm/ppo_rows`` per
    round; the module logs ``llm/ppo_loss``, ``approx_kl``, ``clipfrac``, ``ref_kl``, ``entropy``.

    Args:
        every_n_steps: round period in optimizer steps.
        recent_episodes: how many of the newest episodes a round uses.
        gamma: discount.
        gae_lambda: GAE lambda.
        critic: ``world_model`` (stored MCTS root values). ``value_head`` (a learned value head on
            the LLM) is not implemented and is rejected.
        clip: ratio clip range.
        kl_coef: weight of KL(policy || reference).
        kl_kind: KL estimator, ``k1`` or ``k3``.
        entropy_coef: weight of the entropy bonus.
        epochs: passes over a round's rows.
        minibatch_size: rows per queued minibatch.
        normalize_advantages: standardise advantages over the round (CleanRL's ``norm_adv``;
            over the whole round rather than per minibatch, so small minibatches stay defined).
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        recent_episodes: int = 16,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        critic: Critic = "world_model",
        clip: float = 0.2,
        kl_coef: float = 0.05,
        kl_kind: KLKind = "k3",
        entropy_coef: float = 0.0,
        epochs: int = 2,
        minibatch_size: int = 16,
        normalize_advantages: bool = True,
    ) -> None:
        for name, value in [
            ("every_n_steps", every_n_steps),
            ("recent_episodes", recent_episodes),
            ("epochs", epochs),
            ("minibatch_size", minibatch_size),
        ]:
            if value < 1:
                raise PriorZeroInputError(f"PPO.{name} must be >= 1, got {value}")
        if not 0 <= gamma <= 1 or not 0 <= gae_lambda <= 1:
            raise PriorZeroInputError(f"PPO.gamma and PPO.gae_lambda must be in [0, 1], got {gamma} and {gae_lambda}")
        if critic != "world_model":
            raise PriorZeroInputError(
                f"PPO.critic={critic!r} is not available: only 'world_model' (the stored MCTS root values) is "
                "implemented; a learned value head is not"
            )
        self.objective = PPOObjective(clip=clip, kl_coef=kl_coef, kl_kind=kl_kind, entropy_coef=entropy_coef)
        self.every_n_steps = every_n_steps
        self.recent_episodes = recent_episodes
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.epochs = epochs
        self.minibatch_size = minibatch_size
        self.normalize_advantages = normalize_advantages
        self.reference: torch.nn.Module | None = None
        self._last_round = -1

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        require_trainable_llm(pl_module, "PPO")
        strategy = trainer.strategy
        if isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3:
            raise PriorZeroInputError("the PPO callback's reference LLM copy needs whole parameters: use ZeRO stage 1 or 2")
        self.reference = copy.deepcopy(pl_module.llm).eval().requires_grad_(False)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.reference = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not round_due(trainer, self.every_n_steps, self._last_round):
            return
        self._last_round = trainer.global_step
        if not queue_has_room(trainer, pl_module, self.every_n_steps, "PPO"):
            return
        rows = rollout(trainer.datamodule.buffer.recent_segments(self.recent_episodes), self.gamma, self.gae_lambda)
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
        rows.ref_logprob = self.reference_logprobs(trainer, pl_module, rows)
        for _ in range(self.epochs):
            for chunk in torch.randperm(len(rows)).split(self.minibatch_size)[:per_epoch]:
                pl_module.enqueue_llm_objective(self.objective, take(rows, chunk))

    @torch.no_grad()
    def reference_logprobs(self, trainer: L.Trainer, pl_module: L.LightningModule, rows: PPOBatch) -> torch.Tensor:
        """``[N]`` log-prob of each row's action under the reference LLM, scored by the module's
        own ``policy_logprobs`` so that reference and policy can never be normalised differently."""
        out = []
        with trainer.precision_plugin.forward_context():
            for start in range(0, len(rows), self.minibatch_size):
                end = start + self.minibatch_size
                logprobs = pl_module.policy_logprobs(rows.prompts[start:end], rows.candidates[start:end], model=self.reference)
                out += [lp.float()[int(action)].cpu() for lp, action in zip(logprobs, rows.action_index[start:end])]
        return torch.stack(out) if out else torch.zeros(0)
