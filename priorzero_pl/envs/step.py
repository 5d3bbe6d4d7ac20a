"""What one game step returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class StepRecord:
    """One observation of a text game, after ``reset()`` or ``step(action)``.

    ``candidates`` are the game's valid actions in this state (strings; index ``i`` of any policy
    over this step refers to ``candidates[i]``). ``candidates_source`` says where they came from;
    ``candidates_fallback`` is True when they are not a finished search's answer (``"partial"`` or
    ``"default"``), so that callers can count it.
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
    candidates_source: Literal["search", "cache", "partial", "default", "none"] = "search"
    """``"search"``: searched for this state now; ``"cache"``: an earlier search of the same emulator
    state; ``"partial"``: the search reached its deadline, so what it found so far plus the
    actions last valid at the same world state or place that still are (tried by stepping);
    ``"default"``: the configured default actions; ``"none"``: the episode is over."""
    cache_audited: bool = False
    """This cache hit was checked against a fresh search (``TextGame(cache_audit_rate=...)``)."""
    cache_disagreed: bool = False
    """The check found the cached list wrong (the fresh one is in ``candidates``): should never happen."""
    state_hash: str = ""
    """Hash of the game's world state (object tree and a few RAM cells), for people and prior caches.

    Not the valid-action cache key: states with one world hash can have different valid actions."""
    valid_actions_seconds: float = field(default=0.0, compare=False)
    """Wall seconds this step spent finding the valid actions (searches, and the checks of a
    partial list's fallbacks), measured by the ``EnvPool`` worker; 0 from a game in this process.
    Not part of the record's equality: timing is not what a game showed."""
    error: str | None = None
    """Set by ``EnvPool`` when the worker crashed or hung and was restarted (``truncated`` is True)."""
