"""Settings of the replay buffer."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.config_checks import require_int, require_number
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
        key = "data.replay."
        require_int(key + "capacity_steps", self.capacity_steps, minimum=1)
        require_int(key + "unroll_steps", self.unroll_steps, minimum=0)
        require_int(key + "td_steps", self.td_steps, minimum=1)
        require_number(key + "discount", self.discount, above=0, at_most=1)
        require_number(key + "priority_alpha", self.priority_alpha, at_least=0)
        require_number(key + "priority_beta", self.priority_beta, at_least=0, at_most=1)
