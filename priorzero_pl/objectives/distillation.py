"""MCTS distillation: pull the LLM's policy over the candidates towards the search's visit policy."""

from __future__ import annotations

from typing import Sequence

import torch


def distillation_loss(policy_logprobs: Sequence[torch.Tensor], visit_policies: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over roots of KL(visit || LLM) = sum_a v_a (log v_a - log p_a).

    Args:
        policy_logprobs: ``[N][A_i]`` LLM log-probs normalised over each root's candidates.
        visit_policies: ``[N][A_i]`` MCTS visit distributions over the same candidates.
    """
    terms = []
    for logp, visits in zip(policy_logprobs, visit_policies):
        visits = visits.to(logp.dtype)
        entropy_part = torch.where(visits > 0, visits * torch.log(visits.clamp_min(1e-12)), torch.zeros_like(visits))
        terms.append((entropy_part - visits * logp).sum())
    return torch.stack(terms).mean()
