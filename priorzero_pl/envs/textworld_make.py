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
from pathlib import Path
from typing import Sequence

from priorzero_pl.errors import PriorZeroInputError

FAMILY_DEFAULTS: dict[str, dict[str, object]] = {
    "tw-simple": {"rewards": "dense", "goal": "detailed"},
    "tw-cooking": {"recipe": 2, "take": 2, "go": 6},
    "custom": {"world_size": 3, "nb_objects": 8, "quest_length": 4},
}
"""Families with graded rewards and the ``tw-make`` options each gets unless overridden."""

_TEXTWORLD_FILES = (".json", ".ni", ".z8")
"""What ``tw-make`` writes; the ``.z8`` is moved into place last, so its presence means complete."""


def make_game(out_dir: Path, family: str = "tw-simple", seed: int = 3, **options: object) -> Path:
    """Return the ``.z8`` of a TextWorld game built by ``tw-make``, building it only if not on disk.

    ``options`` override the family's defaults and become ``tw-make`` flags (``quest_length=5`` ->
    ``--quest-length 5``; ``True`` -> a bare flag). The file name carries the family, the seed and a
    hash of the options, so different requests never share a file.
    """
    if family not in FAMILY_DEFAULTS:
        raise PriorZeroInputError(f"TextWorld family '{family}' is not supported; use one of {sorted(FAMILY_DEFAULTS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PriorZeroInputError(f"TextWorld game seed={seed!r}: must be an integer >= 0")
    settings = {**FAMILY_DEFAULTS[family], **options}
    digest = hashlib.sha1(json.dumps([family, seed, sorted(settings.items())], default=str).encode()).hexdigest()[:8]
    out = Path(out_dir).expanduser()
    game = out / f"{family}-seed{seed}-{digest}.z8"
    if game.is_file() and game.with_suffix(".json").is_file():
        return game.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Built in a scratch folder and moved in, so an interrupted or concurrent build never leaves half a game.
    with tempfile.TemporaryDirectory(dir=out, prefix=".tw-make-") as scratch:
        built = Path(scratch) / game.name
        command = [*_tw_make_command(), family, *_flags(settings), "--seed", str(seed), "--output", str(built), "--silent", "-f"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not built.is_file():
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise PriorZeroInputError(f"tw-make {family} (seed {seed}, options {settings}) failed: {last_line}")
        for suffix in _TEXTWORLD_FILES:
            if built.with_suffix(suffix).is_file():
                os.replace(built.with_suffix(suffix), game.with_suffix(suffix))
    return game.resolve()


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
