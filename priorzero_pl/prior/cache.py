"""A bounded least-recently-used map from prior requests to their log-probs."""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable

import torch

from priorzero_pl.errors import PriorZeroInputError


class LRUCache:
    """Keeps the ``capacity`` most recently used entries.

    Text games revisit states constantly (the same room, the same inventory), and MCTS asks for
    the prior of the same root again after every environment step replay; bounding the map keeps
    a long run's memory flat. ``capacity == 0`` disables caching.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise PriorZeroInputError(f"cache_size must be >= 0, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, torch.Tensor] = OrderedDict()

    def get(self, key: Hashable) -> torch.Tensor | None:
        """The stored tensor (marked most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        """Store ``value``, evicting the least recently used entry when full."""
        if self.capacity == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (the LLM's weights changed, so every stored prior is stale)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
