"""Jericho benchmark games (.z3/.z5/.z8) on Jericho's ``FrotzEnv``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from jericho import FrotzEnv
from jericho.util import verb_usage_count

from priorzero_pl.envs.backend import BackendObservation, ValidActions, frotz_seed
from priorzero_pl.envs.state_key import jericho_state_key
from priorzero_pl.envs.valid_actions import ValidActionOracle


class JerichoBackend:
    """A story file run by Frotz in this process; valid actions come from killable worker processes.

    ``use_valid_actions=False`` starts no worker (and needs no spaCy): for walkthrough replays and
    benchmarks of stepping alone. ``search_workers`` is the number of worker processes (None: one
    per core).
    """

    def __init__(self, story: Path, seed: int, use_valid_actions: bool = True, search_workers: int | None = None) -> None:
        self._story = story
        self._env = FrotzEnv(str(story))
        seed_used = frotz_seed(seed, self._env.bindings.get("seed") if self._env.bindings else None)
        self._env.seed(seed_used)
        self._oracle = ValidActionOracle(story, seed_used, search_workers) if use_valid_actions else None

    @property
    def name(self) -> str:
        """Jericho's name for a known game, else the file stem."""
        return str(self._env.bindings.get("name", self._story.stem)) if self._env.bindings else self._story.stem

    @property
    def max_score(self) -> float:
        """Frotz's maximum score (0 for games Jericho does not know, e.g. TextWorld builds)."""
        return float(self._env.get_max_score())

    @property
    def oracle(self) -> ValidActionOracle | None:
        """The valid-action search (None when disabled); its counters say how it went."""
        return self._oracle

    def reset(self) -> BackendObservation:
        """Restart the game (the seed set at construction takes effect here)."""
        observation, _ = self._env.reset()
        return self._observe(observation)

    def step(self, action: str) -> BackendObservation:
        """Send one command to Frotz."""
        observation, _, _, _ = self._env.step(action)
        return self._observe(observation)

    def state_hash(self) -> str:
        """Hash of the object tree with noisy objects (Zork's thief) cleaned out, plus the game's special RAM.

        The same content as Jericho's ``get_world_state_hash``, hashed as the object table's raw
        bytes instead of its text rendering: 0.1 ms instead of 1.8 ms per step on Zork I. It
        names a world state for people and priors; states with one hash can still differ in
        their valid actions (see :meth:`cache_key`).
        """
        objects = self._env.get_world_objects(clean=True)
        special_ram = str(self._env._get_special_ram())  # the cells Jericho's own world hash adds
        return hashlib.md5(bytes(objects) + special_ram.encode()).hexdigest()

    def cache_key(self) -> str:
        """The whole emulator state, less what the game cannot read: :func:`jericho_state_key`."""
        return jericho_state_key(self._env.get_state())

    def location(self) -> str:
        """Object number of the player's parent (the room, or a vehicle in it)."""
        place = self._env.get_player_location()
        return str(place.num) if place is not None else ""

    def valid_actions(self, timeout: float) -> ValidActions | None:
        """Jericho's valid actions for the current state (None when disabled); see :class:`ValidActionOracle`."""
        if self._oracle is None:
            return None
        state = self._env.get_state()
        actions, complete = self._oracle.search(jericho_state_key(state), state, timeout)
        return ValidActions(actions, complete)

    def check_actions(self, actions: list[str]) -> list[str]:
        """Jericho's validity test (a step that changes the world) on ``actions`` only, one per world change."""
        if not actions:
            return []
        by_diff = self._env._filter_candidate_actions(actions, use_ctypes=True, use_parallel=False)
        return [max(group, key=verb_usage_count) for group in by_diff.values()]

    def walkthrough(self) -> list[str] | None:
        """Jericho's recorded walkthrough (replays to the full score with seed 0)."""
        if not self._env.is_fully_supported or not self._env.bindings.get("walkthrough"):
            return None
        return self._env.get_walkthrough()

    def close(self) -> None:
        """Stop the valid-action workers and free the interpreter."""
        if self._oracle is not None:
            self._oracle.close()
        self._env.close()

    def _observe(self, observation: str) -> BackendObservation:
        won = self._env.victory()
        return BackendObservation(
            observation=observation,
            score=float(self._env.get_score()),
            moves=int(self._env.get_moves()),
            done=won or self._env.game_over(),
            won=won,
        )
