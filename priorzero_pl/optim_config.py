"""Typed settings of the one optimizer (the ``model.optim`` section)."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.config_checks import require_int, require_number


@dataclass
class OptimConfig:
    """One AdamW with a parameter group per model (DeepSpeed in Lightning takes one optimizer)."""

    world_model_lr: float = 1e-3
    """Learning rate of the world model group."""
    llm_lr: float = 1e-5
    """Learning rate of the LLM group."""
    weight_decay: float = 0.01
    """AdamW weight decay, both groups."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up, in optimizer steps."""

    def __post_init__(self) -> None:
        require_number("model.optim.world_model_lr", self.world_model_lr, above=0)
        require_number("model.optim.llm_lr", self.llm_lr, above=0)
        require_number("model.optim.weight_decay", self.weight_decay, at_least=0)
        require_int("model.optim.warmup_steps", self.warmup_steps, minimum=0)
