"""One state's valid-action search, cut into chunks that any worker can test in any order.

Jericho's search (``FrotzEnv.get_valid_actions``) is: name the objects in reach, fill the game's
grammar templates with them (the candidates), test every candidate by a step from the state (valid
if it changes the world or the score), group the valid ones by the world change they cause, and
keep one per group (the verb most used in ClubFloyd transcripts; the first one on ties). A
:class:`SearchJob` holds that search after the naming: which candidates are tested and how each
came out. Because every test starts from the same state, the outcome of a candidate does not
depend on which chunk or worker tested it, and :meth:`SearchJob.actions` merges results in the
candidates' order, so the answer is Jericho's whatever the schedule. That is what lets a search
run on several workers, stop at a deadline, and resume on the state's next visit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from jericho.util import verb_usage_count

CHUNK_SIZE = 48
"""Candidates per work unit: 2-50 ms of stepping on the shared games; a killed worker loses one."""


@dataclass
class SearchJob:
    """The search of one game state: its candidates, what is left to test, and the valid ones found.

    ``candidates`` is None until the object-naming step has run; ``objects`` holds the names each
    candidate was filled with. ``pending`` holds chunks of candidate indices not yet tested;
    ``in_flight`` counts chunks handed to workers and not yet answered. ``valid`` maps a candidate
    index to the world change (diff bytes) it causes. A chunk whose worker hung or died is split
    in two and retried; a single candidate that does so twice is left out (``dropped``).

    The order only matters to a search cut short by its deadline, which should have the likeliest
    actions by then: candidates with at most one object go first (a tenth of the work, most of the
    valid actions); the two-object ones (nine tenths) are queued once those are done, those whose
    objects took part in a valid one-object action first ("active": carried, takeable, usable),
    and among equals those whose verb players use most (Jericho's ClubFloyd verb counts).
    """

    key: str
    state: tuple
    candidates: list[str] | None = None
    objects: list[tuple[str, ...]] = field(default_factory=list)
    pending: deque[list[int]] = field(default_factory=deque)
    in_flight: int = 0
    valid: dict[int, bytes] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)
    naming_failures: int = 0
    chunk_size: int = CHUNK_SIZE
    _pairs: list[int] = field(default_factory=list, init=False, repr=False)
    """Two-object candidates not yet queued (they wait for the one-object results)."""

    def set_candidates(self, candidates: list[str], objects: list[tuple[str, ...]]) -> None:
        """Record the candidates (Jericho's order) with their objects and queue the one-object ones."""
        self.candidates = list(candidates)
        self.objects = [tuple(names) for names in objects]
        few = sorted((i for i, names in enumerate(self.objects) if len(names) < 2), key=lambda i: (len(self.objects[i]), i))
        self._pairs = [i for i, names in enumerate(self.objects) if len(names) >= 2]
        self.pending = deque(self._chunks(few))
        self._queue_pairs_when_ready()

    @property
    def complete(self) -> bool:
        """Every candidate has been tested (or dropped)."""
        return self.candidates is not None and not self.pending and not self._pairs and self.in_flight == 0

    def take(self) -> list[int]:
        """The next chunk to hand to a worker."""
        self.in_flight += 1
        return self.pending.popleft()

    def record(self, valid: list[tuple[int, bytes]]) -> None:
        """Store one tested chunk's valid candidates as (candidate index, diff) pairs."""
        self.in_flight -= 1
        self.valid.update(valid)
        self._queue_pairs_when_ready()

    def retry(self, chunk: list[int]) -> None:
        """A chunk's worker hung or died: split it and queue the halves, or drop a lone repeat offender."""
        self.in_flight -= 1
        if len(chunk) > 1:
            half = len(chunk) // 2
            self.pending.extendleft([chunk[half:], chunk[:half]])
            return
        index = chunk[0]
        self.failures[index] = self.failures.get(index, 0) + 1
        if self.failures[index] >= 2:
            self.dropped.append(index)
            self._queue_pairs_when_ready()
        else:
            self.pending.appendleft(chunk)

    def _chunks(self, order: list[int]) -> list[list[int]]:
        return [order[i:i + self.chunk_size] for i in range(0, len(order), self.chunk_size)]

    def _queue_pairs_when_ready(self) -> None:
        """Once every one-object candidate is tested, queue the two-object ones, active objects first."""
        if not self._pairs or self.pending or self.in_flight:
            return
        active = {self.objects[i][0] for i in self.valid if len(self.objects[i]) == 1}

        def rank(index: int) -> tuple[int, int, int]:
            first, second = self.objects[index][:2]
            return 2 * (first not in active) + (second not in active), -verb_usage_count(self.candidates[index]), index

        self.pending.extend(self._chunks(sorted(self._pairs, key=rank)))
        self._pairs = []

    def actions(self) -> list[str]:
        """One action per distinct world change found so far: Jericho's answer once ``complete``."""
        assert self.candidates is not None
        groups: dict[bytes, list[str]] = {}
        for index in sorted(self.valid):
            groups.setdefault(self.valid[index], []).append(self.candidates[index])
        return [max(group, key=verb_usage_count) for group in groups.values()]
