"""What the search hands back: root visit counts as a policy, the action taken from them, and how
far that policy moved from the world model's own.

The visit policy (the training target) is always the raw visit fractions ``N(a) / sum N``, as in
MuZero, LightZero and mctx; a temperature only shapes the distribution the action is drawn from.
All arrays are ``[B, A]`` (0 on padded candidates) or ``[B]``.
"""

from __future__ import annotations

import numpy as np

from priorzero_pl.mcts.selection import tie_noise


def visit_fractions(visit_counts: np.ndarray) -> np.ndarray:
    """``N(a) / sum_b N(b)`` per root: the search's policy, untempered."""
    counts = visit_counts.astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def action_distribution(visit_counts: np.ndarray, temperature: float) -> np.ndarray:
    """The distribution an exploring agent samples its action from: ``N^(1/T)`` normalised per
    root; ``T = 0`` is uniform over the most visited candidates. Counts are scaled by their
    maximum first so that small temperatures cannot overflow."""
    counts = visit_counts.astype(np.float64)
    scaled = counts / counts.max(axis=1, keepdims=True)
    sharpened = (scaled == 1.0).astype(np.float64) if temperature == 0 else scaled ** (1.0 / temperature)
    return sharpened / sharpened.sum(axis=1, keepdims=True)


def most_visited(visit_counts: np.ndarray, mask: np.ndarray, tie_seed: np.ndarray) -> np.ndarray:
    """``[B]`` the most visited real candidate of each root, ties broken by the tree's
    tie-breaking noise (at simulation 0, which selects nothing, so the draw is its own). The
    noise is below 1, so it never overturns a difference in counts."""
    noise = tie_noise(tie_seed, simulation=0, depth=0, width=visit_counts.shape[1])
    return np.where(mask, visit_counts + 0.5 * noise, -np.inf).argmax(axis=1)


def sample_action(policy: np.ndarray, action_uniform: np.ndarray) -> np.ndarray:
    """``[B]`` actions drawn from ``policy`` by inverse CDF with the pre-drawn uniforms.
    Zero-probability candidates (padding, unvisited) are never drawn: their CDF step is empty."""
    cdf = np.cumsum(policy, axis=1)
    actions = (cdf <= action_uniform[:, None] * cdf[:, -1:]).sum(axis=1)
    # Rounding can leave u * total at the very top of the CDF; the last positive entry is meant.
    last_positive = policy.shape[1] - 1 - (policy[:, ::-1] > 0).argmax(axis=1)
    return np.minimum(actions, last_positive)


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``[B]`` total-variation distance ``0.5 * sum |p - q|`` between two ``[B, A]`` policies."""
    return 0.5 * np.abs(p - q).sum(axis=1)
