"""Where a training step's wall time goes: seconds per named stage, cheap enough to leave on.

A fit interleaves collection (env steps, valid actions, prior scoring, search) and learning
(forward, backward, optimizer) in one process; when it is slow, the first question is which of
them to look at. :class:`StageTimer` answers it: code wraps a stage in ``with timer.stage(name)``
(or reports seconds it measured itself with :meth:`StageTimer.add`), and whoever logs calls
:meth:`StageTimer.pop` at its cadence for the totals since the last call.

It costs two ``time.perf_counter`` calls and a few dict updates per stage (about a microsecond),
so it stays on in every fit. There is no global timer: the object that logs owns one
(``PriorZeroModule.stage_timer``) and hands it to what it times (the collecting agent, the
data module's games), so that two fits in one process never mix their figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType
from typing import Any, Sequence

import torch

from priorzero_pl.mcts.types import ModelOutput

STAGES: dict[str, str] = {
    "env_step": "the EnvPool's step and reset, as the learner waits for them, less valid_actions",
    "valid_actions": "the valid-action search inside the env workers' step (the slowest worker's)",
    "prior": "the LLM prior scoring the candidates (the collecting agent's backend call)",
    "search_model": "the world model's calls inside the search",
    "search_tree": "the rest of the search: selection, expansion, backup, root noise",
    "collect_other": "the rest of collection: prompts, episode records, buffer writes, pool start-up",
    "replay_sample": "sampling the training batch from the replay buffer",
    "forward": "the training step's losses (training_step)",
    "backward": "backward (on_before_backward to on_after_backward)",
    "optimizer": "gradient clipping and the optimizer step",
    "evaluation": "Lightning's validation loop (greedy evaluation episodes)",
    "logging_callbacks": "the rest of the step: logging, gradient norms, callbacks, Lightning's loop",
}
"""The stages of a training step, disjoint, with what each holds; their seconds add up to the
step's wall time (``logging_callbacks`` is the remainder)."""


@dataclass
class StageTotals:
    """What a :class:`StageTimer` measured since it was last popped.

    Attributes:
        seconds: wall seconds per stage.
        calls: times each stage was entered (or added).
        items: work items per stage, where a stage counts them (prior candidates scored, search
            simulations run), for rates such as candidates per second.
        wall: wall seconds since the timer was last reset or popped: the window the stages lie in.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0

    def merge(self, other: StageTotals) -> None:
        """Add ``other`` (a later window) to these totals."""
        for mine, theirs in ((self.seconds, other.seconds), (self.calls, other.calls), (self.items, other.items)):
            for name, value in theirs.items():
                mine[name] = mine.get(name, 0) + value
        self.wall += other.wall

    def rate(self, items_of: str, *stages: str) -> float:
        """Items of stage ``items_of`` per second spent in ``stages`` (default: that stage); 0 when
        no time was spent."""
        spent = sum(self.seconds.get(s, 0.0) for s in (stages or (items_of,)))
        return self.items.get(items_of, 0) / spent if spent > 0 else 0.0


class _Stage:
    """The context manager :meth:`StageTimer.stage` returns (a class: cheaper than a generator)."""

    __slots__ = ("_timer", "_name", "_items", "_start")

    def __init__(self, timer: StageTimer, name: str, items: int) -> None:
        self._timer, self._name, self._items, self._start = timer, name, items, 0.0

    def __enter__(self) -> _Stage:
        self._start = perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.add(self._name, perf_counter() - self._start, items=self._items)


class StageTimer:
    """Accumulates wall seconds, calls and items per named stage until :meth:`pop`.

    Stages are meant to be disjoint (no stage timed inside another), so that their seconds add up
    to the wall time they cover; where one stage holds another (search holds the world model's
    calls), the caller adds the inner seconds and the outer stage's remainder under two names.
    """

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._calls: dict[str, int] = {}
        self._items: dict[str, int] = {}
        self._since = perf_counter()

    def stage(self, name: str, items: int = 0) -> _Stage:
        """``with timer.stage("prior", items=n): ...`` adds the block's wall seconds to ``name``
        (also when it raises), with ``items`` units of work done in it."""
        return _Stage(self, name, items)

    def add(self, name: str, seconds: float, *, items: int = 0, calls: int = 1) -> None:
        """Add seconds measured elsewhere (a worker process, or a span across two hooks)."""
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds
        self._calls[name] = self._calls.get(name, 0) + calls
        if items:
            self._items[name] = self._items.get(name, 0) + items

    def seconds(self, name: str) -> float:
        """Seconds accumulated so far in ``name`` (since the last pop)."""
        return self._seconds.get(name, 0.0)

    def total(self, names: Sequence[str] | None = None) -> float:
        """Seconds accumulated so far in ``names`` (all stages when None)."""
        if names is None:
            return sum(self._seconds.values())
        return sum(self._seconds.get(n, 0.0) for n in names)

    def reset(self) -> None:
        """Drop everything measured and start a new window now."""
        self._seconds, self._calls, self._items = {}, {}, {}
        self._since = perf_counter()

    def pop(self, remainder: str | None = None) -> StageTotals:
        """The totals since the last pop (or reset), and start a new window. ``remainder``: a stage
        that gets the window's wall seconds no stage accounted for (so the stages add up)."""
        now = perf_counter()
        if remainder is not None:
            self.add(remainder, max(0.0, now - self._since - self.total()))
        totals = StageTotals(dict(self._seconds), dict(self._calls), dict(self._items), wall=now - self._since)
        self._seconds, self._calls, self._items = {}, {}, {}
        self._since = now
        return totals


class TimedSearchModel:
    """A :class:`~priorzero_pl.mcts.types.SearchModel` that counts the seconds its world model's
    calls take, so that a search's wall time splits into model calls and tree work (selection,
    backup, noise) without touching the search itself. ``seconds`` and ``calls`` are this
    proxy's own (one proxy per search)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.seconds = 0.0
        self.calls = 0

    def initial_inference(self, observations: Sequence[str], candidates: Sequence[Sequence[str]]) -> tuple[ModelOutput, object]:
        start = perf_counter()
        try:
            return self.model.initial_inference(observations, candidates)
        finally:
            self.seconds += perf_counter() - start
            self.calls += 1

    def recurrent_inference(self, latent: torch.Tensor, actions: torch.Tensor, context: object) -> ModelOutput:
        start = perf_counter()
        try:
            return self.model.recurrent_inference(latent, actions, context)
        finally:
            self.seconds += perf_counter() - start
            self.calls += 1


def perf_metrics(totals: StageTotals, steps: int) -> dict[str, float]:
    """What the module logs under ``perf/`` for a window of ``steps`` training steps: seconds per
    step of every stage in :data:`STAGES`, env steps and training steps per wall second, prior
    candidates per second of prior scoring, simulations per second of search."""
    out = {f"{name}_seconds_per_step": totals.seconds.get(name, 0.0) / max(steps, 1) for name in STAGES}
    wall = totals.wall
    out["env_steps_per_s"] = totals.items.get("env_step", 0) / wall if wall > 0 else 0.0
    out["train_steps_per_s"] = steps / wall if wall > 0 else 0.0
    out["prior_candidates_per_s"] = totals.rate("prior")
    out["search_simulations_per_s"] = totals.rate("search_tree", "search_model", "search_tree")
    return out


def stage_fractions(totals: StageTotals) -> dict[str, float]:
    """Each stage's share of the window's wall time (they add up to about 1)."""
    wall = totals.wall
    return {name: (totals.seconds.get(name, 0.0) / wall if wall > 0 else 0.0) for name in STAGES}
