"""Hyper-parameters of the world model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from priorzero_pl.config_checks import require_int, require_number
from priorzero_pl.errors import PriorZeroInputError


@dataclass
class WorldModelConfig:
    """Sizes and loss weights of :class:`~priorzero_pl.models.world_model.WorldModel`."""

    latent_dim: int = 64
    """``D``: size of the latent state the search moves through."""
    embed_dim: int = 64
    """``E``: token-embedding width, also the size of a candidate action's embedding."""
    vocab_size: int = 4096
    """Hash buckets of the tokenizer (2 of them reserved for padding and CLS)."""
    max_observation_tokens: int = 128
    """Observations longer than this are cut to their first tokens (counted and logged once)."""
    max_action_tokens: int = 12
    """Candidate action texts longer than this are cut the same way."""
    num_layers: int = 1
    """Transformer layers in each text encoder and in the dynamics."""
    num_heads: int = 4
    """Attention heads; must divide ``embed_dim`` and ``latent_dim``."""
    support_size: int = 10
    """``S``: value and reward heads predict ``2S + 1`` bins of the transformed scalar."""
    value_loss_weight: float = 0.25
    """MuZero's 0.25: value targets are noisy n-step returns and must not swamp the latent."""
    reward_loss_weight: float = 1.0
    policy_loss_weight: float = 1.0
    consistency_loss_weight: float = 2.0
    """EfficientZero's weight on the self-supervised latent-consistency term."""
    dropout: float = 0.0
    pretrained_encoder_path: str | None = None
    """A local Hugging Face encoder directory (e.g. all-MiniLM-L6-v2) used frozen, mean-pooled,
    for observations and actions instead of the hashed-token encoders. None: hashed encoders."""

    def __post_init__(self) -> None:
        key = "model.world_model."
        for name in ("latent_dim", "embed_dim", "max_observation_tokens", "max_action_tokens", "num_layers", "num_heads", "support_size"):
            require_int(key + name, getattr(self, name), minimum=1)
        require_int(key + "vocab_size", self.vocab_size, minimum=3)  # 2 ids are reserved (padding, CLS)
        for name in ("embed_dim", "latent_dim"):
            if getattr(self, name) % self.num_heads:
                raise PriorZeroInputError(
                    f"{key}num_heads={self.num_heads} must divide {key}{name}={getattr(self, name)}: "
                    "change one of them"
                )
        for name in ("value_loss_weight", "reward_loss_weight", "policy_loss_weight", "consistency_loss_weight"):
            require_number(key + name, getattr(self, name), at_least=0)
        require_number(key + "dropout", self.dropout, at_least=0, below=1)
        path = self.pretrained_encoder_path
        if path is not None and not (Path(path).expanduser() / "config.json").is_file():
            raise PriorZeroInputError(
                f"{key}pretrained_encoder_path={path!r} is not a local Hugging Face model directory (no config.json "
                "in it): give the folder written by save_pretrained, or null for the hashed encoders"
            )
