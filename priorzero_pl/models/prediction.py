"""The prediction function: value and policy of a latent state over any candidate set."""

from __future__ import annotations

import math

import torch
from torch import nn


class PredictionHeads(nn.Module):
    """Value logits from the latent; policy logits as scores of candidate embeddings.

    There is no fixed action table in a text game, so the policy is a bilinear score
    ``<W latent, candidate>``: every candidate set works, including ones never seen in training.
    """

    def __init__(self, latent_dim: int, action_dim: int, support_size: int) -> None:
        super().__init__()
        self.value = nn.Sequential(
            nn.Linear(latent_dim, latent_dim), nn.GELU(), nn.Linear(latent_dim, 2 * support_size + 1)
        )
        self.query = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU(), nn.Linear(latent_dim, action_dim))
        self.scale = 1.0 / math.sqrt(action_dim)

    def forward(
        self, latent: torch.Tensor, candidates: torch.Tensor, candidate_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``latent`` ``[B, D]``, ``candidates`` ``[B, A, E]``, ``candidate_mask`` ``[B, A]`` bool ->
        value logits ``[B, 2S + 1]`` and policy logits ``[B, A]``.

        Padded candidates get the dtype's most negative finite value (not ``-inf``, so that a
        softmax over a row stays finite even in reduced precision arithmetic).
        """
        scores = torch.einsum("be,bae->ba", self.query(latent), candidates) * self.scale
        policy = scores.masked_fill(~candidate_mask, torch.finfo(scores.dtype).min)
        return self.value(latent), policy
