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

Under gradient checkpointing in training mode transformers returns no KV cache (a checkpointed
layer re-runs in backward and would write it twice), so there is no prompt cache to build on. The
prompt and its candidates then go through the model in one pass, in the same two layouts: packed,
one ``[1, P + N]`` sequence with the prompt causal and each candidate seeing the prompt and its own
earlier tokens (the prompt still computed once); batched, ``[A, P + L]`` rows of prompt + candidate
(the prompt computed ``A`` times, the price of an attention that takes no custom mask).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.tokenization import CandidateTokens, encode_candidates

_ADDITIVE_MASK_ATTENTION = ("eager", "sdpa")
"""Attention implementations that apply a caller's 4-D float mask as given."""


def normalise_scores(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(scores / temperature)``: ``[A]`` raw candidate scores to log-probs over exactly
    these candidates (logsumexp 0). A temperature above 1 flattens the prior, below 1 sharpens it."""
    if temperature <= 0:
        raise PriorZeroInputError(f"prior temperature must be > 0, got {temperature}")
    return torch.log_softmax(scores / temperature, dim=-1)


def _forward_parameters(model: PreTrainedModel) -> frozenset[str]:
    """Names ``model.forward`` takes. An adapter wrapper (PEFT) names a few arguments and hands its
    ``**kwargs`` to the model it wraps, so that model's names count too."""
    parameters = inspect.signature(model.forward).parameters
    names = frozenset(name for name, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    get_base_model = getattr(model, "get_base_model", None)
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if takes_kwargs and callable(get_base_model) and get_base_model() is not model:
        return names | _forward_parameters(get_base_model())
    return names


@dataclass(frozen=True)
class _ForwardArguments:
    """How to call this model's forward.

    Attributes:
        cache: the KV-cache argument's name: transformers 5.x renamed ``past_key_values`` to
            ``cache`` (old name deprecated); older releases only know ``past_key_values``. Outputs
            use the same name as the argument.
        keeps_last_logits: forward takes ``logits_to_keep``, so a pass can skip the LM head (and
            the ``[P, V]`` logits) at prompt positions whose predictions are never scored.
    """

    cache: str
    keeps_last_logits: bool

    @classmethod
    def of(cls, model: PreTrainedModel) -> _ForwardArguments:
        names = _forward_parameters(model)
        return cls(cache="cache" if "cache" in names else "past_key_values", keeps_last_logits="logits_to_keep" in names)

    def last_logits(self, count: int) -> dict[str, int]:
        """Keyword arguments asking for the logits of the last ``count`` positions only (the
        logits returned end with those positions either way)."""
        return {"logits_to_keep": count} if self.keeps_last_logits else {}


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logits`` ``[..., V]``, ``targets`` ``[...]`` long -> ``[...]`` log-prob of each target,
    without materialising a second ``[..., V]`` tensor of log-softmax values."""
    logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@dataclass
class _PackedCandidates:
    """All candidates' fed tokens laid end to end: ``N`` tokens over ``A`` candidates.

    Attributes:
        count: ``A``.
        inputs: ``[N]`` long, each candidate's tokens but its last (token t predicts token t + 1; the
            closing eos is only a target).
        targets: ``[N]`` long, the token each input position predicts.
        owner: ``[N]`` long, the candidate a token belongs to.
        offset: ``[N]`` long, the token's position within its candidate.
        sees: ``[N, N]`` bool, token i may attend to token j (same candidate, j not after i).
    """

    count: int
    inputs: torch.Tensor
    targets: torch.Tensor
    owner: torch.Tensor
    offset: torch.Tensor
    sees: torch.Tensor

    @classmethod
    def build(cls, continuations: list[list[int]], device: torch.device) -> _PackedCandidates:
        fed = [ids[:-1] for ids in continuations]
        lengths = torch.tensor([len(ids) for ids in fed], device=device)
        owner = torch.repeat_interleave(torch.arange(len(fed), device=device), lengths)
        offset = torch.cat([torch.arange(n, device=device) for n in lengths.tolist()])
        return cls(
            count=len(fed),
            inputs=torch.tensor([token for ids in fed for token in ids], dtype=torch.long, device=device),
            targets=torch.tensor([token for ids in continuations for token in ids[1:]], dtype=torch.long, device=device),
            owner=owner,
            offset=offset,
            sees=(owner[:, None] == owner[None, :]) & (offset[None, :] <= offset[:, None]),
        )

    def candidate_mask(self, prefix_len: int, dtype: torch.dtype) -> torch.Tensor:
        """``[N, P + N]`` additive mask of the candidate rows: the whole prompt, then ``sees``."""
        mask = torch.zeros(len(self.inputs), prefix_len + len(self.inputs), dtype=dtype, device=self.inputs.device)
        mask[:, prefix_len:].masked_fill_(~self.sees, torch.finfo(dtype).min)
        return mask

    def sum_per_candidate(self, per_token: torch.Tensor) -> torch.Tensor:
        """``[N]`` per-token values -> ``[A]`` sums (0 for a candidate with no fed token)."""
        return torch.zeros(self.count, dtype=per_token.dtype, device=per_token.device).index_add(0, self.owner, per_token)


def _padded_candidates(continuations: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(inputs, targets, valid)``, each ``[A, W]`` (``W`` the longest fed length): the candidates
    as a right-padded batch. Right padding is safe under causal attention (a real token never sees
    a pad to its right); ``valid`` zeroes the padded targets, and id 0 is a filler any vocabulary has."""
    width = max(len(ids) for ids in continuations) - 1
    inputs = torch.zeros(len(continuations), width, dtype=torch.long, device=device)
    targets = torch.zeros(len(continuations), width, dtype=torch.long, device=device)
    for row, ids in enumerate(continuations):
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1], device=device)
        targets[row, : len(ids) - 1] = torch.tensor(ids[1:], device=device)
    fed = torch.tensor([len(ids) - 1 for ids in continuations], device=device)
    valid = torch.arange(width, device=device)[None, :] < fed[:, None]
    return inputs, targets, valid


