"""Types shared by the search and the models it searches over.

Shapes: ``B`` roots searched together, ``A`` the largest candidate set in the batch (smaller sets
are padded and masked), ``D`` the latent size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch

from priorzero_pl.errors import PriorZeroInputError


@dataclass
class ModelOutput:
    """One batched model call.

    Attributes:
        latent: ``[B, D]`` latent state of each node (kept on the model's device).
        value: ``[B]`` scalar value estimate (already decoded from any categorical support).
        reward: ``[B]`` reward of the transition into this state (zeros for initial inference).
        policy_logits: ``[B, A]`` logits over the root's candidates; padded entries are ignored.
    """

    latent: torch.Tensor
    value: torch.Tensor
    reward: torch.Tensor
    policy_logits: torch.Tensor


class SearchModel(Protocol):
    """What the search needs from a world model: two batched calls.

    ``initial_inference`` sees the root observations and candidate texts and returns an opaque
    ``context`` (e.g. candidate embeddings ``[B, A, E]``) that every ``recurrent_inference`` of the
    same search receives: non-root nodes reuse the root's candidates.
    """

    def initial_inference(
        self, observations: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> tuple[ModelOutput, object]: ...

    def recurrent_inference(self, latent: torch.Tensor, actions: torch.Tensor, context: object) -> ModelOutput:
        """``latent`` ``[B, D]``, ``actions`` ``[B]`` long candidate indices -> next node's output.

        Both are read-only: on the CPU ``actions`` is a view of the search tree's own array."""
        ...


@dataclass
class SearchOutput:
    """Result of one batched search.

    Attributes:
        visit_counts: ``[B, A]`` root visit counts (0 on padded candidates).
        visit_policy: ``[B, A]`` the raw visit fractions ``N(a) / sum N`` (the policy target).
        action_policy: ``[B, A]`` the distribution ``action`` was drawn from: ``N^(1/T)``
            normalised when sampled, one-hot on the action when greedy.
        root_value: ``[B]`` mean value of the root after search.
        q_values: ``[B, A]`` Q of each root candidate (0 where unvisited or padded).
        action: ``[B]`` selected candidate index (drawn from ``action_policy``).
        mask: ``[B, A]`` True on real candidates.
        root_prior: ``[B, A]`` the policy the root used, after prior injection and noise.
        world_model_policy: ``[B, A]`` the world model's own root policy (softmax of its logits).
        max_depth: ``[B]`` deepest node reached.
        prior_tv: ``[B]`` total-variation distance between ``visit_policy`` and
            ``world_model_policy``: how far the prior (and search) moved the policy.
    """

    visit_counts: np.ndarray
    visit_policy: np.ndarray
    action_policy: np.ndarray
    root_value: np.ndarray
    q_values: np.ndarray
    action: np.ndarray
    mask: np.ndarray
    root_prior: np.ndarray
    world_model_policy: np.ndarray
    max_depth: np.ndarray
    prior_tv: np.ndarray


class OutputBuffers:
    """``reward`` ``[B]``, ``value`` ``[B]`` and ``policy_logits`` ``[B, A]`` of the latest model
    call, as float64 numpy arrays on the CPU that the kernels read. Allocated once per search (once more for its roots):
    copying into them converts device and dtype in one step per field, about three times
    cheaper than a fresh tensor per field and simulation."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shapes = ((shape[0],), (shape[0],), shape)
        self.reward, self.value, self.logits = np.zeros(shape[0]), np.zeros(shape[0]), np.zeros(shape)
        self._views = tuple(torch.from_numpy(array) for array in (self.reward, self.value, self.logits))

    def read(self, output: ModelOutput) -> None:
        """Copy ``output`` in, after checking the model kept the batch's shape (``copy_`` would
        broadcast a wrong one silently)."""
        fields = (output.reward, output.value, output.policy_logits)
        shapes = tuple(tuple(field.shape) for field in fields)
        if shapes != self.shapes:
            raise PriorZeroInputError(
                f"model returned reward/value/policy_logits of shapes {shapes}; expected {self.shapes}"
            )
        for view, field in zip(self._views, fields):
            view.copy_(field)
