"""The naive candidate scorer: the yardstick for ``priorzero_pl.llm.candidate_scoring``'s
shared-prefix scoring, checked against it by ``tests/test_prior_scoring.py`` and timed against it
by ``benchmarks/prior.py``."""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.llm.tokenization import encode_candidates


def naive_candidate_logprobs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, candidates: Sequence[str]
) -> torch.Tensor:
    """``[A]`` summed log-probs of each candidate's tokens after ``prompt``: every candidate
    re-reads the whole prompt in its own forward pass (no cache, no padding, no packing), so there
    is nothing in it to get wrong."""
    tokens = encode_candidates(tokenizer, prompt, candidates)
    start = len(tokens.prefix)
    scores = []
    for continuation in tokens.continuations:
        logits = model(input_ids=torch.tensor([tokens.prefix + continuation])).logits[0, start - 1 : -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        scores.append(logprobs.gather(-1, torch.tensor(continuation).unsqueeze(-1)).sum())
    return torch.stack(scores)