def _first_token_logprobs(last_prompt_logits: torch.Tensor, continuations: list[list[int]]) -> torch.Tensor:
    """``[A]`` log-prob of each candidate's first token: the prompt's last position predicts them all."""
    first = torch.tensor([ids[0] for ids in continuations], device=last_prompt_logits.device)
    return _token_logprobs(last_prompt_logits.expand(len(continuations), -1), first)


def _packed_pass(
    model: PreTrainedModel, cache: object, args: _ForwardArguments, prefix_len: int, continuations: list[list[int]]
) -> torch.Tensor:
    """``[A]`` summed log-probs of each continuation's tokens after its first, all candidates in one
    ``[1, N]`` sequence (``N`` = total fed tokens) over the single-copy prompt cache."""
    packed = _PackedCandidates.build(continuations, model.get_input_embeddings().weight.device)
    mask = packed.candidate_mask(prefix_len, model.get_input_embeddings().weight.dtype)
    out = model(
        input_ids=packed.inputs[None],
        attention_mask=mask[None, None],
        position_ids=(prefix_len + packed.offset)[None],
        use_cache=True,
        **{args.cache: cache},
    )
    return packed.sum_per_candidate(_token_logprobs(out.logits[0], packed.targets))


def _batched_pass(
    model: PreTrainedModel, cache: object, args: _ForwardArguments, prefix_len: int, continuations: list[list[int]]
) -> torch.Tensor:
    """Same result as :func:`_packed_pass`, as an ``[A, L]`` batch over the cache repeated ``A`` times."""
    device = model.get_input_embeddings().weight.device
    num_candidates = len(continuations)
    inputs, targets, valid = _padded_candidates(continuations, device)
    cache.batch_repeat_interleave(num_candidates)  # type: ignore[attr-defined]
    attention_mask = torch.cat(
        [torch.ones(num_candidates, prefix_len, dtype=torch.long, device=device), valid.long()], dim=1
    )
    out = model(
        input_ids=inputs,
        attention_mask=attention_mask,
        position_ids=torch.arange(prefix_len, prefix_len + inputs.shape[1], device=device).expand(num_candidates, -1),
        use_cache=True,
        **{args.cache: cache},
    )
    return (_token_logprobs(out.logits, targets) * valid).sum(dim=1)


