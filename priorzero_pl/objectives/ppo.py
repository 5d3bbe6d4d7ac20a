"""PPO for the LLM policy over candidate actions, from the search's data, CleanRL-style: read it
top to bottom.

The agent does not act with the LLM: it draws each action from the search's visit counts (root
noise, action temperature). Call that behaviour policy ``mu``. The LLM policy ``pi`` (its
distribution over a step's candidates, see
:class:`~priorzero_pl.objectives.objective.CandidateLogProbs`) is what PPO improves. One row of a
batch is one game step: the prompt, the candidates, the action taken, ``log mu(a)`` (stored at
collection: the probability the action was drawn with), an advantage, and the log-probs over all
candidates of two frozen LLMs: ``pi_old``, the LLM when the round began (PPO's proximal policy),
and ``pi_ref``, the anchor of the KL penalty.

The estimator is decoupled PPO (Hilton et al., "Batch size-invariance for policy optimization",
2021). Per row, with ``w = min(pi_old(a) / mu(a), cap)`` and ``r = pi(a) / pi_old(a)``::

    loss = -w * min(r * A, clip(r, 1 - eps, 1 + eps) * A)

Inside the clip a row's gradient is ``w * r * A * grad log pi(a)``. Without a cap
(``w * r = pi(a) / mu(a)``) its expectation over ``a ~ mu`` is ``sum_a pi(a) A(a) grad log pi(a)``:
the policy gradient of ``pi``, exactly, for every action ``mu`` can draw (an action the search
never draws carries no gradient). With a cap ``c`` the expectation at ``pi = pi_old`` is
``sum_a min(c mu(a), pi(a)) A(a) grad log pi(a)`` instead: V-trace's trade of bias for variance.
The clip keeps ``pi`` within ``eps`` of ``pi_old`` (PPO's trust region). ``pi_old`` is scored when
the round begins rather than taken from the prior stored at collection, so the trust region is
centred on the policy being updated, whatever scored the prior back then (an older LLM, vLLM,
or the uniform fallback).

The advantages estimate ``A^mu`` (GAE over the search's root values), so the update moves ``pi``
towards actions the search found better than it expected.

The KL penalty is exact: ``KL(pi || pi_ref) = sum_a pi(a) (log pi(a) - log pi_ref(a))`` over the
step's candidates, which are few and all enumerated (no sampled estimator is needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.objective import CandidateBatch, CandidateLogProbs


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


@dataclass
class PPOBatch(CandidateBatch):
    """A :class:`CandidateBatch` of collected steps with what PPO needs per row.

    Attributes:
        behaviour_logprob: ``[N]`` ``log mu(a)``: the log-prob the taken action was drawn with
            at collection (``GameSegment.behaviour_logprobs``).
        advantages: ``[N]`` advantage of the taken action (normalised or not, as the caller chose).
        returns: ``[N]`` advantage + critic value: the value target, logged as ``return_mean``.
        old_logprobs: ``[N][A_i]`` the LLM's log-probs over each row's candidates when the round
            began (``pi_old``).
        ref_logprobs: ``[N][A_i]`` the reference LLM's log-probs over the same candidates.
    """

    behaviour_logprob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    old_logprobs: list[torch.Tensor]
    ref_logprobs: list[torch.Tensor]


def ppo_rows(segments: Sequence[GameSegment], gamma: float, lam: float) -> PPOBatch:
    """Every usable step of ``segments`` as a PPO row, advantages from the stored MCTS root values.

    The critic is the search's root value stored at collection (the world model's value, sharpened
    by the search, on the same scale as the rewards): no second forward pass, and the value the
    agent actually acted on. ``gamma`` must be the search's discount, which those values use. A
    terminal segment bootstraps nothing past its end; a non-terminal one (truncated) has no value
    for the state after its last action, so its last step only serves as the bootstrap of the
    one before. ``old_logprobs`` and ``ref_logprobs`` are left empty for the caller to score.
    """
    prompts: list[str] = []
    candidates: list[list[str]] = []
    actions: list[int] = []
    behaviour: list[float] = []
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
        behaviour.extend(segment.behaviour_logprobs[:steps])
        advantages.append(adv)
        returns.append(ret)
    empty = torch.zeros(0)
    return PPOBatch(
        prompts=prompts,
        candidates=candidates,
        action_index=torch.tensor(actions, dtype=torch.long),
        behaviour_logprob=torch.tensor(behaviour, dtype=torch.float32),
        advantages=torch.cat(advantages) if advantages else empty,
        returns=torch.cat(returns) if returns else empty,
        old_logprobs=[],
        ref_logprobs=[],
    )


def decoupled_clip_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    behaviour_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip: float,
    weight_cap: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The decoupled clipped surrogate (module docstring), as a loss to minimise.

    Args:
        logp_new: ``[N]`` log-prob of the taken actions under the current policy (differentiable).
        logp_old: ``[N]`` the same under the proximal policy ``pi_old``.
        behaviour_logp: ``[N]`` the same under the behaviour policy ``mu`` that drew them.
        advantages: ``[N]`` advantage of each taken action.
        clip: ratio clip range epsilon.
        weight_cap: upper bound of the importance weight ``pi_old / mu`` (None: no bound).

    Returns:
        ``(loss, clipfrac, weights)``: the scalar loss; the fraction of rows whose ratio left
        ``[1 - clip, 1 + clip]``; the ``[N]`` importance weights (no gradient).
    """
    weights = (logp_old - behaviour_logp).exp()
    if weight_cap is not None:
        weights = weights.clamp(max=weight_cap)
    ratio = (logp_new - logp_old).exp()
    with torch.no_grad():
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip) * advantages
    return -(weights * torch.min(unclipped, clipped)).mean(), clipfrac, weights


