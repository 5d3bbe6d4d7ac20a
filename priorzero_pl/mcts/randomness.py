"""Everything the search draws from the caller's generator, drawn up front in one fixed order.

Root ``i`` (in batch order) draws its Dirichlet noise (``A_i`` values, when noise is on), then
one uniform for its action (when the action is sampled), then one 64-bit tie-break seed. Drawing
per root and before the search makes a batched search of ``B`` roots consume the generator
exactly as ``B`` one-root searches in a row do, so the two give identical results from identical
seeds.
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
        action_uniform: ``[B]`` uniforms in [0, 1) that sample the action from the visit counts,
            or None when the action is the most visited candidate.
        tie_seed: ``[B]`` uint64 seeds of each tree's tie-breaking noise (see ``selection.py``).
    """

    noise: np.ndarray | None
    action_uniform: np.ndarray | None
    tie_seed: np.ndarray


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
    tie_seed = np.zeros(num_roots, dtype=np.uint64)
    for i, count in enumerate(num_candidates):
        if noise is not None:
            noise[i, :count] = rng.dirichlet(np.full(count, dirichlet_alpha))
        if action_uniform is not None:
            action_uniform[i] = rng.random()
        tie_seed[i] = rng.integers(np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True)
    return RootDraws(noise=noise, action_uniform=action_uniform, tie_seed=tie_seed)
