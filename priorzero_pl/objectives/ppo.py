"""PPO for the LLM policy over candidate actions, CleanRL-style: read it top to bottom.

The "policy" is the LLM's distribution over a step's candidate actions (see
:class:`~priorzero_pl.objectives.objective.CandidateLogProbs`); one row of a batch is one game
step: the prompt the LLM saw, the candidates, the action the agent took, the log-prob the LLM
gave that action at collection (the behaviour policy), an advantage from a critic, and the
log-prob under a frozen reference copy of the LLM (for the KL penalty that keeps the policy from
drifting into degenerate text scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.objective import CandidateBatch, CandidateLogProbs

KLKind = Literal["k1", "k3"]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: float,
    terminal: bool,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over one episode or segment.

    Args:
        rewards: ``[T]`` reward received after the action at step ``t``.
        values: ``[T]`` critic value of the state at step ``t``.
        next_value: critic value of the state after the last step; ignored when ``terminal``
            (nothing follows the end of a game), otherwise the bootstrap of the truncated tail.
        terminal: whether the game ended after the last step.
        gamma: discount.
        lam: GAE lambda (0: one-step TD, 1: Monte-Carlo return minus value).

    Returns:
        ``(advantages [T], returns [T])`` with ``returns = advantages + values``.
    """
    rewards, values = rewards.float(), values.float()
    advantages = torch.zeros_like(rewards)
    last_gae = 0.0
    steps = len(rewards)
    for t in reversed(range(steps)):
        if t == steps - 1:
            next_nonterminal = 0.0 if terminal else 1.0
            next_values = float(next_value)
        else:
            next_nonterminal = 1.0
            next_values = values[t + 1]
        delta = rewards[t] + gamma * next_values * next_nonterminal - values[t]
        advantages[t] = last_gae = delta + gamma * lam * next_nonterminal * last_gae
    return advantages, advantages + values


def ppo_clip_loss(
    logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The clipped surrogate objective, as a loss to minimise.

    Args:
        logp_new: ``[N]`` log-prob of the taken actions under the current policy (differentiable).
        logp_old: ``[N]`` log-prob of the same actions under the behaviour policy.
        advantages: ``[N]`` advantage of each taken action.
        clip: ratio clip range epsilon.

    Returns:
        ``(loss, clipfrac, approx_kl)``: the scalar loss; the fraction of rows whose ratio left
        ``[1 - clip, 1 + clip]``; and the ``k3`` estimate of KL(old || new), which tells how far
        the policy already moved from the data (the two diagnostics carry no gradient).
    """
    logratio = logp_new - logp_old
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    return torch.max(pg_loss1, pg_loss2).mean(), clipfrac, approx_kl


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-sample estimate of KL(policy || reference) at actions drawn from the policy.

    ``k1`` is ``logp - ref_logp`` (unbiased, high variance, can be negative); ``k3`` is
    ``exp(ref - logp) - (ref - logp) - 1`` (unbiased, low variance, never negative) after
    Schulman, "Approximating KL divergence" (2020).

    Args:
        logp: ``[N]`` log-prob of the taken actions under the current policy.
        ref_logp: ``[N]`` log-prob of the same actions under the reference policy.

    Returns:
        ``[N]`` the estimate per sample.
    """
    if kind == "k1":
        return logp - ref_logp
    if kind == "k3":
        log_ratio = ref_logp - logp
        return log_ratio.exp() - log_ratio - 1
    raise PriorZeroInputError(f"kl kind must be 'k1' or 'k3', got {kind!r}")


@dataclass
class PPOBatch(CandidateBatch):
    """A :class:`CandidateBatch` of collected steps with what PPO needs per row.

    Attributes:
        old_logprob: ``[N]`` log-prob of the taken action under the LLM prior at collection
            (stored then, never recomputed: that is what makes the ratio off-policy-correct).
        advantages: ``[N]`` advantage of the taken action (normalised or not, as the caller chose).
        returns: ``[N]`` advantage + critic value: the value target, logged as ``return_mean``.
        ref_logprob: ``[N]`` log-prob of the taken action under the frozen reference LLM.
    """

    old_logprob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    ref_logprob: torch.Tensor


class PPOObjective:
    """Clipped PPO on the LLM's candidate policy, with a KL penalty to a reference LLM and an
    optional entropy bonus: ``loss = ppo + kl_coef * KL(policy || ref) - entropy_coef * H``.

    Args:
        clip: ratio clip range epsilon.
        kl_coef: weight of the reference KL penalty (0 switches it off).
        kl_kind: KL estimator, ``k1`` or ``k3`` (see :func:`kl_penalty`).
        entropy_coef: weight of the entropy bonus over each step's candidates.
    """

    name = "ppo"

    def __init__(self, clip: float = 0.2, kl_coef: float = 0.05, kl_kind: KLKind = "k3", entropy_coef: float = 0.0) -> None:
        if clip <= 0:
            raise PriorZeroInputError(f"ppo clip must be > 0, got {clip}")
        if kl_coef < 0 or entropy_coef < 0:
            raise PriorZeroInputError(f"ppo kl_coef and entropy_coef must be >= 0, got {kl_coef} and {entropy_coef}")
        if kl_kind not in ("k1", "k3"):
            raise PriorZeroInputError(f"ppo kl_kind must be 'k1' or 'k3', got {kl_kind!r}")
        self.clip, self.kl_coef, self.kl_kind, self.entropy_coef = clip, kl_coef, kl_kind, entropy_coef

    def loss(self, policy: CandidateLogProbs, batch: PPOBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logps = policy(batch.prompts, batch.candidates)
        logp_new = torch.stack([lp[int(a)] for lp, a in zip(logps, batch.action_index)])
        device = logp_new.device
        pg_loss, clipfrac, approx_kl = ppo_clip_loss(
            logp_new, batch.old_logprob.to(device), batch.advantages.to(device), self.clip
        )
        ref_kl = kl_penalty(logp_new, batch.ref_logprob.to(device), self.kl_kind).mean()
        # Categorical clamps -inf logits, so a candidate with zero probability adds 0, not nan.
        entropy = torch.stack([torch.distributions.Categorical(logits=lp).entropy() for lp in logps]).mean()
        total = pg_loss + self.kl_coef * ref_kl - self.entropy_coef * entropy
        metrics = {
            "ppo_loss": pg_loss.detach(),
            "approx_kl": approx_kl,
            "clipfrac": clipfrac,
            "ref_kl": ref_kl.detach(),
            "entropy": entropy.detach(),
            "return_mean": batch.returns.float().mean(),
        }
        return total, metrics
