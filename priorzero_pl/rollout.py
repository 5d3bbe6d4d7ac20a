"""The one episode loop: an agent plays a batch of games together, one decision per game per step.

Collection (the data module, over an :class:`~priorzero_pl.envs.EnvPool`) and evaluation
(:func:`priorzero_pl.episodes.play_episodes`, over games in this process) both play through
:class:`Rollout`; they differ only in the agent's settings and in what happens when an episode
ends (collection starts the next one at once, evaluation lets the game drop out).

Each game's episode so far is a :class:`~priorzero_pl.buffer.GameSegment`, the very record the
replay buffer stores; the prior's prompt history is read from it. That makes an episode in
progress a plain value: :meth:`Rollout.state_dict` saves it, and :meth:`Rollout.restore` brings
the games back to where it stood by replaying its actions (the games are deterministic given
their seed), so a resumed run continues the same episodes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol, Sequence

import numpy as np

from priorzero_pl.agent import Decision
from priorzero_pl.buffer import GameSegment
from priorzero_pl.envs import StepRecord, TextGame
from priorzero_pl.prior import PROMPT_VERSION, HistoryStep
from priorzero_pl.stage_timer import StageTimer


class Games(Protocol):
    """Games stepped together: :class:`~priorzero_pl.envs.EnvPool` or :class:`InProcessGames`."""

    @property
    def num_envs(self) -> int: ...

    def reset(self, indices: Sequence[int] | None = None) -> list[StepRecord]:
        """Reset the games at ``indices`` (all when None); their records in that order."""
        ...

    def step(self, actions: Sequence[str | None]) -> list[StepRecord | None]:
        """One action per game, in game order; a record per game. ``None`` leaves a game alone:
        a rollout sends it only for a game whose episode ended and is not restarted, so a pool
        that steps every game at once (``EnvPool``) serves a restarting rollout."""
        ...


class Actor(Protocol):
    """What plays: :class:`~priorzero_pl.agent.Agent` (or a baseline with the same call)."""

    def act(
        self, records: Sequence[StepRecord], histories: Sequence[Sequence[HistoryStep]], rng: np.random.Generator
    ) -> list[Decision]: ...


class InProcessGames:
    """:class:`~priorzero_pl.envs.TextGame` s in this process. ``step`` takes ``None`` for a game
    that should not move (its episode is over and it is not restarted)."""

    def __init__(self, games: Sequence[TextGame]) -> None:
        self.games = list(games)

    @property
    def num_envs(self) -> int:
        return len(self.games)

    def reset(self, indices: Sequence[int] | None = None) -> list[StepRecord]:
        chosen = range(len(self.games)) if indices is None else indices
        return [self.games[i].reset() for i in chosen]

    def step(self, actions: Sequence[str | None]) -> list[StepRecord | None]:
        return [None if action is None else game.step(action) for game, action in zip(self.games, actions)]

    def close(self) -> None:
        for game in self.games:
            game.close()


class TimedGames:
    """``games`` with their step and reset timed into ``timer``: the wall seconds the caller waits
    go to ``env_step``, less the slowest game's valid-action seconds
    (``StepRecord.valid_actions_seconds``, which the pool's workers measure), which go to
    ``valid_actions``. The games run in parallel, so the slowest one's is what the wait holds.
    ``env_step`` counts the games that moved as its items (env steps)."""

    def __init__(self, games: Games, timer: StageTimer) -> None:
        self.games = games
        self.timer = timer

    @property
    def num_envs(self) -> int:
        return self.games.num_envs

    def reset(self, indices: Sequence[int] | None = None) -> list[StepRecord]:
        started = perf_counter()
        records = self.games.reset(indices)
        self._account(perf_counter() - started, records, moved=0)
        return records

    def step(self, actions: Sequence[str | None]) -> list[StepRecord | None]:
        started = perf_counter()
        records = self.games.step(actions)
        self._account(perf_counter() - started, records, moved=sum(a is not None for a in actions))
        return records

    def _account(self, seconds: float, records: Sequence[StepRecord | None], moved: int) -> None:
        valid = min(seconds, max((r.valid_actions_seconds for r in records if r is not None), default=0.0))
        self.timer.add("valid_actions", valid)
        self.timer.add("env_step", seconds - valid, items=moved)


@dataclass
class RolloutStep:
    """One step of a rollout.

    Attributes:
        records: ``[G]`` what each game that acted saw (``G`` games were active).
        decisions: ``[G]`` the agent's decision for each of them.
        finished: ``(game index, episode)`` for every episode that ended at this step.
    """

    records: list[StepRecord]
    decisions: list[Decision]
    finished: list[tuple[int, GameSegment]]


def history(segment: GameSegment) -> list[HistoryStep]:
    """The episode so far as the prior's prompt shows it (the prompt builder keeps the newest)."""
    return [
        HistoryStep(segment.observations[t], segment.candidates[t][segment.actions[t]], segment.rewards[t])
        for t in range(len(segment))
    ]


class Rollout:
    """Episodes in progress in ``games``, advanced together by :meth:`step`.

    Args:
        games: the games (their number is fixed).
        game: the game's path, recorded in every segment.
        restart: start a new episode in a game as soon as its episode ends (collection); False
            lets the game drop out (evaluation: one episode per game).
    """

    def __init__(self, games: Games, *, game: str, restart: bool) -> None:
        self.games = games
        self.game = game
        self.restart = restart
        self._records: list[StepRecord | None] = []
        self._segments: list[GameSegment] = []

    @property
    def active(self) -> list[int]:
        """Indices of the games whose episode is still running."""
        return [i for i, record in enumerate(self._records) if record is not None]

    @property
    def started(self) -> bool:
        return bool(self._records)

    def begin(self) -> None:
        """A fresh episode in every game."""
        self._records, self._segments = [], []
        for record in self.games.reset():
            self._records.append(record)
            self._segments.append(self._new_segment(record))

    def step(self, agent: Actor, rng: np.random.Generator) -> RolloutStep:
        """One decision per active game, all games stepped at once (the first call begins)."""
        if not self.started:
            self.begin()
        active = self.active
        records = [self._records[i] for i in active]
        decisions = agent.act(records, [history(self._segments[i]) for i in active], rng)
        actions: list[str | None] = [None] * len(self._records)
        for i, decision in zip(active, decisions):
            actions[i] = decision.action
        next_records = self.games.step(actions)
        finished: list[tuple[int, GameSegment]] = []
        for i, record, decision in zip(active, records, decisions):
            nxt = next_records[i]
            self._segments[i].append(
                observation=record.observation,
                candidates=list(record.candidates),
                prompt=decision.prompt,
                action=decision.action_index,
                reward=float(nxt.reward),
                visit_policy=decision.visit_policy,
                prior_logprobs=decision.prior_logprobs,
                root_value=decision.root_value,
                behaviour_logprob=decision.behaviour_logprob,
            )
            self._records[i] = nxt
            if nxt.done:
                finished.append((i, self._finish(i, nxt)))
        ended = [i for i, _ in finished]
        if self.restart and ended:
            for i, record in zip(ended, self.games.reset(ended)):
                self._records[i] = record
                self._segments[i] = self._new_segment(record)
        else:
            for i in ended:
                self._records[i] = None
        return RolloutStep(records=records, decisions=decisions, finished=finished)

    def _reset_some(self, records: list[StepRecord], indices: list[int]) -> None:
        """Reset the games at ``indices``, writing their fresh records into ``records``."""
        if indices:
            for i, record in zip(indices, self.games.reset(indices)):
                records[i] = record

    def _new_segment(self, record: StepRecord) -> GameSegment:
        return GameSegment(game=self.game, max_score=record.max_score, prompt_version=PROMPT_VERSION)

    def _finish(self, index: int, final: StepRecord) -> GameSegment:
        segment = self._segments[index]
        segment.terminal = final.done and not final.truncated
        segment.final_observation = final.observation
        segment.final_score = float(final.score)
        segment.max_score = float(final.max_score)
        return segment

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The episodes in progress (plain python, see ``GameSegment.to_state``) and what each game
        shows now, to check a replay against. Only for a restarting rollout: every game is active."""
        if not self.started:
            return {"segments": None}
        return {
            "segments": [segment.to_state() for segment in self._segments],
            "current": [_fingerprint(record) for record in self._records],
        }

    def restore(self, state: dict[str, Any]) -> list[int]:
        """Bring every game back to the end of its saved episode and continue it; returns the
        games whose replay did not reproduce the saved episode (they start a fresh one).

        Each game is reset and its episode's actions are sent again; every record on the way must
        show the saved observation and candidates, and the last must match what the game showed
        at save time. The pool steps all games together, so a game with a shorter episode starts
        its replay later and marks time before that (its first candidate, then a reset), so that
        every replay ends at the same step.
        """
        if state.get("segments") is None:
            self._records, self._segments = [], []
            return []
        segments = [GameSegment.from_state(s) for s in state["segments"]]
        num_games = self.games.num_envs
        if len(segments) != num_games:
            warnings.warn(
                f"the checkpoint has {len(segments)} episodes in progress for {num_games} games; "
                "every game starts a fresh episode"
            )
            self.begin()
            return list(range(num_games))
        lengths = [len(s) for s in segments]
        total = max(lengths)
        records = self.games.reset()
        diverged = [False] * num_games
        starts = [total - n for n in lengths]
        for r in range(total + 1):
            self._reset_some(records, [i for i in range(num_games) if (r == starts[i] > 0) or (r < starts[i] and records[i].done)])
            for i in range(num_games):
                t = r - starts[i]
                if 0 <= t < lengths[i] and not diverged[i]:
                    seen = (records[i].observation, list(records[i].candidates))
                    diverged[i] = seen != (segments[i].observations[t], segments[i].candidates[t])
            self._reset_some(records, [i for i in range(num_games) if diverged[i] and records[i].done])
            if r == total:
                break
            actions = []
            for i in range(num_games):
                t = r - starts[i]
                replaying = 0 <= t < lengths[i] and not diverged[i]
                segment = segments[i]
                actions.append(segment.candidates[t][segment.actions[t]] if replaying else records[i].candidates[0])
            records = self.games.step(actions)
        for i, record in enumerate(records):
            diverged[i] = diverged[i] or _fingerprint(record) != state["current"][i]
        lost = [i for i, bad in enumerate(diverged) if bad]
        self._records, self._segments = list(records), segments
        if lost:
            warnings.warn(
                f"episodes in progress in games {lost} did not replay to their saved state (the game is not "
                "deterministic given its seed, or a valid-action search timed out); they start afresh"
            )
            for i, record in zip(lost, self.games.reset(lost)):
                self._records[i] = record
                self._segments[i] = self._new_segment(record)
        return lost


def _fingerprint(record: StepRecord | None) -> dict[str, Any] | None:
    """What a replayed record must show to count as the same state."""
    if record is None:
        return None
    return {"observation": record.observation, "candidates": list(record.candidates), "state_hash": record.state_hash}
