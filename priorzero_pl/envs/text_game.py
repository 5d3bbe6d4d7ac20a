"""One text game behind one interface, whatever engine runs it: :class:`TextGame`."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import Sequence

from priorzero_pl.envs.backend import BackendObservation, GameBackend
from priorzero_pl.envs.game_files import is_textworld_game, resolve_game
from priorzero_pl.envs.step import StepRecord
from priorzero_pl.errors import PriorZeroInputError

DEFAULT_ACTIONS = ("look", "inventory", "north", "south", "east", "west")
"""Candidates when the valid-action search is empty or timed out: moves that every parser knows."""

VALID_ACTION_CACHE_SIZE = 100_000
"""Most states whose valid actions are kept (least recently used go first; about 2 kB each)."""


class TextGame:
    """A text game that returns :class:`StepRecord` s with rewards, scores and candidate actions.

    Jericho benchmark stories run on Jericho's ``FrotzEnv``; TextWorld-generated games (``.z8`` with
    its ``.json``) run through TextWorld, which knows their score and admissible commands.
    Candidates are the game's valid actions, deduplicated and sorted (so the same state gives the
    same list in every process), cached by world-state hash because computing them costs
    40 ms - 2 s on Jericho games against microseconds for a step. When the search is empty or takes
    longer than ``valid_actions_timeout`` the record carries ``default_actions`` and
    ``candidates_fallback=True``. Records that end the episode (``done``) carry no candidates.

    ``seed`` 0 is the game's reference seed (for Jericho games the walkthrough seed, so that
    ``walkthrough()`` replays to the full score); other seeds change the game's randomness.
    ``use_valid_actions=False`` skips the search (every record falls back to ``default_actions``):
    for replaying walkthroughs and for benchmarks of stepping alone.
    """

    def __init__(
        self,
        game: str | os.PathLike,
        *,
        games_dir: str | os.PathLike | None = None,
        seed: int = 0,
        max_steps: int = 100,
        valid_actions_timeout: float = 5.0,
        default_actions: Sequence[str] = DEFAULT_ACTIONS,
        cache_valid_actions: bool = True,
        use_valid_actions: bool = True,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PriorZeroInputError(f"seed={seed!r}: must be an integer >= 0")
        if max_steps < 1:
            raise PriorZeroInputError(f"max_steps={max_steps}: must be >= 1")
        if not valid_actions_timeout > 0:
            raise PriorZeroInputError(f"valid_actions_timeout={valid_actions_timeout}: must be > 0 seconds")
        if isinstance(default_actions, str):
            raise PriorZeroInputError(f"default_actions={default_actions!r}: must be a list of actions, not one string")
        defaults = list(dict.fromkeys(a.strip() for a in default_actions if a.strip()))
        if not defaults:
            raise PriorZeroInputError("default_actions is empty: give at least one fallback action such as 'look'")
        self._path = resolve_game(game, games_dir)
        self._max_steps = max_steps
        self._timeout = float(valid_actions_timeout)
        self._default_actions = defaults
        self._use_valid_actions = use_valid_actions
        self._cache: OrderedDict[str, list[str]] | None = OrderedDict() if cache_valid_actions else None
        self._backend = _open_backend(self._path, seed, use_valid_actions)
        self._steps = 0
        self._score = 0.0
        self._done = True
        self._started = False
        self.valid_action_searches = 0
        """Valid-action searches run (cache misses), timed-out ones included."""
        self.valid_action_cache_hits = 0
        """Records whose candidates came from the cache."""

    @property
    def name(self) -> str:
        """Short name of the game (``zork1``, or the file stem of a generated game)."""
        return self._backend.name

    @property
    def path(self) -> Path:
        """The resolved story file."""
        return self._path

    @property
    def max_score(self) -> float:
        """Highest reachable score (0 when the engine cannot tell)."""
        return self._backend.max_score

    def reset(self) -> StepRecord:
        """Start a new episode."""
        observed = self._backend.reset()
        self._steps = 0
        self._score = observed.score
        self._started = True
        return self._record(observed, reward=0.0)

    def step(self, action: str) -> StepRecord:
        """Send ``action``; the record's ``reward`` is the change in score."""
        if not self._started:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        if self._done:
            raise RuntimeError(f"{self.name}: the episode is over (done=True); call reset()")
        observed = self._backend.step(action)
        self._steps += 1
        reward = observed.score - self._score
        self._score = observed.score
        return self._record(observed, reward=reward)

    def walkthrough(self) -> list[str] | None:
        """Commands that win the game from ``reset()`` (with seed 0), or None when the game has none."""
        return self._backend.walkthrough()

    def close(self) -> None:
        """Free the interpreter and the valid-action process."""
        self._backend.close()

    def __enter__(self) -> TextGame:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _record(self, observed: BackendObservation, reward: float) -> StepRecord:
        truncated = not observed.done and self._steps >= self._max_steps
        self._done = observed.done or truncated
        state_hash = self._backend.state_hash()
        candidates, fallback = ([], False) if self._done else self._candidates(state_hash)
        return StepRecord(
            observation=observed.observation,
            candidates=candidates,
            reward=float(reward),
            score=observed.score,
            max_score=self.max_score,
            moves=observed.moves,
            done=self._done,
            truncated=truncated,
            won=observed.won,
            candidates_fallback=fallback,
            state_hash=state_hash,
        )

    def _candidates(self, state_hash: str) -> tuple[list[str], bool]:
        if not self._use_valid_actions:
            return list(self._default_actions), True
        actions = self._cache.get(state_hash) if self._cache is not None else None
        if actions is None:
            self.valid_action_searches += 1
            found = self._backend.valid_actions(self._timeout)
            if found is None:
                # Not cached: a timeout can be the machine's load, so a later visit tries again.
                return list(self._default_actions), True
            actions = sorted({a.strip() for a in found if a.strip()})
            if self._cache is not None:
                self._cache[state_hash] = actions
                if len(self._cache) > VALID_ACTION_CACHE_SIZE:
                    self._cache.popitem(last=False)
        elif self._cache is not None:
            self.valid_action_cache_hits += 1
            self._cache.move_to_end(state_hash)
        if not actions:
            return list(self._default_actions), True
        return list(actions), False


def _open_backend(path: Path, seed: int, use_valid_actions: bool) -> GameBackend:
    if is_textworld_game(path):
        from priorzero_pl.envs.textworld_backend import TextWorldBackend

        return TextWorldBackend(path, seed)
    from priorzero_pl.envs.jericho_backend import JerichoBackend

    return JerichoBackend(path, seed, use_valid_actions)
