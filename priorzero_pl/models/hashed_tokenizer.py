"""A tokenizer that needs no vocabulary file: words hashed into a fixed id range.

The world model must run in a fresh process with nothing downloaded or trained, and its ids must
mean the same thing in every collector process and after a checkpoint reload. Hashing lowercased
words and punctuation with CRC32 (not Python's per-process salted ``hash``) gives that. Collisions
are tolerated: a game's vocabulary is a few thousand words, and the encoder sees the context.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import OrderedDict
from typing import Sequence

import torch

from priorzero_pl.errors import PriorZeroInputError

log = logging.getLogger(__name__)

PAD_ID = 0
CLS_ID = 1
"""Prepended to every text: pooling always has one token, also for the empty string."""
NUM_RESERVED_IDS = 2

_TOKEN_PATTERN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


class HashedTokenizer:
    """Lowercased words and single punctuation marks, each hashed into ``[2, vocab_size)``.

    Texts repeat constantly (the same candidate actions at every step and in every search), so
    token ids are memoised per string in an LRU dict of ``cache_size`` entries.
    """

    def __init__(self, vocab_size: int, cache_size: int = 65536) -> None:
        if vocab_size <= NUM_RESERVED_IDS:
            raise PriorZeroInputError(f"vocab_size must exceed {NUM_RESERVED_IDS} reserved ids, got {vocab_size}")
        if cache_size < 1:
            raise PriorZeroInputError(f"cache_size must be >= 1, got {cache_size}")
        self.vocab_size = vocab_size
        self.cache_size = cache_size
        self.num_truncated = 0
        """How many texts were cut to ``max_tokens`` (the first cut is also logged)."""
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def token_ids(self, text: str) -> tuple[int, ...]:
        """All ids of ``text`` (no CLS, no truncation), from the cache when possible."""
        ids = self._cache.get(text)
        if ids is not None:
            self._cache.move_to_end(text)
            return ids
        span = self.vocab_size - NUM_RESERVED_IDS
        ids = tuple(
            NUM_RESERVED_IDS + zlib.crc32(word.encode("utf-8")) % span for word in _TOKEN_PATTERN.findall(text.lower())
        )
        self._cache[text] = ids
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return ids

    def __call__(self, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``texts`` into ``[CLS] + first max_tokens ids``, right-padded.

        Returns:
            ids: ``[N, L]`` long, ``L = 1 + min(max_tokens, longest text)``.
            mask: ``[N, L]`` bool, True on real tokens (CLS included).
        """
        rows = [self.token_ids(text) for text in texts]
        cut = sum(len(row) > max_tokens for row in rows)
        if cut:
            if self.num_truncated == 0:
                log.warning("text longer than %d tokens cut to them (counted in num_truncated)", max_tokens)
            self.num_truncated += cut
        length = 1 + min(max_tokens, max((len(row) for row in rows), default=0))
        # One tensor construction from padded python rows: far cheaper than per-row copies.
        padded = [[CLS_ID, *row[:max_tokens]] + [PAD_ID] * (length - 1 - min(len(row), max_tokens)) for row in rows]
        ids = torch.tensor(padded, dtype=torch.long).reshape(len(rows), length)
        return ids, ids != PAD_ID
