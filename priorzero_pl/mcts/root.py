"""The roots of a search, prepared apart from the tree search (mctx's ``RootFnOutput``, LightZero's
``prepare``): the world model's first call, the prior injected into its policy, the exploration
noise mixed in. The tree search then only reads a :class:`Root`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts.config import MCTSConfig
from priorzero_pl.mcts.prior_injection import inject_prior, masked_log_softmax, normalised_prior
from priorzero_pl.mcts.types import OutputBuffers, SearchModel

PriorLogProbs = Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor
"""Prior log-probs per root: one ``[A_i]`` per root, or padded ``[B, >=A]``."""


@dataclass
class Root:
    """``B`` prepared roots.

    Attributes:
        mask: ``[B, A]`` True on real candidates.
        latent: ``[B, D]`` the roots' latent states (on the model's device).
        value: ``[B]`` the world model's value of each root.
        reward: ``[B]`` its reward output (the first backup adds it like any node's).
        context: what every recurrent inference of this search receives (see ``SearchModel``).
        world_model_log_policy: ``[B, A]`` the world model's own log-policy (``-inf`` on padding).
        prior_log_policy: ``[B, A]`` the external prior renormalised over the candidates; None when
            the search runs on the world model alone. Nodes down to ``prior_depth`` use it too.
        policy: ``[B, A]`` the probabilities the root explores with: prior injected, noise mixed in.
    """

    mask: np.ndarray
    latent: torch.Tensor
    value: np.ndarray
    reward: np.ndarray
    context: object
    world_model_log_policy: np.ndarray
    prior_log_policy: np.ndarray | None
    policy: np.ndarray


def candidate_mask(observations: Sequence[str], candidates: Sequence[Sequence[str]]) -> np.ndarray:
    """``[B, A]`` True on real candidates; rejects empty batches and empty candidate lists."""
    if len(observations) == 0:
        raise PriorZeroInputError("a search needs at least one root observation")
    if len(candidates) != len(observations):
        raise PriorZeroInputError(f"got {len(observations)} observations but {len(candidates)} candidate lists")
    counts = np.array([len(c) for c in candidates])
    if (counts == 0).any():
        raise PriorZeroInputError(f"roots {np.flatnonzero(counts == 0).tolist()} have no candidate actions")
    return np.arange(counts.max()) < counts[:, None]


def prepare_root(
    model: SearchModel,
    observations: Sequence[str],
    candidates: Sequence[Sequence[str]],
    mask: np.ndarray,
    prior_log_probs: PriorLogProbs | None,
    config: MCTSConfig,
    weight: float,
    noise: np.ndarray | None,
) -> Root:
    """Call the world model on the roots and build the policy they explore with.

    ``prior_log_probs`` enters as ``config.prior_mode`` says, at mixture ``weight``; ``noise``
    ``[B, A]`` (Dirichlet draws, None: no noise) is mixed in at ``config.root_exploration_fraction``.
    """
    use_prior = prior_log_probs is not None and config.prior_mode != "none"
    prior_log = normalised_prior(prior_log_probs, mask) if use_prior else None
    output, context = model.initial_inference(list(observations), [list(c) for c in candidates])
    read = OutputBuffers(mask.shape)
    read.read(output)
    world_model_log = masked_log_softmax(read.logits, mask)
    policy = np.exp(world_model_log)
    if prior_log is not None:
        policy = inject_prior(world_model_log, prior_log, config.prior_mode, weight, config.prior_temperature)
    if noise is not None:
        fraction = config.root_exploration_fraction
        policy = policy * (1 - fraction) + noise * fraction
    return Root(mask, output.latent, read.value, read.reward, context, world_model_log, prior_log, policy)
