"""Turn a user's game spec (a path or a bare name like ``zork1``) into a checked story file.

Checking the header up front means a wrong file fails here with one clear line, instead of as a
segfault or an opaque error deep inside the Frotz interpreter. :func:`check_story` goes further,
once per run: a story can have a sound header and still be damaged, and Jericho reports no score
for a file it does not recognise, so training on it would see a reward of 0 forever.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path

from priorzero_pl.errors import PriorZeroInputError

log = logging.getLogger(__name__)

GAMES_DIR_ENV = "PRIORZERO_GAMES"
"""Environment variable naming the folder that bare game names are looked up in."""

STORY_SUFFIXES = (".z5", ".z8", ".z3", ".z4", ".z6", ".z7", ".z1", ".z2")
"""Z-machine story extensions, in lookup order for bare names (Jericho's suite is mostly .z5)."""

_HEADER_BYTES = 64

ALLOW_UNVERIFIED_KEY = "data.allow_unverified_game"
"""The config flag that accepts a story :func:`check_story` would refuse (named in its messages)."""

_warned: set[Path] = set()


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


def check_story(path: Path, *, allow_unverified: bool = False) -> None:
    """Refuse a story file that fails its own checksum or that Jericho does not recognise.

    Both are files that load and play but train on nothing: Frotz runs a damaged story until it
    hits the damage, and Jericho turns the score off for a file whose md5 is not in its table
    (a copy of ``zork1.z5`` with 1 KB cut from its end passes the header checks and plays with
    reward 0 at every step). TextWorld games are exempt from the Jericho test: TextWorld keeps
    their score. With ``allow_unverified`` the file is accepted with one logged warning per path.
    """
    problem = story_problem(path)
    if problem is None:
        return
    if not allow_unverified:
        raise PriorZeroInputError(
            f"game file {path} {problem}; restore the original story file, or set {ALLOW_UNVERIFIED_KEY}: true "
            "to train on it anyway"
        )
    if path not in _warned:
        _warned.add(path)
        log.warning("game file %s %s; training on it anyway because %s is true", path, problem, ALLOW_UNVERIFIED_KEY)


def story_problem(path: Path) -> str | None:
    """Why ``path`` (a story that passed :func:`resolve_game`) is not fit to train on, or None."""
    data = path.read_bytes()
    version = data[0]
    length = struct.unpack(">H", data[26:28])[0] * _length_unit(version)
    stored = struct.unpack(">H", data[28:30])[0]
    # Versions 1-2 (and a few early v3 releases) leave length and checksum 0: nothing to verify.
    if length and stored:
        actual = sum(data[_HEADER_BYTES:length]) & 0xFFFF
        if actual != stored:
            return (
                f"fails the Z-machine checksum (the header says 0x{stored:04x}, the story's bytes sum to "
                f"0x{actual:04x}): the file is damaged"
            )
    if is_textworld_game(path):
        return None
    from jericho import defines  # the table FrotzEnv itself looks each file's md5 up in

    md5 = hashlib.md5(data).hexdigest()
    if md5 in defines.BINDINGS_DICT:
        return None
    known = {bindings["rom"]: bindings["name"] for bindings in defines.BINDINGS_DICT.values()}
    no_score = "Jericho turns the score off for a file it does not recognise, so every reward would be 0"
    if path.name in known or path.stem in known.values():
        return f"is not the {path.stem} that Jericho knows (md5 {md5} is not in its table, e.g. a damaged copy): {no_score}"
    return f"is a game Jericho does not know (md5 {md5}): {no_score}"


def _length_unit(version: int) -> int:
    """The header's file length is stored divided by 2 (v1-3), 4 (v4-5) or 8 (v6-8)."""
    return 2 if version <= 3 else 4 if version <= 5 else 8


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
    length = struct.unpack(">H", header[26:28])[0] * _length_unit(version)
    in_file = all(0 < address < size for address in (dictionary, objects, globals_))
    if not (in_file and _HEADER_BYTES <= static <= size and high <= size and length <= size):
        raise PriorZeroInputError(
            f"game file {path} is not a valid Z-machine story (header addresses point past its {size} bytes); the file is corrupt or truncated"
        )
