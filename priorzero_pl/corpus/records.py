"""One step of a played walkthrough, as stored in a corpus (``records.jsonl``), and its file format.

Each line is one :class:`CorpusStep`, keys sorted, so that a corpus built twice from the same seed
is the same bytes and its hash (in the manifest) says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import HistoryStep, Note

RECORDS_FILE = "records.jsonl"


@dataclass
class CorpusStep:
    """What the agent saw at one step of an expert's episode, and what the expert did there.

    Attributes:
        game: the manifest id of the game (its file stem).
        step: index of the step in its episode (0 = after reset).
        history: the recent past steps the prompt shows, oldest first, each ``[observation, action, reward]``.
        observation: the game's text at this step, as ``TextGame`` returned it.
        candidates: ``[A]`` the valid actions ``TextGame`` offered (sorted, what the agent chooses from).
        action: the expert's command: the walkthrough's (episode 0), else the first of TextWorld's
            winning plan from this state.
        action_index: its index in ``candidates``, or -1 when the walkthrough's command is not among
            them (TextWorld's walkthroughs sometimes repeat a no-op such as opening an open door):
            such steps are played and kept in the history but never scored.
        reward: what the command played at this step earned (the score change).
        prompt: the prior's prompt for this step, exactly as :class:`PromptBuilder` built it.
        episode: 0 for the walkthrough, n >= 1 for the n-th noise-injected expert episode.
        played: the command sent instead of ``action`` when the noise replaced it (None: ``action``
            was played); it is what the next steps' history shows.
        notes: the older reading steps the prompt shows as notes, oldest first, each
            ``[action, text]`` (:meth:`PromptBuilder.visible`).
    """

    game: str
    step: int
    history: list[list[object]]
    observation: str
    candidates: list[str]
    action: str
    action_index: int
    reward: float
    prompt: str
    episode: int = 0
    played: str | None = None
    notes: list[list[str]] = field(default_factory=list)

    @property
    def scorable(self) -> bool:
        """Whether the walkthrough's action is one of the candidates (only then it has a rank)."""
        return self.action_index >= 0

    def history_steps(self) -> list[HistoryStep]:
        """``history`` as the prompt builder's :class:`HistoryStep` s."""
        return [HistoryStep(str(o), str(a), float(r)) for o, a, r in self.history]  # type: ignore[arg-type]

    def note_list(self) -> list[Note]:
        """``notes`` as the prompt builder's :class:`Note` s."""
        return [Note(str(action), str(text)) for action, text in self.notes]


def to_line(step: CorpusStep) -> str:
    """One canonical JSON line (sorted keys, no spaces that could vary)."""
    return json.dumps(asdict(step), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def write_records(path: Path, steps: Iterable[CorpusStep]) -> str:
    """Write ``steps`` as JSON lines; returns the SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for step in steps:
            line = to_line(step) + "\n"
            digest.update(line.encode("utf-8"))
            handle.write(line)
    return digest.hexdigest()


def read_records(path: Path) -> Iterator[CorpusStep]:
    """The steps of a records file, in order."""
    if not path.is_file():
        raise PriorZeroInputError(f"corpus records {path} not found: build the corpus with `priorzero corpus --out DIR`")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield CorpusStep(**json.loads(line))
            except (json.JSONDecodeError, TypeError) as exc:
                raise PriorZeroInputError(f"{path} line {number} is not a corpus step ({exc}): rebuild the corpus") from exc


def records_sha256(path: Path) -> str:
    """SHA-256 of a records file, to compare with the one its manifest lists."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
