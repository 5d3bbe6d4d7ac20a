"""The learned transition: (latent, action embedding) -> next latent and reward logits."""

from __future__ import annotations

import torch
from torch import nn


class LatentDynamics(nn.Module):
    """A small transformer over the two tokens ``[latent, action]``.

    UniZero runs one transformer over the whole (latent, action) trajectory so that the next
    latent can attend to the history. Here the transformer sees only the current pair: the
    observation text of a text game already carries most of the state, and a pair-wise model is
    what a batched tree search can call node by node without a KV cache per path. The next
    latent is a residual update of the current one, normalised like the encoder's output so that
    the encoder's latents and the dynamics' latents live on the same scale (the consistency loss
    compares them).
    """

    def __init__(
        self, latent_dim: int, action_dim: int, *, num_layers: int, num_heads: int, dropout: float, support_size: int
    ) -> None:
        super().__init__()
        self.action_in = nn.Linear(action_dim, latent_dim)
        self.token_type = nn.Parameter(torch.zeros(2, latent_dim))
        layer = nn.TransformerEncoderLayer(
            latent_dim, num_heads, dim_feedforward=4 * latent_dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.latent_out = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, latent_dim))
        self.latent_norm = nn.LayerNorm(latent_dim)
        self.reward_head = nn.Sequential(
            nn.LayerNorm(2 * latent_dim),
            nn.Linear(2 * latent_dim, latent_dim),
            nn.GELU(),
            nn.Linear(latent_dim, 2 * support_size + 1),
        )

    def forward(self, latent: torch.Tensor, action_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``latent`` ``[B, D]``, ``action_embedding`` ``[B, E]`` -> next latent ``[B, D]``,
        reward logits ``[B, 2S + 1]`` of the transition."""
        tokens = torch.stack([latent, self.action_in(action_embedding)], dim=1) + self.token_type
        hidden = self.transformer(tokens)
        next_latent = self.latent_norm(latent + self.latent_out(hidden[:, 0]))
        return next_latent, self.reward_head(hidden.flatten(1))
