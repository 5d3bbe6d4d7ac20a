"""What the search hands back: root visit counts as a policy, the action taken from it, and how
far that policy moved from the world model's own.

All arrays are ``[B, A]`` (0 on padded candidates) or ``[B]``.
"""

from __future__ import annotations

import numpy as np


def visit_policy(visit_counts: np.ndarray, temperature: float) -> np.ndarray:
    """``counts^(1/T)`` normalised per root; ``T = 0`` is the one-hot argmax (lowest index on
    ties). Counts are scaled by their maximum first so small temperatures cannot overflow."""
    counts = visit_counts.astype(np.float64)
    if temperature == 0:
        policy = np.zeros_like(counts)
        policy[np.arange(len(counts)), counts.argmax(axis=1)] = 1.0
        return policy
    sharpened = (counts / counts.max(axis=1, keepdims=True)) ** (1.0 / temperature)
    return sharpened / sharpened.sum(axis=1, keepdims=True)


def choose_action(policy: np.ndarray, visit_counts: np.ndarray, action_uniform: np.ndarray | None) -> np.ndarray:
    """``[B]`` actions: sampled from ``policy`` by inverse CDF with the pre-drawn uniforms, or the
    most visited candidate when ``action_uniform`` is None (greedy). Zero-probability candidates
    (padding, unvisited) are never sampled: their CDF step is empty."""
    if action_uniform is None:
        return visit_counts.argmax(axis=1)
    cdf = np.cumsum(policy, axis=1)
    actions = (cdf <= action_uniform[:, None] * cdf[:, -1:]).sum(axis=1)
    # Rounding can leave u * total at the very top of the CDF; the last positive entry is meant.
    last_positive = policy.shape[1] - 1 - (policy[:, ::-1] > 0).argmax(axis=1)
    return np.minimum(actions, last_positive)


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``[B]`` total-variation distance ``0.5 * sum |p - q|`` between two ``[B, A]`` policies."""
    return 0.5 * np.abs(p - q).sum(axis=1)
