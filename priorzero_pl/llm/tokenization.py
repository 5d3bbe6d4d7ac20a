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


def encode_candidates(
    tokenizer: PreTrainedTokenizerBase, prompt: str, candidates: Sequence[str]
) -> CandidateTokens:
    """Split ``prompt + candidate + eos`` for all candidates into one shared prefix and per-candidate
    continuations (see the module docstring for why the boundary is found on whole tokenisations).

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
    texts = [prompt, *(prompt + candidate for candidate in candidates)]
    encoded: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None:
        encoded = [ids if ids[:1] == [bos] else [bos, *ids] for ids in encoded]
    prompt_ids, *full_ids = encoded
    shared = min(_common_prefix_len(prompt_ids, ids) for ids in full_ids)
    if shared == 0:
        raise PriorZeroInputError(
            "the prompt is empty and the tokenizer has no bos token, so there is nothing to condition the "
            "first action token on: build prompts with PromptBuilder"
        )
    return CandidateTokens(prefix=prompt_ids[:shared], continuations=[[*ids[shared:], eos] for ids in full_ids])
