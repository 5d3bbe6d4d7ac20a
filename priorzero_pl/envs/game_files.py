"""Turn a user's game spec (a path or a bare name like ``zork1``) into a checked story file.

Checking the header up front means a wrong file fails here with one clear line, instead of as a
segfault or an opaque error deep inside the Frotz interpreter.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from priorzero_pl.errors import PriorZeroInputError

GAMES_DIR_ENV = "PRIORZERO_GAMES"
"""Environment variable naming the folder that bare game names are looked up in."""

STORY_SUFFIXES = (".z5", ".z8", ".z3", ".z4", ".z6", ".z7", ".z1", ".z2")
"""Z-machine story extensions, in lookup order for bare names (Jericho's suite is mostly .z5)."""

_HEADER_BYTES = 64


def resolve_game(spec: str | os.PathLike, games_dir: str | os.PathLike | None = None) -> Path:
    """Return the absolute path of a checked Z-machine story file.

    ``spec`` is either a path to a story file (a TextWorld game's ``.json`` is accepted and mapped to
    the ``.z8`` compiled next to it) or a bare name such as ``"zork1"``, looked up as
    ``<games_dir>/zork1.z5`` (or another Z-machine extension); ``games_dir`` defaults to
    ``$PRIORZERO_GAMES``. Raises :class:`PriorZeroInputError` with a one-line, actionable message.
    """
    text = os.fspath(spec)
    if not text.strip():
        raise PriorZeroInputError("game: empty game name or path; give a story file path or a name like 'zork1'")
    path = Path(text).expanduser()
    if not path.exists() and _is_bare_name(text):
        path = _find_by_name(text, games_dir)
    if path.suffix == ".json" and path.with_suffix(".z8").is_file():
        path = path.with_suffix(".z8")
    if not path.exists():
        raise PriorZeroInputError(f"game file {path} does not exist; check the path or the game name")
    if not path.is_file():
        raise PriorZeroInputError(f"game file {path} is not a file; give a .z5/.z8 story file")
    if path.suffix == ".ulx":
        raise PriorZeroInputError(f"game file {path} is a Glulx game, which Jericho cannot run; use a Z-machine story (.z5/.z8)")
    _check_z_machine(path)
    return path.resolve()


def is_textworld_game(story: Path) -> bool:
    """True for a ``tw-make`` game: a ``.z8`` with TextWorld's ``.json`` beside it.

    Same rule as TextWorld's own ``TWInform7.compatible``, so the two never disagree about which
    games get TextWorld's state tracking (score, admissible commands).
    """
    return story.suffix == ".z8" and story.with_suffix(".json").is_file()


def _is_bare_name(text: str) -> bool:
    """A name without a folder part ("zork1" or "zork1.z5"), which may live in the games folder."""
    return os.sep not in text and "/" not in text


def _find_by_name(name: str, games_dir: str | os.PathLike | None) -> Path:
    folder = games_dir if games_dir is not None else os.environ.get(GAMES_DIR_ENV)
    if folder is None and Path(name).suffix:
        return Path(name)  # a file name meant relative to the working folder: reported missing by the caller
    if folder is None:
        raise PriorZeroInputError(
            f"game '{name}' is a bare name but no games folder is set; pass games_dir or set ${GAMES_DIR_ENV}"
        )
    folder_path = Path(folder).expanduser()
    if not folder_path.is_dir():
        raise PriorZeroInputError(f"games folder {folder_path} (for game '{name}') does not exist; fix games_dir or ${GAMES_DIR_ENV}")
    if Path(name).suffix:
        return folder_path / name  # checked (and reported missing) by the caller
    for suffix in (*STORY_SUFFIXES, ".ulx"):
        candidate = folder_path / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise PriorZeroInputError(
        f"game '{name}' not found in {folder_path} (looked for {name}.z5, {name}.z8, ...); check the name or the folder"
    )


def _check_z_machine(path: Path) -> None:
    """Reject files whose header cannot be a Z-machine story (wrong version byte, addresses past the end)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES:
        raise PriorZeroInputError(f"game file {path} is not a Z-machine story ({size} bytes, shorter than a story header)")
    version = header[0]
    if not 1 <= version <= 8:
        raise PriorZeroInputError(
            f"game file {path} is not a Z-machine story (version byte {version} at offset 0, expected 1-8); give a .z5/.z8 story file"
        )
    high, _pc, dictionary, objects, globals_, static = struct.unpack(">6H", header[4:16])
    length = struct.unpack(">H", header[26:28])[0] * (2 if version <= 3 else 4 if version <= 5 else 8)
    in_file = all(0 < address < size for address in (dictionary, objects, globals_))
    if not (in_file and _HEADER_BYTES <= static <= size and high <= size and length <= size):
        raise PriorZeroInputError(
            f"game file {path} is not a valid Z-machine story (header addresses point past its {size} bytes); the file is corrupt or truncated"
        )
