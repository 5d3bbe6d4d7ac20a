"""Typed settings of the LLM policy and the optimizer (the world model, search and prior have their
own config dataclasses next to their code)."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.errors import PriorZeroInputError


@dataclass
class LLMConfig:
    """The LLM policy: which model, and whether and how it trains."""

    path: str = "embedded"
    """Local Hugging Face model directory, or ``embedded`` (a tiny LM built locally)."""
    train: bool = True
    """Fine-tune the LLM. False freezes it: only the world model learns, the prior stays fixed."""
    distill_weight: float = 1.0
    """Weight of KL(MCTS visit policy || LLM policy) added to every training step (0 turns it off)."""
    distill_max_roots: int = 8
    """Roots of each batch used for distillation: bounds the LLM's share of a step's compute."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large LLMs."""

    def __post_init__(self) -> None:
        if not self.path:
            raise PriorZeroInputError("model.llm.path is empty: give a local Hugging Face model directory or 'embedded'")
        if self.distill_weight < 0:
            raise PriorZeroInputError(f"model.llm.distill_weight must be >= 0, got {self.distill_weight}")
        if self.distill_max_roots < 1:
            raise PriorZeroInputError(f"model.llm.distill_max_roots must be >= 1, got {self.distill_max_roots}")


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
        if self.world_model_lr <= 0 or self.llm_lr <= 0:
            raise PriorZeroInputError("model.optim learning rates must be > 0")
        if self.weight_decay < 0 or self.warmup_steps < 0:
            raise PriorZeroInputError("model.optim.weight_decay and warmup_steps must be >= 0")
