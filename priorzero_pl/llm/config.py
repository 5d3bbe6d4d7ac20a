"""Typed settings of the LLM policy (the ``model.llm`` section)."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.config_checks import require_int, require_number
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
        require_number("model.llm.distill_weight", self.distill_weight, at_least=0)
        require_int("model.llm.distill_max_roots", self.distill_max_roots, minimum=1)
