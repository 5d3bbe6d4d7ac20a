"""The contract between callbacks (which decide *what* the LLM optimises next) and the module
(which computes the loss inside its single optimizer step: DeepSpeed takes one optimizer, and
callbacks never call ``backward``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch


class CandidateLogProbs(Protocol):
    """The LLM policy as a function: prompts ``[N]`` and candidate lists ``[N][A_i]`` to
    differentiable log-probabilities ``[A_i]`` normalised over each candidate list."""

    def __call__(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...


@dataclass
class CandidateBatch:
    """Prompts with their candidate actions and one chosen candidate per row.

    Attributes:
        prompts: ``[N]`` the prompt the LLM saw at collection.
        candidates: ``[N][A_i]`` candidate action texts.
        action_index: ``[N]`` long, index of the chosen action in ``candidates[i]``.
    """

    prompts: list[str]
    candidates: list[list[str]]
    action_index: torch.Tensor

    def __len__(self) -> int:
        return len(self.prompts)


class LLMObjective(Protocol):
    """A loss on the LLM policy. ``loss`` returns the scalar to add to the step's loss and the
    metrics to log (keys without prefix; the module logs them under ``llm/``)."""

    name: str

    def loss(self, policy: CandidateLogProbs, batch: CandidateBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...
