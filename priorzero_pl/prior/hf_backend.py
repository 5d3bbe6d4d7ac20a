"""The ``hf`` prior: candidate scores from the very LM module that is being fine-tuned."""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.eval_mode import evaluating
from priorzero_pl.prior.candidate_scoring import candidate_logprobs, normalise_scores


class HFPrior:
    """Scores candidates with a Hugging Face causal LM through the shared-prompt KV pass.

    It holds the *same* module object the trainer optimises (no copy), so it always sees the
    latest weights, needs no sync, and costs no extra memory. Scoring runs under ``no_grad`` in
    eval mode (dropout off, so a prior is deterministic) and restores every submodule's mode after.
    """

    name = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        temperature: float = 1.0,
        length_normalise: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.length_normalise = length_normalise

    def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """``[A_i]`` float32 CPU log-probs per prompt, normalised over its candidates."""
        with evaluating(self.model):
            raw = candidate_logprobs(self.model, self.tokenizer, prompts, candidates, length_normalise=self.length_normalise)
        return [normalise_scores(scores, self.temperature).float().cpu() for scores in raw]

    def close(self) -> None:
        """Nothing to release: the module belongs to the trainer."""
