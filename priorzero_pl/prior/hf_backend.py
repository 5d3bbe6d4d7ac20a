"""The ``hf`` prior: candidate scores from the very LM module that is being fine-tuned."""

from __future__ import annotations

from typing import Sequence

import torch

from priorzero_pl.eval_mode import evaluating
from priorzero_pl.llm.policy import LLMPolicy


class HFPrior:
    """Scores candidates with the module's :class:`LLMPolicy` through the shared-prompt KV pass.

    It holds the *same* LM module the trainer optimises (no copy), so it always sees the latest
    weights, needs no sync, and costs no extra memory. Scoring runs under ``no_grad`` in eval
    mode (dropout off, so a prior is deterministic) and restores every submodule's mode after.
    """

    name = "hf"

    def __init__(self, policy: LLMPolicy) -> None:
        self.policy = policy

    def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """``[A_i]`` float32 CPU log-probs per prompt, normalised over its candidates."""
        with evaluating(self.policy.model):
            log_probs = self.policy.log_probs(prompts, candidates)
        return [scores.float().cpu() for scores in log_probs]

    def close(self) -> None:
        """Nothing to release: the module belongs to the trainer."""
