"""Log-probabilities of candidate actions under a Hugging Face causal LM, sharing the prompt.

The prompt is the long part (history + observation + candidate list, hundreds of tokens) and the
candidates are short (a few tokens each), so each prompt runs through the model once with its KV
cache kept, and then all of its candidates run in one more pass on top of that cache. The same
function serves inference (the ``hf`` prior, under ``no_grad``) and training (distillation, RFT,
PPO): with grad enabled the scores are differentiable in the LM's weights through both passes.

The candidate pass has two layouts:

* packed (default for the ``eager`` and ``sdpa`` attention implementations): the candidates'
  tokens are laid end to end as one sequence after the prompt, with an additive 4-D mask that lets
  each token see the prompt and the earlier tokens of its own candidate only, and positions that
  restart after the prompt for every candidate. The prompt's KV stays a single copy.
* batched (for implementations that take no custom 4-D mask, e.g. flash-attention): the cache is
  repeated ``A`` times and the candidates are a right-padded ``[A, L]`` batch. Every layer then
  copies ``A`` times the prompt's keys and values (grouped-query attention copies them again),
  which on CPU costs more than the prompt pass itself; hence packing where the backend allows it.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.tokenization import CandidateTokens, encode_candidates

_ADDITIVE_MASK_ATTENTION = ("eager", "sdpa")
"""Attention implementations that apply a caller's 4-D float mask as given."""


