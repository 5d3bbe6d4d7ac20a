"""The contract between callbacks (which decide *what* the LLM optimises next) and the module
(which computes the loss inside its single optimizer step: DeepSpeed takes one optimizer, and
callbacks never call ``backward``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Iterator, Protocol, Sequence, TypeVar

import numpy as np
import torch

Batch = TypeVar("Batch", bound="CandidateBatch")


class CandidateLogProbs(Protocol):
    """The LLM policy as a function: prompts ``[N]`` and candidate lists ``[N][A_i]`` to
    differentiable log-probabilities ``[A_i]`` normalised over each candidate list."""

    def __call__(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...


@dataclass
class CandidateBatch:
    """Prompts with their candidate actions and one chosen candidate per row.

    Every field is per row: a list of ``N`` entries or a tensor whose first dimension is ``N``
    (subclasses add fields on the same terms), which is what :meth:`take` and the checkpointed
    queue rely on.

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

    def take(self: Batch, rows: torch.Tensor) -> Batch:
        """The rows ``rows`` (``[M]`` long) of this batch, in that order."""
        index = rows.tolist()
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[rows] if isinstance(value, torch.Tensor) else [value[i] for i in index]
        return type(self)(**values)

    def minibatches(self: Batch, size: int, count: int, generator: np.random.Generator) -> Iterator[Batch]:
        """``count`` minibatches of ``size`` rows (the last may be smaller) in one shuffled order
        drawn from ``generator``: a seeded generator gives a resumed run the same minibatches."""
        order = torch.as_tensor(generator.permutation(len(self)))
        for chunk in order.split(size)[:count]:
            yield self.take(chunk)

    def to_state(self) -> dict[str, Any]:
        """Fields as they are (lists, tensors): loads with ``torch.load(weights_only=True)``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls: type[Batch], state: dict[str, Any]) -> Batch:
        return cls(**state)


class LLMObjective(Protocol):
    """A loss on the LLM policy. ``loss`` returns the scalar to add to the step's loss and the
    metrics to log (keys without prefix; the module logs them under ``llm/``). ``name`` is unique
    per objective; ``batch_type`` rebuilds a queued batch restored from a checkpoint."""

    name: str
    batch_type: ClassVar[type[CandidateBatch]]

    def loss(self, policy: CandidateLogProbs, batch: CandidateBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...
