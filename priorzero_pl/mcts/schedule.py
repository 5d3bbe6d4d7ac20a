"""How the LLM prior's mixture weight changes over training (trust the LLM early, the world model
later, or the reverse). The caller evaluates it at its step and passes the weight to the search."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.config_checks import require_int, require_number
from priorzero_pl.errors import PriorZeroInputError

SCHEDULE_KINDS = ("constant", "linear")


@dataclass(frozen=True)
class PriorWeightSchedule:
    """``w(step)``: constant at ``start``, or linear from ``start`` to ``end`` over ``steps``."""

    start: float = 0.5
    """Weight at step 0."""
    end: float = 0.5
    """Weight from step ``steps`` on (``linear`` only)."""
    steps: int = 1
    """Steps the linear ramp takes (>= 1)."""
    kind: str = "constant"
    """``constant`` or ``linear``."""

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise PriorZeroInputError(f"model.prior_weight_schedule.kind must be one of {list(SCHEDULE_KINDS)}, got {self.kind!r}")
        for name in ("start", "end"):
            require_number(f"model.prior_weight_schedule.{name}", getattr(self, name), at_least=0, at_most=1)
        require_int("model.prior_weight_schedule.steps", self.steps, minimum=1)

    def __call__(self, step: int) -> float:
        """The weight at ``step`` (>= 0); past the ramp it stays at ``end``."""
        if step < 0:
            raise PriorZeroInputError(f"prior weight schedule step must be >= 0, got {step}")
        if self.kind == "constant":
            return self.start
        progress = min(step / self.steps, 1.0)
        return self.start + (self.end - self.start) * progress
