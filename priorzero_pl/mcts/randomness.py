"""Everything the search draws from the caller's generator, drawn up front in one fixed order.

Root ``i`` (in batch order) draws its Dirichlet noise (``A_i`` values, when noise is on) and then
one uniform for its action (when the action is sampled). Drawing per root and before the search
makes a batched search of ``B`` roots consume the generator exactly as ``B`` one-root searches in
a row do, so the two give identical results from identical seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RootDraws:
    """Random numbers of one batched search.

    Attributes:
        noise: ``[B, A]`` Dirichlet noise over each root's valid candidates (0 on padding), or
            None when noise is off.
        action_uniform: ``[B]`` uniforms in [0, 1) that sample the action from the visit policy,
            or None when the action is the argmax.
    """

    noise: np.ndarray | None
    action_uniform: np.ndarray | None


def draw_root_randomness(
    rng: np.random.Generator,
    num_candidates: np.ndarray,
    width: int,
    dirichlet_alpha: float | None,
    sample_action: bool,
) -> RootDraws:
    """Draw per root in batch order (see the module docstring); ``dirichlet_alpha`` None = no noise."""
    num_roots = len(num_candidates)
    noise = None if dirichlet_alpha is None else np.zeros((num_roots, width))
    action_uniform = np.zeros(num_roots) if sample_action else None
    for i, count in enumerate(num_candidates):
        if noise is not None:
            noise[i, :count] = rng.dirichlet(np.full(count, dirichlet_alpha))
        if action_uniform is not None:
            action_uniform[i] = rng.random()
    return RootDraws(noise=noise, action_uniform=action_uniform)
