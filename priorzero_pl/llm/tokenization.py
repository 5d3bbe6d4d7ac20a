"""Where the prompt ends and a candidate begins, in tokens.

A candidate's score is the log-probability of the tokens that spell it after the prompt. Tokenising
the prompt and the candidate separately and concatenating the ids would score a sequence the model
never sees in practice when the tokenizer merges across the boundary (byte-level BPE turns a
prompt ending in ``"> "`` plus ``"go north"`` into ``">", " go", " north"``, not ``">", " ",
"go", " north"``). So each ``prompt + candidate`` is tokenised as a whole, and the shared prefix is
the longest run of token ids common to the prompt and *every* candidate's tokenisation. Whatever
follows it is scored: normally exactly the candidate's tokens; after a merge also the prompt's tail
token(s). The tail is the same *text* for every candidate, so (up to how it is tokenised) its
probability is a common factor that the normalisation over candidates cancels, and every candidate
is scored on the sequence the tokenizer really produces.

Tokenising ``prompt + candidate`` whole for ~40 candidates of a ~1,000-token prompt cost more on
CPU than the model passes that score them. The prompt is therefore tokenised once, and each
candidate only together with the prompt's last few tokens' text (the *tail*): a tokenizer that
pre-splits text (byte-level BPE, Metaspace, whitespace) cannot merge across the start of a
pre-token that lies well before the end of the prompt, so ``head ids + tail-and-candidate ids`` is
the whole-string tokenisation. Each prompt checks that on two cases (the tail alone must
re-tokenise to the prompt's own last ids, and the longest candidate's splice must equal its whole
tokenisation) and the other candidates rely on the pre-tokenizer argument; when a check fails,
and for tokenizers without offsets, every candidate is tokenised whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError


@dataclass
class CandidateTokens:
    """Token ids of one prompt and its candidates, split at the shared prefix.

    Attributes:
        prefix: ``[P]`` ids common to every candidate's sequence (begins with bos when the tokenizer
            has one); computed once per prompt.
        continuations: ``[A][L_a]`` the ids after ``prefix`` for each candidate, ending with eos:
            exactly the tokens whose log-probs make up the candidate's score (``L_a >= 1``).
    """

    prefix: list[int]
    continuations: list[list[int]]


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


_TAIL_TOKENS = 16
"""Prompt tokens re-tokenised with each candidate: enough that the cut lies far from the boundary
where a merge can happen, few enough to be cheap next to a ~1,000-token prompt."""


def _with_bos(ids: list[int], bos: int | None) -> list[int]:
    return ids if bos is None or ids[:1] == [bos] else [bos, *ids]


def _spliced_encodings(
    tokenizer: PreTrainedTokenizerBase, prompt: str, candidates: Sequence[str]
) -> tuple[list[int], list[list[int]]] | None:
    """``(prompt ids, [prompt + candidate ids])`` from one prompt tokenisation and short tails, or
    None when the splice cannot be shown equal to whole-string tokenisation (see module docstring)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    encoded = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    prompt_ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    cut = len(prompt_ids) - _TAIL_TOKENS
    if cut <= 0:
        return None
    tail = prompt[offsets[cut][0] :]
    head = prompt_ids[:cut]
    tails = tokenizer([tail, *(tail + candidate for candidate in candidates)], add_special_tokens=False)["input_ids"]
    if tails[0] != prompt_ids[cut:]:
        return None
    spliced = [head + ids for ids in tails[1:]]
    longest = max(range(len(candidates)), key=lambda i: len(candidates[i]))
    if tokenizer(prompt + candidates[longest], add_special_tokens=False)["input_ids"] != spliced[longest]:
        return None
    return prompt_ids, spliced


def encode_candidates(
    tokenizer: PreTrainedTokenizerBase, prompt: str, candidates: Sequence[str]
) -> CandidateTokens:
    """Split ``prompt + candidate + eos`` for all candidates into one shared prefix and per-candidate
    continuations (see the module docstring for why the boundary is found on whole tokenisations,
    and how they are obtained without tokenising the prompt once per candidate).

    Special tokens are not added by the tokenizer, because chat templates already write bos as
    text and a post-processor would add a second one; bos is prepended here only when the
    tokenizer has one and the text did not start with it.
    """
    if not candidates:
        raise PriorZeroInputError("cannot score an empty candidate list: every state needs at least one action")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise PriorZeroInputError(
            f"tokenizer {type(tokenizer).__name__} has no eos token; candidate scoring ends each action with eos"
        )
    spliced = _spliced_encodings(tokenizer, prompt, candidates)
    if spliced is None:
        texts = [prompt, *(prompt + candidate for candidate in candidates)]
        prompt_ids, *full_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids, full_ids = spliced
    bos = tokenizer.bos_token_id
    prompt_ids = _with_bos(prompt_ids, bos)
    full_ids = [_with_bos(ids, bos) for ids in full_ids]
    shared = min(_common_prefix_len(prompt_ids, ids) for ids in full_ids)
    if shared == 0:
        raise PriorZeroInputError(
            "the prompt is empty and the tokenizer has no bos token, so there is nothing to condition the "
            "first action token on: build prompts with PromptBuilder"
        )
    return CandidateTokens(prefix=prompt_ids[:shared], continuations=[[*ids[shared:], eos] for ids in full_ids])
