"""What :class:`~priorzero_pl.envs.text_game.TextGame` needs from a game engine (Jericho or TextWorld).

``TextGame`` owns everything engine-independent (rewards, truncation, candidate fallback, the
valid-action cache); a backend only runs the game and reports its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNSEEDED_GAME_SEED = 1_000_003
"""Frotz seed for seed 0 on games without a walkthrough seed (Jericho would turn 0 into -1: seed from the clock)."""


@dataclass
class BackendObservation:
    """What the game engine reports after a reset or a step, before ``TextGame`` adds rewards and candidates."""

    observation: str
    score: float
    moves: int
    done: bool
    """The game itself ended (won or lost); truncation is decided by ``TextGame``."""
    won: bool


@dataclass
class ValidActions:
    """A backend's answer to "which actions are valid here?"."""

    actions: list[str]
    complete: bool
    """False when the search reached its deadline: ``actions`` is what it had found by then."""


class GameBackend(Protocol):
    """One running game: reset, step, its world-state hash and its valid actions."""

    @property
    def name(self) -> str:
        """Short game name (Jericho's binding name, else the file stem)."""

    @property
    def max_score(self) -> float:
        """Highest reachable score (0 when the engine cannot tell)."""

    def reset(self) -> BackendObservation:
        """Restart the game from its first move."""

    def step(self, action: str) -> BackendObservation:
        """Send one text command."""

    def state_hash(self) -> str:
        """Stable string hash of the current world state (same state -> same hash, across processes)."""

    def cache_key(self) -> str:
        """Key of the valid-action cache: two states with the same key have the same valid actions."""

    def location(self) -> str:
        """Where the player is (the room), for falling back on the valid actions last seen there."""

    def valid_actions(self, timeout: float) -> ValidActions | None:
        """Actions that change the world in the current state, searched for up to ``timeout`` s (None: disabled)."""

    def check_actions(self, actions: list[str]) -> list[str]:
        """Those of ``actions`` that are valid in the current state (one per world change), tried one by one."""

    def walkthrough(self) -> list[str] | None:
        """A command list that wins the game from reset (with seed 0), or None when the game has none."""

    def close(self) -> None:
        """Free the interpreter and any helper process."""


def frotz_seed(seed: int, reference_seed: int | None) -> int:
    """Map a ``TextGame`` seed to the Frotz RNG seed.

    Seed 0 means the game's reference seed (Jericho's walkthrough seed, so that ``walkthrough()``
    replays as recorded), or a fixed seed when the game has none; seed n > 0 is Frotz seed n.
    """
    if seed > 0:
        return seed
    return reference_seed if reference_seed is not None else UNSEEDED_GAME_SEED
