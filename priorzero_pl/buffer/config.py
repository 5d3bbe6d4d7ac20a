"""Settings of the replay buffer."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.errors import PriorZeroInputError


@dataclass
class ReplayConfig:
    """Capacity, target construction and sampling of :class:`~priorzero_pl.buffer.replay_buffer.ReplayBuffer`."""

    capacity_steps: int = 100_000
    """Steps kept; the oldest whole episodes are evicted beyond it."""
    unroll_steps: int = 5
    """``K``: dynamics steps per sampled window."""
    td_steps: int = 5
    """``n`` of the n-step value target."""
    discount: float = 0.997
    prioritized: bool = False
    """Sample positions proportionally to ``priority ** alpha`` instead of uniformly."""
    priority_alpha: float = 0.6
    priority_beta: float = 0.4
    """Exponent of the importance weights that undo the prioritised sampling's bias."""

    def __post_init__(self) -> None:
        for name in ("capacity_steps", "td_steps"):
            if getattr(self, name) < 1:
                raise PriorZeroInputError(f"ReplayConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.unroll_steps < 0:
            raise PriorZeroInputError(f"ReplayConfig.unroll_steps must be >= 0, got {self.unroll_steps}")
        if not 0.0 < self.discount <= 1.0:
            raise PriorZeroInputError(f"ReplayConfig.discount must be in (0, 1], got {self.discount}")
        if self.priority_alpha < 0:
            raise PriorZeroInputError(f"ReplayConfig.priority_alpha must be >= 0, got {self.priority_alpha}")
        if not 0.0 <= self.priority_beta <= 1.0:
            raise PriorZeroInputError(f"ReplayConfig.priority_beta must be in [0, 1], got {self.priority_beta}")
