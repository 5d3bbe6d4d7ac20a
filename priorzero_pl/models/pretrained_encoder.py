"""A frozen local sentence encoder (e.g. all-MiniLM-L6-v2) behind the text-encoder interface.

A pretrained encoder knows that "take lamp" and "get lantern" are close before any game is
played. It stays frozen (the search calls it thousands of times and its gradients would dwarf
the world model's), so pooled embeddings are memoised per text; only a small projection trains.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from priorzero_pl.errors import PriorZeroInputError


class PretrainedTextEncoder(nn.Module):
    """Hugging Face ``AutoModel`` from a local directory, mean-pooled, then a trainable projection.

    Two instances (observations and actions) built from the same path hold two copies of the
    backbone; pass ``backbone`` (``(model, tokenizer)``) to share one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_tokens: int,
        out_dim: int,
        backbone: tuple[nn.Module, object] | None = None,
        cache_size: int = 65536,
    ) -> None:
        super().__init__()
        if backbone is None:
            backbone = load_backbone(path)
        model, self.hf_tokenizer = backbone
        # A plain attribute, not a submodule: the frozen weights stay out of parameters(),
        # state_dict() and checkpoints; they are reloaded from ``path``.
        self._backbone = [model.eval().requires_grad_(False)]
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.project = nn.Sequential(nn.Linear(model.config.hidden_size, out_dim), nn.LayerNorm(out_dim))

    @property
    def backbone(self) -> tuple[nn.Module, object]:
        """``(model, tokenizer)`` to share with a second encoder."""
        return self._backbone[0], self.hf_tokenizer

    @torch.no_grad()
    def _pooled(self, texts: list[str]) -> torch.Tensor:
        model = self._backbone[0]
        device = self.project[0].weight.device
        model.to(device)
        batch = self.hf_tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        batch = {key: value.to(device) for key, value in batch.items()}
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).float()

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """``[N]`` texts -> ``[N, out_dim]`` in the projection's dtype; only the projection carries
        gradients."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            for text, vector in zip(missing, self._pooled(missing)):
                self._cache[text] = vector
        rows = []
        for text in texts:
            self._cache.move_to_end(text)
            rows.append(self._cache[text])
        # The backbone is not a submodule, so precision casts (DeepSpeed's bf16) skip it: its fp32
        # output is cast to the projection's dtype here.
        weight = self.project[0].weight
        pooled = torch.stack(rows).to(device=weight.device, dtype=weight.dtype)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return self.project(pooled)


def load_backbone(path: str | Path) -> tuple[nn.Module, object]:
    """Load ``(AutoModel, AutoTokenizer)`` from a local directory, with a clear error if absent."""
    from transformers import AutoModel, AutoTokenizer

    directory = Path(path)
    if not (directory / "config.json").is_file():
        raise PriorZeroInputError(
            f"pretrained encoder path {directory} is not a Hugging Face model directory (no config.json)"
        )
    try:
        return AutoModel.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as error:
        raise PriorZeroInputError(f"cannot load the pretrained encoder from {directory}: {error}") from error
