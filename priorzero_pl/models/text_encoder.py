"""Text to vector: the trainable encoder behind observations and candidate actions."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from priorzero_pl.models.hashed_tokenizer import HashedTokenizer


class HashedTextEncoder(nn.Module):
    """Hashed tokens -> small pre-norm transformer -> masked mean pool -> projection + LayerNorm.

    Observations and actions get one encoder each (they are different kinds of text) but may
    share ``embedding``, so that a word means the same in "a mailbox is here" and "open mailbox".
    The final LayerNorm keeps latents at a fixed scale, which the dynamics need to stay stable
    over an unroll (UniZero normalises its latents for the same reason).
    """

    def __init__(
        self,
        tokenizer: HashedTokenizer,
        embedding: nn.Embedding,
        *,
        max_tokens: int,
        out_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.embedding = embedding
        self.max_tokens = max_tokens
        width = embedding.embedding_dim
        self.position = nn.Embedding(max_tokens + 1, width)
        layer = nn.TransformerEncoderLayer(
            width, num_heads, dim_feedforward=4 * width, dropout=dropout, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.project = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out_dim), nn.LayerNorm(out_dim))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """``[N]`` texts -> ``[N, out_dim]`` on the parameters' device."""
        device = self.position.weight.device
        ids, mask = self.tokenizer(texts, self.max_tokens)
        ids, mask = ids.to(device), mask.to(device)
        positions = torch.arange(ids.shape[1], device=device)
        hidden = self.transformer(self.embedding(ids) + self.position(positions), src_key_padding_mask=~mask)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        return self.project(pooled)
