"""n-step bootstrapped value targets of one episode."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def n_step_value_targets(
    rewards: Sequence[float], root_values: Sequence[float], *, terminal: bool, td_steps: int, discount: float
) -> np.ndarray:
    """``z_t = sum_{i<n} gamma^i r_{t+i} + gamma^n v_{t+n}`` for every step of an episode.

    ``v`` is the search's root value (MuZero's bootstrap). Where ``t + n`` runs past the last
    step ``T - 1``:

    * ``terminal``: nothing follows the end, so the sum stops at ``r_{T-1}`` with no bootstrap.
    * otherwise (truncated or unfinished): the value after the end is unknown, so the horizon
      shortens to bootstrap from the last root value available, ``v_{T-1}``:
      ``z_t = sum_{i < T-1-t} gamma^i r_{t+i} + gamma^{T-1-t} v_{T-1}`` (for ``t = T - 1``,
      ``z_t = v_{T-1}``).

    Args:
        rewards: ``[T]`` reward after the action at step ``t``.
        root_values: ``[T]`` root value of step ``t``.

    Returns:
        ``[T]`` float32 targets.
    """
    rewards_array = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(root_values, dtype=np.float64)
    length = len(rewards_array)
    targets = np.zeros(length, dtype=np.float64)
    for t in range(length):
        bootstrap = t + td_steps
        if bootstrap >= length and not terminal:
            bootstrap = length - 1
        end = min(bootstrap, length)
        powers = discount ** np.arange(end - t)
        targets[t] = float(powers @ rewards_array[t:end])
        if bootstrap < length:
            targets[t] += discount ** (bootstrap - t) * values[bootstrap]
    return targets.astype(np.float32)
