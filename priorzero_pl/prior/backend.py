"""The protocol every prior backend implements."""

from __future__ import annotations

from typing import Protocol, Sequence

import torch


class PriorBackend(Protocol):
    """Scores candidate actions for a batch of prompts.

    ``score(prompts, candidates)[i]`` is a ``[len(candidates[i])]`` float tensor (CPU) of
    log-probabilities normalised over exactly ``candidates[i]`` (logsumexp == 0).
    """

    name: str

    def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...

    def close(self) -> None: ...