def _uncached_packed_pass(
    model: PreTrainedModel, args: _ForwardArguments, prefix: list[int], continuations: list[list[int]]
) -> torch.Tensor:
    """``[A]`` summed log-probs of each continuation's tokens from one ``[1, P + N]`` sequence: the
    prompt (causal), then every candidate's tokens (each seeing the prompt and its own past)."""
    device = model.get_input_embeddings().weight.device
    dtype = model.get_input_embeddings().weight.dtype
    packed = _PackedCandidates.build(continuations, device)
    prefix_len, total = len(prefix), len(prefix) + len(packed.inputs)
    prompt_rows = torch.full((prefix_len, total), torch.finfo(dtype).min, dtype=dtype, device=device).triu(1)
    mask = torch.cat([prompt_rows, packed.candidate_mask(prefix_len, dtype)])
    out = model(
        input_ids=torch.cat([torch.tensor(prefix, device=device), packed.inputs])[None],
        attention_mask=mask[None, None],
        position_ids=torch.cat([torch.arange(prefix_len, device=device), prefix_len + packed.offset])[None],
        use_cache=False,
        **args.last_logits(len(packed.inputs) + 1),
    )
    scored = out.logits[0, -(len(packed.inputs) + 1) :]
    rest = packed.sum_per_candidate(_token_logprobs(scored[1:], packed.targets))
    return _first_token_logprobs(scored[0], continuations) + rest


def _uncached_batched_pass(
    model: PreTrainedModel, args: _ForwardArguments, prefix: list[int], continuations: list[list[int]]
) -> torch.Tensor:
    """Same result as :func:`_uncached_packed_pass`, as ``[A, P + L]`` rows of prompt + candidate."""
    device = model.get_input_embeddings().weight.device
    num_candidates, prefix_len = len(continuations), len(prefix)
    inputs, targets, valid = _padded_candidates(continuations, device)
    prompt = torch.tensor(prefix, device=device).expand(num_candidates, -1)
    attention_mask = torch.cat([torch.ones_like(prompt), valid.long()], dim=1)
    out = model(
        input_ids=torch.cat([prompt, inputs], dim=1),
        attention_mask=attention_mask,
        use_cache=False,
        **args.last_logits(inputs.shape[1] + 1),
    )
    scored = out.logits[:, -(inputs.shape[1] + 1) :]
    rest = (_token_logprobs(scored[:, 1:], targets) * valid).sum(dim=1)
    return _first_token_logprobs(scored[0, 0], continuations) + rest


def _keeps_cache(model: PreTrainedModel) -> bool:
    """False when the model will return no KV cache: gradient checkpointing in training mode
    (transformers drops the cache of checkpointed layers; some releases do so even without grad)."""
    return not (model.training and any(getattr(module, "gradient_checkpointing", False) for module in model.modules()))


def _score_prompt(
    model: PreTrainedModel, tokens: CandidateTokens, args: _ForwardArguments, length_normalise: bool, packed: bool
) -> torch.Tensor:
    """Raw ``[A]`` scores of one prompt's candidates: a prompt pass then a candidate pass over its
    cache, or one pass for both when the model keeps no cache."""
    device = model.get_input_embeddings().weight.device
    continuations = tokens.continuations
    lengths = torch.tensor([len(ids) for ids in continuations], device=device)
    if not _keeps_cache(model):
        single_pass = _uncached_packed_pass if packed else _uncached_batched_pass
        total = single_pass(model, args, tokens.prefix, continuations)
    else:
        prefix_out = model(input_ids=torch.tensor([tokens.prefix], device=device), use_cache=True, **args.last_logits(1))
        total = _first_token_logprobs(prefix_out.logits[0, -1], continuations)
        if int(lengths.max()) > 1:
            candidate_pass = _packed_pass if packed else _batched_pass
            total = total + candidate_pass(model, prefix_out[args.cache], args, len(tokens.prefix), continuations)
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
    args = _ForwardArguments.of(model)
    return [
        _score_prompt(model, encode_candidates(tokenizer, prompt, cands), args, length_normalise, packed)
        for prompt, cands in zip(prompts, candidates)
    ]