def exact_kl(logp: Sequence[torch.Tensor], logq: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[N]`` ``KL(p || q) = sum_a p(a) (log p(a) - log q(a))`` of each row's two ``[A_i]``
    log-distributions over the same candidates (candidates with ``p(a) = 0`` add nothing)."""
    rows = []
    for lp, lq in zip(logp, logq):
        lq = lq.to(device=lp.device, dtype=lp.dtype)
        p = lp.exp()
        rows.append(torch.where(p > 0, p * (lp - lq), torch.zeros_like(p)).sum())
    return torch.stack(rows)


class PPOObjective:
    """Decoupled clipped PPO on the LLM's candidate policy, with the exact KL to a reference LLM
    and an optional entropy bonus: ``loss = ppo + kl_coef * KL(pi || ref) - entropy_coef * H(pi)``.

    Args:
        clip: ratio clip range epsilon.
        kl_coef: weight of the reference KL penalty (0 switches it off).
        entropy_coef: weight of the entropy bonus over each step's candidates.
        importance_weight_cap: upper bound of ``pi_old(a) / mu(a)`` (None: unbounded, unbiased).
    """

    name = "ppo"
    batch_type = PPOBatch

    def __init__(
        self, clip: float = 0.2, kl_coef: float = 0.05, entropy_coef: float = 0.0, importance_weight_cap: float | None = None
    ) -> None:
        if clip <= 0:
            raise PriorZeroInputError(f"ppo clip must be > 0, got {clip}")
        if kl_coef < 0 or entropy_coef < 0:
            raise PriorZeroInputError(f"ppo kl_coef and entropy_coef must be >= 0, got {kl_coef} and {entropy_coef}")
        if importance_weight_cap is not None and not importance_weight_cap > 0:
            raise PriorZeroInputError(f"ppo importance_weight_cap must be > 0 or null, got {importance_weight_cap}")
        self.clip, self.kl_coef, self.entropy_coef = clip, kl_coef, entropy_coef
        self.importance_weight_cap = importance_weight_cap

    def loss(self, policy: CandidateLogProbs, batch: PPOBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logps = policy(batch.prompts, batch.candidates)
        device = logps[0].device
        actions = [int(a) for a in batch.action_index]
        logp_new = torch.stack([lp[a] for lp, a in zip(logps, actions)])
        old = [lp.to(device=device, dtype=logp_new.dtype) for lp in batch.old_logprobs]
        logp_old = torch.stack([lp[a] for lp, a in zip(old, actions)])
        pg_loss, clipfrac, weights = decoupled_clip_loss(
            logp_new,
            logp_old,
            batch.behaviour_logprob.to(device=device, dtype=logp_new.dtype),
            batch.advantages.to(device=device, dtype=logp_new.dtype),
            self.clip,
            self.importance_weight_cap,
        )
        ref_kl = exact_kl(logps, batch.ref_logprobs).mean()
        # Categorical clamps -inf logits, so a candidate with zero probability adds 0, not nan.
        entropy = torch.stack([torch.distributions.Categorical(logits=lp).entropy() for lp in logps]).mean()
        total = pg_loss + self.kl_coef * ref_kl - self.entropy_coef * entropy
        with torch.no_grad():
            old_kl = exact_kl(old, [lp.detach() for lp in logps]).mean()
        metrics = {
            "ppo_loss": pg_loss.detach(),
            "old_kl": old_kl,
            "clipfrac": clipfrac,
            "ref_kl": ref_kl.detach(),
            "entropy": entropy.detach(),
            "importance_weight": weights.mean(),
            "return_mean": batch.returns.float().mean(),
        }
        return total, metrics
