"""What one game step returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepRecord:
    """One observation of a text game, after ``reset()`` or ``step(action)``.

    ``candidates`` are the game's valid actions in this state (strings; index ``i`` of any policy
    over this step refers to ``candidates[i]``). When the valid-action computation was empty or
    timed out, ``candidates`` is the configured default action list and ``candidates_fallback`` is
    True so that callers can count it.
    """

    observation: str
    candidates: list[str]
    reward: float = 0.0
    score: float = 0.0
    max_score: float = 0.0
    moves: int = 0
    done: bool = False
    truncated: bool = False
    won: bool = False
    candidates_fallback: bool = False
    state_hash: str = ""
    """Hash of the game's world state: the key for the valid-action and prior caches."""
    error: str | None = None
    """Set by ``EnvPool`` when the worker crashed or hung and was restarted (``truncated`` is True)."""
    info: dict[str, object] = field(default_factory=dict)
