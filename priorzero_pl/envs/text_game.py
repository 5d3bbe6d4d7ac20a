"""One text game behind one interface, whatever engine runs it: :class:`TextGame`."""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import Sequence

from priorzero_pl.envs.backend import BackendObservation, GameBackend, ValidActions
from priorzero_pl.envs.game_files import is_textworld_game, resolve_game
from priorzero_pl.envs.step import StepRecord
from priorzero_pl.errors import PriorZeroInputError

DEFAULT_ACTIONS = ("look", "inventory", "north", "south", "east", "west")
"""Candidates when the valid-action search is empty or timed out: moves that every parser knows."""

VALID_ACTION_CACHE_SIZE = 100_000
"""Most states whose valid actions are kept (least recently used go first; about 2 kB each)."""

FALLBACK_LISTS_KEPT = 10_000
"""World states and rooms whose last finished list is kept for fallbacks (least recently used go first)."""


class TextGame:
    """A text game that returns :class:`StepRecord` s with rewards, scores and candidate actions.

    Jericho benchmark stories run on Jericho's ``FrotzEnv``; TextWorld-generated games (``.z8`` with
    its ``.json``) run through TextWorld, which knows their score and admissible commands.
    Candidates are the game's valid actions, deduplicated and sorted (so the same state gives the
    same list in every process). They are cached by the backend's cache key (for Jericho games the
    whole emulator state, see :mod:`~priorzero_pl.envs.state_key`), because a search costs
    0.05-10 s against microseconds for a step.

    A search gets ``valid_actions_timeout`` seconds. One that runs out is kept and resumed on the
    state's next visit; meanwhile the record carries what it found so far together with the
    actions of the last list at the same world state (else the same room; a finished list if
    there is one, else the last partial one) that are still valid, tried by stepping
    (``candidates_source="partial"``), or ``default_actions`` when both are empty
    (``"default"``); either way ``candidates_fallback=True``. Records that end the episode
    (``done``) carry no candidates.

    ``cache_audit_rate`` is the share of cache hits that are searched again and compared with the
    cached list (``StepRecord.cache_audited`` / ``cache_disagreed``, and the counters
    ``cache_audits`` / ``cache_disagreements``); a disagreement serves and caches the fresh list.

    ``seed`` 0 is the game's reference seed (for Jericho games the walkthrough seed, so that
    ``walkthrough()`` replays to the full score); other seeds change the game's randomness.
    ``use_valid_actions=False`` skips the search (every record falls back to ``default_actions``):
    for replaying walkthroughs and for benchmarks of stepping alone. ``valid_action_workers`` is
    the number of processes a Jericho search runs on (None: one per core, at most 8).
    ``track_winning_plan`` (TextWorld games only) keeps :meth:`winning_plan` up to date: an expert
    for every state, which the corpus uses to label states off the walkthrough.
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
        valid_action_workers: int | None = None,
        cache_audit_rate: float = 0.0,
        track_winning_plan: bool = False,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PriorZeroInputError(f"seed={seed!r}: must be an integer >= 0")
        if max_steps < 1:
            raise PriorZeroInputError(f"max_steps={max_steps}: must be >= 1")
        if not valid_actions_timeout > 0:
            raise PriorZeroInputError(f"valid_actions_timeout={valid_actions_timeout}: must be > 0 seconds")
        if isinstance(default_actions, str):
            raise PriorZeroInputError(f"default_actions={default_actions!r}: must be a list of actions, not one string")
        if not 0.0 <= cache_audit_rate <= 1.0:
            raise PriorZeroInputError(f"cache_audit_rate={cache_audit_rate}: must be a share of cache hits in [0, 1]")
        defaults = list(dict.fromkeys(a.strip() for a in default_actions if a.strip()))
        if not defaults:
            raise PriorZeroInputError("default_actions is empty: give at least one fallback action such as 'look'")
        self._path = resolve_game(game, games_dir)
        if track_winning_plan and not is_textworld_game(self._path):
            raise PriorZeroInputError(
                f"track_winning_plan=True: {self._path.name} is not a TextWorld game; only TextWorld knows a winning plan from any state"
            )
        self._max_steps = max_steps
        self._timeout = float(valid_actions_timeout)
        self._default_actions = defaults
        self._use_valid_actions = use_valid_actions
        self._cache: OrderedDict[str, list[str]] | None = OrderedDict() if cache_valid_actions else None
        self._last_lists: OrderedDict[str, tuple[list[str], bool]] = OrderedDict()
        self._audit_rate = float(cache_audit_rate)
        self._audit_rng = random.Random(seed)
        self._backend = _open_backend(self._path, seed, use_valid_actions, valid_action_workers, track_winning_plan)
        self._steps = 0
        self._score = 0.0
        self._done = True
        self._started = False
        self.valid_action_searches = 0
        """Valid-action searches run or resumed (cache misses and audits), timed-out ones included."""
        self.valid_action_cache_hits = 0
        """Records whose candidates came from the cache."""
        self.cache_audits = 0
        """Cache hits checked against a fresh search that finished."""
        self.cache_disagreements = 0
        """Audited hits whose cached list differed from the fresh one."""

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

    @property
    def backend(self) -> GameBackend:
        """The engine behind this game (benchmarks read its search counters)."""
        return self._backend

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

    def winning_plan(self) -> list[str] | None:
        """Commands that win from the current state (TextWorld games opened with ``track_winning_plan``).

        None when no win is reachable any more or the episode is over.
        """
        from priorzero_pl.envs.textworld_backend import TextWorldBackend

        if not isinstance(self._backend, TextWorldBackend):
            raise PriorZeroInputError(f"{self._path.name}: winning_plan() needs a TextWorld game opened with track_winning_plan=True")
        return self._backend.winning_plan()

    def close(self) -> None:
        """Free the interpreter and the valid-action processes."""
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
        if self._done:
            candidates, source, audited, disagreed = [], "none", False, False
        else:
            candidates, source, audited, disagreed = self._candidates(state_hash)
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
            candidates_fallback=source in ("partial", "default"),
            candidates_source=source,
            cache_audited=audited,
            cache_disagreed=disagreed,
            state_hash=state_hash,
        )

    def _candidates(self, state_hash: str) -> tuple[list[str], str, bool, bool]:
        """(candidates, source, audited, disagreed) for the current, not finished, state."""
        if not self._use_valid_actions:
            return (*self._served([], "default"), False, False)
        key = self._backend.cache_key()
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is None:
            result = self._search(key, state_hash)
            if result.complete:
                return (*self._served(result.actions, "search"), False, False)
            return (*self._partial(result.actions, state_hash), False, False)
        self.valid_action_cache_hits += 1
        self._cache.move_to_end(key)  # type: ignore[union-attr]
        if not (self._audit_rate > 0 and self._audit_rng.random() < self._audit_rate):
            return (*self._served(cached, "cache"), False, False)
        fresh = self._search(key, state_hash)
        if not fresh.complete:  # the audit's search ran out of time: nothing to compare
            return (*self._served(cached, "cache"), False, False)
        self.cache_audits += 1
        disagreed = fresh.actions != cached
        self.cache_disagreements += int(disagreed)
        return (*self._served(fresh.actions, "cache"), True, disagreed)

    def _search(self, key: str, state_hash: str) -> ValidActions:
        """Search (or resume) this state; a finished list is sorted, cached and remembered for fallbacks."""
        self.valid_action_searches += 1
        result = self._backend.valid_actions(self._timeout)
        assert result is not None  # only called with valid actions on
        actions = sorted({a.strip() for a in result.actions if a.strip()})
        if result.complete:
            if self._cache is not None:
                self._cache[key] = actions
                if len(self._cache) > VALID_ACTION_CACHE_SIZE:
                    self._cache.popitem(last=False)
            self._remember(state_hash, actions, complete=True)
        return ValidActions(actions, result.complete)

    def _partial(self, found: list[str], state_hash: str) -> tuple[list[str], str]:
        """What the cut-short search found, plus the still-valid actions of the last list seen here."""
        world, room = self._last_lists.get(f"world:{state_hash}"), self._last_lists.get(f"room:{self._backend.location()}")
        earlier = world[0] if world else room[0] if room else []
        still_valid = self._backend.check_actions(list(earlier)) if earlier else []
        actions = sorted({*found, *(a.strip() for a in still_valid if a.strip())})
        if actions:
            self._remember(state_hash, actions, complete=False)
        return self._served(actions, "partial")

    def _remember(self, state_hash: str, actions: list[str], complete: bool) -> None:
        """Keep a list for the fallbacks of this world state and room; a finished list wins over a partial one."""
        for place in (f"world:{state_hash}", f"room:{self._backend.location()}"):
            kept = self._last_lists.get(place)
            if complete or kept is None or not kept[1]:
                self._last_lists[place] = (actions, complete)
            self._last_lists.move_to_end(place)
        while len(self._last_lists) > FALLBACK_LISTS_KEPT:
            self._last_lists.popitem(last=False)

    def _served(self, actions: list[str], source: str) -> tuple[list[str], str]:
        if not actions:
            return list(self._default_actions), "default"
        return list(actions), source


def _open_backend(
    path: Path, seed: int, use_valid_actions: bool, search_workers: int | None, track_winning_plan: bool
) -> GameBackend:
    if is_textworld_game(path):
        from priorzero_pl.envs.textworld_backend import TextWorldBackend

        return TextWorldBackend(path, seed, track_winning_plan=track_winning_plan)
    from priorzero_pl.envs.jericho_backend import JerichoBackend

    return JerichoBackend(path, seed, use_valid_actions, search_workers)
