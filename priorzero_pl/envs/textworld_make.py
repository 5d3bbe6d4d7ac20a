"""Build a small TextWorld game offline with ``tw-make`` (seeded, cached on disk).

The default runs need a game without downloads; TextWorld ships its Inform compiler, and families
with graded rewards make the score say how far an agent got. CLI:
``python -m priorzero_pl.envs.textworld_make --out DIR --family tw-simple --seed 3`` prints the path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

from priorzero_pl.errors import PriorZeroInputError

FAMILY_DEFAULTS: dict[str, dict[str, object]] = {
    "tw-simple": {"rewards": "dense", "goal": "detailed"},
    "tw-cooking": {"recipe": 2, "take": 2, "go": 6},
    "tw-coin_collector": {"level": 1},
    "tw-treasure_hunter": {"level": 1},
    "custom": {"world_size": 3, "nb_objects": 8, "quest_length": 4},
}
"""Families with graded rewards and the ``tw-make`` options each gets unless overridden."""

_TEXTWORLD_FILES = (".json", ".ni", ".z8")
"""What ``tw-make`` writes; the ``.z8`` is moved into place last, so its presence means complete."""


def make_game(
    out_dir: Path, family: str = "tw-simple", seed: int = 3, *, in_process: bool = False, **options: object
) -> Path:
    """Return the ``.z8`` of a TextWorld game built by ``tw-make``, building it only if not on disk.

    ``options`` override the family's defaults and become ``tw-make`` flags (``quest_length=5`` ->
    ``--quest-length 5``; ``True`` -> a bare flag). The file name carries the family, the seed and a
    hash of the options, so different requests never share a file. ``in_process`` runs tw-make's
    own steps in this interpreter instead of a ``tw-make`` process: the same game from the same
    flags, without paying TextWorld's import (about 3 s) for every game of a corpus.
    """
    settings = tw_make_settings(family, options)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PriorZeroInputError(f"TextWorld game seed={seed!r}: must be an integer >= 0")
    digest = hashlib.sha1(json.dumps([family, seed, sorted(settings.items())], default=str).encode()).hexdigest()[:8]
    out = Path(out_dir).expanduser()
    game = out / f"{family}-seed{seed}-{digest}.z8"
    if game.is_file() and game.with_suffix(".json").is_file():
        return game.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Built in a scratch folder and moved in, so an interrupted or concurrent build never leaves half a game.
    with tempfile.TemporaryDirectory(dir=out, prefix=".tw-make-") as scratch:
        built = Path(scratch) / game.name
        if in_process and family != "custom":
            error = _build_in_process(family, settings, seed, built)
        else:
            command = [*_tw_make_command(), family, *_flags(settings), "--seed", str(seed), "--output", str(built), "--silent", "-f"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            error = None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["no output"])[-1]
        if error is not None or not built.is_file():
            raise PriorZeroInputError(f"tw-make {family} (seed {seed}, options {settings}) failed: {error or 'no game written'}")
        for suffix in _TEXTWORLD_FILES:
            if built.with_suffix(suffix).is_file():
                os.replace(built.with_suffix(suffix), game.with_suffix(suffix))
    return game.resolve()


def tw_make_settings(family: str, options: dict[str, object]) -> dict[str, object]:
    """The settings a request builds with: the family's defaults, overridden by ``options``."""
    if family not in FAMILY_DEFAULTS:
        raise PriorZeroInputError(f"TextWorld family '{family}' is not supported; use one of {sorted(FAMILY_DEFAULTS)}")
    return {**FAMILY_DEFAULTS[family], **options}


def _build_in_process(family: str, settings: dict[str, object], seed: int, built: Path) -> str | None:
    """What ``tw-make FAMILY FLAGS --seed SEED --output BUILT`` does for a challenge, in this process;
    the error's last line, or None. The settings go through the challenge's own argument parser,
    so the generator sees exactly the values (defaults included) that ``tw-make`` would give it."""
    import textworld
    import textworld.challenges
    from jericho.jericho import UnsupportedGameWarning
    from textworld.generator import compile_game

    _, make, add_arguments = textworld.challenges.CHALLENGES[family]
    parser = argparse.ArgumentParser(prog=f"tw-make {family}", add_help=False, exit_on_error=False)
    add_arguments(parser)
    try:
        parsed = vars(parser.parse_args(_flags(settings)))
    except (argparse.ArgumentError, SystemExit) as exc:  # SystemExit: a required flag is missing
        return str(exc) or "bad options"
    options = textworld.GameOptions()
    options.seeds = seed
    options.path = str(built)
    options.file_ext = built.suffix
    options.force_recompile = True
    try:
        with warnings.catch_warnings():
            # TextWorld checks the walkthrough by playing the game in Jericho, which warns that a
            # TextWorld build is not one of its supported stories (tw-make's own run hides it too).
            warnings.simplefilter("ignore", UnsupportedGameWarning)
            compile_game(make(settings=parsed, options=options), options)
    except Exception as exc:  # noqa: BLE001 - any generator failure (no quest fits the map, ...) is the request's
        return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return None


def _tw_make_command() -> list[str]:
    """``tw-make`` next to this interpreter (the same environment), else the one on PATH."""
    script = Path(sys.executable).parent / "tw-make"
    if script.is_file():
        return [sys.executable, str(script)]
    found = shutil.which("tw-make")
    if found is None:
        raise PriorZeroInputError("tw-make not found: install TextWorld (pip install textworld) in this environment")
    return [found]


def _flags(settings: dict[str, object]) -> list[str]:
    flags: list[str] = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, str(value)]
    return flags


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: build (or find) a game and print its path."""
    parser = argparse.ArgumentParser(description="Build a small TextWorld game offline (cached).")
    parser.add_argument("--out", type=Path, required=True, help="folder for the game files")
    parser.add_argument("--family", default="tw-simple", choices=sorted(FAMILY_DEFAULTS))
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra tw-make option, e.g. --option quest_length=5 (repeatable)")
    args = parser.parse_args(argv)
    options: dict[str, object] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--option {item!r}: expected KEY=VALUE")
        options[key] = value
    try:
        print(make_game(args.out, family=args.family, seed=args.seed, **options))
    except PriorZeroInputError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
