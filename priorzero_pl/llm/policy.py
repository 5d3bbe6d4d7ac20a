"""The LLM as a policy over a state's candidate actions: one scoring rule for acting and training.

The prior the search uses, the distillation target's policy, RFT's and PPO's policy and PPO's
frozen reference are all this one rule (shared-prompt candidate scoring, optional mean over
tokens, normalisation over the candidates at a temperature), so that what the LLM is trained on
is exactly what it is asked at play time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.candidate_scoring import candidate_logprobs, normalise_scores


@dataclass
class LLMPolicy:
    """A causal LM, its tokenizer and the scoring settings that turn it into a policy.

    Attributes:
        model: the LM (the trainable module itself: no copy, so it always has the latest weights).
        tokenizer: its tokenizer.
        length_normalise: score a candidate by the mean of its tokens' log-probs rather than the
            sum, so long actions are not penalised for their length.
        temperature: the candidate scores are divided by it before normalising.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    length_normalise: bool = False
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise PriorZeroInputError(f"LLM policy temperature must be > 0, got {self.temperature}")

    def scores(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        model: torch.nn.Module | None = None,
        length_normalise: bool | None = None,
    ) -> list[torch.Tensor]:
        """Raw candidate scores, ``[A_i]`` per prompt (differentiable when grad is on).

        ``model`` scores with another copy of the LM (PPO's frozen reference) by the same rule;
        ``length_normalise`` overrides the policy's setting (RFT ranks sequences by mean token log-prob).
        """
        return candidate_logprobs(
            model if model is not None else self.model,
            self.tokenizer,
            prompts,
            candidates,
            length_normalise=self.length_normalise if length_normalise is None else length_normalise,
        )

    def log_probs(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]], *, model: torch.nn.Module | None = None
    ) -> list[torch.Tensor]:
        """Log-probs normalised over each candidate list, ``[A_i]`` float32 per prompt, on the model's device.

        Normalised in float32 whatever the model's dtype: a bf16 log-softmax over dozens of
        candidates rounds the small probabilities that the losses and the search still read."""
        return [normalise_scores(raw.float(), self.temperature) for raw in self.scores(prompts, candidates, model=model)]
