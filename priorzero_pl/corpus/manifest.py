"""A corpus's manifest (``manifest.json``): every game, how the prompts were made, a hash of the records.

It is also the list an evaluation checks itself against: :func:`assert_not_in_corpus` refuses a
game that the corpus holds, whether it is given as a :class:`GameSpec` or as a built game file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from priorzero_pl.corpus.records import RECORDS_FILE, records_sha256
from priorzero_pl.corpus.spec import GameSpec
from priorzero_pl.errors import PriorZeroInputError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "priorzero-corpus-v1"


@dataclass
class PromptSettings:
    """How a corpus's prompts were rendered: the prior settings they match (``model.prior``)."""

    prompt_version: str
    history_len: int
    max_observation_chars: int
    use_chat_template: bool
    chat_template: str | None
    """The template the prompts were rendered with (None: the plain template)."""
    notes: int = 0
    """Older reading steps shown as notes (``model.prior.notes``; 0 before notes existed)."""


@dataclass
class GameEntry:
    """One game of a corpus, as built and played.

    Attributes:
        id: the game's file stem, which its records carry.
        spec: family, seed, split and options (``GameSpec.to_dict``).
        uuid: TextWorld's id of the generated game (None when generation failed).
        steps: walkthrough steps recorded.
        noisy_steps: steps recorded from its noise-injected expert episodes (repeats dropped).
        off_candidate_steps: of those, steps whose walkthrough command was not a candidate.
        fallback_steps: of those, steps whose candidates were ``TextGame``'s default actions.
        score, max_score, won: how the walkthrough ended.
        error: why the game could not be generated (it then has no records).
    """

    id: str
    spec: dict[str, Any]
    uuid: str | None = None
    steps: int = 0
    noisy_steps: int = 0
    off_candidate_steps: int = 0
    fallback_steps: int = 0
    score: float = 0.0
    max_score: float = 0.0
    won: bool = False
    error: str | None = None


@dataclass
class CorpusManifest:
    """Everything needed to check, reproduce and compare a corpus."""

    split: str
    seed_start: int
    seed_end: int
    family_weights: dict[str, float]
    cooking_options: dict[str, Any] | None
    prompt: PromptSettings
    split_rule: dict[str, Any]
    noisy_episodes: int = 0
    """Noise-injected expert episodes per game (:mod:`~priorzero_pl.corpus.noisy_expert`)."""
    noise: float = 0.0
    """Their chance of a random step."""
    games: list[GameEntry] = field(default_factory=list)
    num_records: int = 0
    records_sha256: str = ""
    command: str = ""
    """The command line that rebuilds this corpus."""
    format: str = MANIFEST_FORMAT

    def built_games(self) -> list[GameEntry]:
        """The games that were generated (and so have records)."""
        return [g for g in self.games if g.error is None]

    def save(self, corpus_dir: Path) -> Path:
        """Write ``manifest.json`` atomically (temp file + rename)."""
        path = Path(corpus_dir) / MANIFEST_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> CorpusManifest:
        """Read a manifest from a corpus directory or a ``manifest.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILE
        if not path.is_file():
            raise PriorZeroInputError(f"no corpus manifest at {path}: build a corpus with `priorzero corpus --out DIR`")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != MANIFEST_FORMAT:
                raise PriorZeroInputError(
                    f"{path} has format {data.get('format')!r}, expected {MANIFEST_FORMAT!r}: rebuild the corpus"
                )
            data["prompt"] = PromptSettings(**data["prompt"])
            data["games"] = [GameEntry(**g) for g in data["games"]]
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise PriorZeroInputError(f"{path} is not a corpus manifest ({type(exc).__name__}: {exc}): rebuild the corpus") from exc


def verify_records(corpus_dir: Path, manifest: CorpusManifest) -> None:
    """Fail unless ``records.jsonl`` is the file the manifest describes (same SHA-256)."""
    actual = records_sha256(Path(corpus_dir) / RECORDS_FILE)
    if actual != manifest.records_sha256:
        raise PriorZeroInputError(
            f"{Path(corpus_dir) / RECORDS_FILE} has SHA-256 {actual[:12]}..., its manifest lists "
            f"{manifest.records_sha256[:12]}...: the records were changed or the build was interrupted; rebuild the corpus"
        )


def games_in_manifest(manifest: CorpusManifest) -> tuple[set[tuple[Any, ...]], set[str]]:
    """The keys (:meth:`GameSpec.key`) and TextWorld uuids of every game the corpus lists."""
    keys = {GameSpec.from_dict(g.spec).key() for g in manifest.games}
    uuids = {g.uuid for g in manifest.games if g.uuid}
    return keys, uuids


def game_uuid(game_file: Path) -> str:
    """TextWorld's id of a built game, read from the ``.json`` next to its ``.z8``."""
    meta = Path(game_file).with_suffix(".json")
    if not meta.is_file():
        raise PriorZeroInputError(f"{game_file} has no {meta.name} next to it: only tw-make games can be checked against a corpus")
    try:
        return str(json.loads(meta.read_text())["metadata"]["uuid"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PriorZeroInputError(f"{meta} carries no TextWorld uuid ({exc}): rebuild the game with tw-make") from exc


def assert_not_in_corpus(game: GameSpec | str | os.PathLike[str], manifest: CorpusManifest) -> None:
    """Raise :class:`PriorZeroInputError` when ``game`` (a spec, or a built ``.z8``) is a game of the corpus.

    A spec is compared by family, seed and settings; a file by the uuid TextWorld wrote into it,
    which identifies the generated game whatever the request that built it.
    """
    keys, uuids = games_in_manifest(manifest)
    if isinstance(game, GameSpec):
        if game.key() in keys:
            raise PriorZeroInputError(f"evaluation game {game.to_dict()} is a corpus game: evaluate on a game the prior never saw")
        return
    uuid = game_uuid(Path(game))
    if uuid in uuids:
        raise PriorZeroInputError(f"evaluation game {game} (uuid {uuid}) is a corpus game: evaluate on a game the prior never saw")


def assert_disjoint(evaluation: CorpusManifest, corpus: CorpusManifest) -> None:
    """Raise unless no game of the ``evaluation`` manifest is a game of ``corpus`` (by settings or uuid)."""
    _, uuids = games_in_manifest(corpus)
    for entry in evaluation.games:
        assert_not_in_corpus(GameSpec.from_dict(entry.spec), corpus)
        if entry.uuid and entry.uuid in uuids:
            raise PriorZeroInputError(f"evaluation game {entry.id} (uuid {entry.uuid}) is a corpus game: evaluate on unseen games")
