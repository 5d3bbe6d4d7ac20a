"""Log-probabilities of candidate actions under a Hugging Face causal LM, sharing the prompt.

The prompt is the long part (history + observation + candidate list, hundreds of tokens) and the
candidates are short (a few tokens each), so each prompt runs through the model once with its KV
cache kept, the cache is repeated over the ``A`` candidates, and all candidates run in one batched
pass on top of it. The same function serves inference (the ``hf`` prior, under ``no_grad``) and
training (distillation, RFT, PPO): with grad enabled the scores are differentiable in the LM's
weights through both passes.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.tokenization import CandidateTokens, encode_candidates


def normalise_scores(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(scores / temperature)``: ``[A]`` raw candidate scores to log-probs over exactly
    these candidates (logsumexp 0). A temperature above 1 flattens the prior, below 1 sharpens it."""
    if temperature <= 0:
        raise PriorZeroInputError(f"prior temperature must be > 0, got {temperature}")
    return torch.log_softmax(scores / temperature, dim=-1)


def _cache_argument(model: PreTrainedModel) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache`` (old name deprecated); older
    releases only know ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logits`` ``[..., V]``, ``targets`` ``[...]`` long -> ``[...]`` log-prob of each target,
    without materialising a second ``[..., V]`` tensor of log-softmax values."""
    logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _score_prompt(
    model: PreTrainedModel, tokens: CandidateTokens, cache_arg: str, length_normalise: bool
) -> torch.Tensor:
    """Raw ``[A]`` scores of one prompt's candidates: one prefix pass, one batched candidate pass."""
    device = model.get_input_embeddings().weight.device
    continuations = tokens.continuations
    num_candidates = len(continuations)
    prefix_len = len(tokens.prefix)
    lengths = torch.tensor([len(c) for c in continuations], device=device)

    prefix_out = model(input_ids=torch.tensor([tokens.prefix], device=device), use_cache=True)
    # The prefix's last position predicts every candidate's first token.
    first_targets = torch.tensor([c[0] for c in continuations], device=device)
    first = _token_logprobs(prefix_out.logits[0, -1].expand(num_candidates, -1), first_targets)

    rest = int(lengths.max().item()) - 1
    if rest == 0:
        total = first
    else:
        # Token t of a continuation is fed to predict token t + 1; the final token (eos) is only a
        # target. Right padding is safe under causal attention (a real token never sees a pad to its
        # right) and the mask zeroes the padded targets; id 0 is a valid filler for any vocabulary.
        inputs = torch.zeros(num_candidates, rest, dtype=torch.long, device=device)
        targets = torch.zeros(num_candidates, rest, dtype=torch.long, device=device)
        for row, ids in enumerate(continuations):
            inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1], device=device)
            targets[row, : len(ids) - 1] = torch.tensor(ids[1:], device=device)
        valid = torch.arange(rest, device=device).unsqueeze(0) < (lengths - 1).unsqueeze(1)
        cache = prefix_out[cache_arg] if cache_arg in prefix_out else prefix_out.past_key_values
        cache.batch_repeat_interleave(num_candidates)
        attention_mask = torch.cat(
            [torch.ones(num_candidates, prefix_len, dtype=torch.long, device=device), valid.long()], dim=1
        )
        positions = torch.arange(prefix_len, prefix_len + rest, device=device).expand(num_candidates, -1)
        cand_out = model(
            input_ids=inputs,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            **{cache_arg: cache},
        )
        total = first + (_token_logprobs(cand_out.logits, targets) * valid).sum(dim=1)
    return total / lengths.to(total.dtype) if length_normalise else total


def candidate_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    length_normalise: bool = False,
) -> list[torch.Tensor]:
    """Raw score of each candidate after its prompt: ``[A_i]`` per prompt, on the model's device.

    The score is the sum of the log-probs of the candidate's tokens and the closing eos (the mean
    when ``length_normalise``, which stops long actions being penalised for their length). It is
    not normalised over candidates: pass it to :func:`normalise_scores` for the prior, or use it
    raw in a loss. Differentiable when grad is enabled.
    """
    if len(prompts) != len(candidates):
        raise PriorZeroInputError(f"got {len(prompts)} prompts but {len(candidates)} candidate lists")
    cache_arg = _cache_argument(model)
    return [
        _score_prompt(model, encode_candidates(tokenizer, prompt, cands), cache_arg, length_normalise)
        for prompt, cands in zip(prompts, candidates)
    ]
