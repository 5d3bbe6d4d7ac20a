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

    ``candidates`` is None until the object-naming step has run. ``pending`` holds chunks of
    candidate indices not yet tested, fewest template holes first (those are cheap and most often
    valid, so a search cut short by its deadline has the likeliest actions); ``in_flight`` counts
    chunks handed to workers and not yet answered. ``valid`` maps a
    candidate index to the world change (diff bytes) it causes. A chunk whose worker hung or died
    is split in two and retried; a single candidate that does so twice is left out (``dropped``).
    """

    key: str
    state: tuple
    candidates: list[str] | None = None
    pending: deque[list[int]] = field(default_factory=deque)
    in_flight: int = 0
    valid: dict[int, bytes] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)
    naming_failures: int = 0

    def set_candidates(self, candidates: list[str], holes: list[int], chunk_size: int = CHUNK_SIZE) -> None:
        """Record the candidates (Jericho's order) and queue them, fewest ``holes`` (objects) first."""
        self.candidates = list(candidates)
        order = sorted(range(len(candidates)), key=lambda i: (holes[i], i))
        self.pending = deque(order[i:i + chunk_size] for i in range(0, len(order), chunk_size))

    @property
    def complete(self) -> bool:
        """Every candidate has been tested (or dropped)."""
        return self.candidates is not None and not self.pending and self.in_flight == 0

    def take(self) -> list[int]:
        """The next chunk to hand to a worker."""
        self.in_flight += 1
        return self.pending.popleft()

    def record(self, valid: list[tuple[int, bytes]]) -> None:
        """Store one tested chunk's valid candidates as (candidate index, diff) pairs."""
        self.in_flight -= 1
        self.valid.update(valid)

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
        else:
            self.pending.appendleft(chunk)

    def actions(self) -> list[str]:
        """One action per distinct world change found so far: Jericho's answer once ``complete``."""
        assert self.candidates is not None
        groups: dict[bytes, list[str]] = {}
        for index in sorted(self.valid):
            groups.setdefault(self.valid[index], []).append(self.candidates[index])
        return [max(group, key=verb_usage_count) for group in groups.values()]