def normalise_scores(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(scores / temperature)``: ``[A]`` raw candidate scores to log-probs over exactly
    these candidates (logsumexp 0). A temperature above 1 flattens the prior, below 1 sharpens it."""
    if temperature <= 0:
        raise PriorZeroInputError(f"prior temperature must be > 0, got {temperature}")
    return torch.log_softmax(scores / temperature, dim=-1)


def _cache_argument(model: PreTrainedModel) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache`` (old name deprecated); older
    releases only know ``past_key_values``. Outputs use the same name as the argument."""
    parameters = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    # Adapter wrappers (PEFT) take **kwargs and hand them to the model they wrap.
    get_base_model = getattr(model, "get_base_model", None)
    return _cache_argument(get_base_model()) if callable(get_base_model) else "past_key_values"


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logits`` ``[..., V]``, ``targets`` ``[...]`` long -> ``[...]`` log-prob of each target,
    without materialising a second ``[..., V]`` tensor of log-softmax values."""
    logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _packed_pass(
    model: PreTrainedModel, cache: object, cache_arg: str, prefix_len: int, continuations: list[list[int]]
) -> torch.Tensor:
    """``[A]`` summed log-probs of each continuation's tokens after its first, all candidates in one
    ``[1, N]`` sequence (``N`` = total fed tokens) over the single-copy prompt cache."""
    device = model.get_input_embeddings().weight.device
    fed = [ids[:-1] for ids in continuations]  # token t predicts token t + 1; eos is only a target
    lengths = torch.tensor([len(ids) for ids in fed], device=device)
    inputs = torch.tensor([token for ids in fed for token in ids], dtype=torch.long, device=device)
    targets = torch.tensor([token for ids in continuations for token in ids[1:]], dtype=torch.long, device=device)
    owner = torch.repeat_interleave(torch.arange(len(fed), device=device), lengths)  # [N] candidate of each token
    offset = torch.cat([torch.arange(n, device=device) for n in lengths.tolist()])  # [N] index within it
    sees = (owner[:, None] == owner[None, :]) & (offset[None, :] <= offset[:, None])  # [N, N]
    dtype = model.get_input_embeddings().weight.dtype
    mask = torch.zeros(len(inputs), prefix_len + len(inputs), dtype=dtype, device=device)
    mask[:, prefix_len:].masked_fill_(~sees, torch.finfo(dtype).min)
    out = model(
        input_ids=inputs[None],
        attention_mask=mask[None, None],
        position_ids=(prefix_len + offset)[None],
        use_cache=True,
        **{cache_arg: cache},
    )
    per_token = _token_logprobs(out.logits[0], targets)
    return torch.zeros(len(fed), dtype=per_token.dtype, device=device).index_add(0, owner, per_token)


def _batched_pass(
    model: PreTrainedModel, cache: object, cache_arg: str, prefix_len: int, continuations: list[list[int]]
) -> torch.Tensor:
    """Same result as :func:`_packed_pass`, as an ``[A, L]`` batch over the cache repeated ``A`` times."""
    device = model.get_input_embeddings().weight.device
    num_candidates = len(continuations)
    width = max(len(ids) for ids in continuations) - 1
    # Right padding is safe under causal attention (a real token never sees a pad to its right);
    # the mask zeroes the padded targets, and id 0 is a valid filler for any vocabulary.
    inputs = torch.zeros(num_candidates, width, dtype=torch.long, device=device)
    targets = torch.zeros(num_candidates, width, dtype=torch.long, device=device)
    for row, ids in enumerate(continuations):
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1], device=device)
        targets[row, : len(ids) - 1] = torch.tensor(ids[1:], device=device)
    fed = torch.tensor([len(ids) - 1 for ids in continuations], device=device)
    valid = torch.arange(width, device=device)[None, :] < fed[:, None]
    cache.batch_repeat_interleave(num_candidates)  # type: ignore[attr-defined]
    attention_mask = torch.cat(
        [torch.ones(num_candidates, prefix_len, dtype=torch.long, device=device), valid.long()], dim=1
    )
    out = model(
        input_ids=inputs,
        attention_mask=attention_mask,
        position_ids=torch.arange(prefix_len, prefix_len + width, device=device).expand(num_candidates, -1),
        use_cache=True,
        **{cache_arg: cache},
    )
    return (_token_logprobs(out.logits, targets) * valid).sum(dim=1)


def _score_prompt(
    model: PreTrainedModel, tokens: CandidateTokens, cache_arg: str, length_normalise: bool, packed: bool
) -> torch.Tensor:
    """Raw ``[A]`` scores of one prompt's candidates: one prompt pass, one candidate pass."""
    device = model.get_input_embeddings().weight.device
    continuations = tokens.continuations
    lengths = torch.tensor([len(ids) for ids in continuations], device=device)
    prefix_out = model(input_ids=torch.tensor([tokens.prefix], device=device), use_cache=True)
    # The prompt's last position predicts every candidate's first token.
    first_targets = torch.tensor([ids[0] for ids in continuations], device=device)
    total = _token_logprobs(prefix_out.logits[0, -1].expand(len(continuations), -1), first_targets)
    if int(lengths.max()) > 1:
        candidate_pass = _packed_pass if packed else _batched_pass
        total = total + candidate_pass(model, prefix_out[cache_arg], cache_arg, len(tokens.prefix), continuations)
    return total / lengths.to(total.dtype) if length_normalise else total


def candidate_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    length_normalise: bool = False,
    packed: bool | None = None,
) -> list[torch.Tensor]:
    """Raw score of each candidate after its prompt: ``[A_i]`` per prompt, on the model's device.

    The score is the sum of the log-probs of the candidate's tokens and the closing eos (the mean
    when ``length_normalise``, which stops long actions being penalised for their length). It is
    not normalised over candidates: pass it to :func:`normalise_scores` for the prior, or use it
    raw in a loss. Differentiable when grad is enabled. ``packed`` picks the candidate-pass layout
    (see the module docstring); None chooses from the model's attention implementation.
    """
    if len(prompts) != len(candidates):
        raise PriorZeroInputError(f"got {len(prompts)} prompts but {len(candidates)} candidate lists")
    if packed is None:
        packed = getattr(model.config, "_attn_implementation", None) in _ADDITIVE_MASK_ATTENTION
    cache_arg = _cache_argument(model)
    return [
        _score_prompt(model, encode_candidates(tokenizer, prompt, cands), cache_arg, length_normalise, packed)
        for prompt, cands in zip(prompts, candidates)
    ]
