"""The embedded defaults: what ``game: embedded`` and ``llm.path: embedded`` mean.

Nothing can be downloaded at run time. ``llm.path: embedded`` is the pretrained prior shipped in
this package (``pretrained_prior/``: a small Llama trained by ``priorzero pretrain-prior`` on a
walkthrough corpus of train-split TextWorld games; its ``pretraining.json`` holds the commands that
rebuild it and its held-out figures). ``game: embedded`` is a small TextWorld game with graded
rewards (``tw-simple --rewards dense``), built on first use under ``cache_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

from priorzero_pl.errors import PriorZeroInputError

EMBEDDED = "embedded"
"""The config value that selects an embedded asset instead of a path."""

DEFAULT_GAME_FAMILY = "tw-simple"
DEFAULT_GAME_SEED = 3


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$PRIORZERO_CACHE``, else ``.priorzero`` in the working directory."""
    return Path(cache_dir or os.environ.get("PRIORZERO_CACHE", ".priorzero")).resolve()


def embedded_game(cache_dir: str | os.PathLike | None = None) -> Path:
    """The default game file (built on first use, a few seconds)."""
    from priorzero_pl.envs.textworld_make import make_game

    return make_game(cache_root(cache_dir) / "games", family=DEFAULT_GAME_FAMILY, seed=DEFAULT_GAME_SEED)


PRETRAINED_PRIOR = Path(__file__).resolve().parent / "pretrained_prior"
"""The shipped pretrained prior (a Hugging Face model directory, a few MB)."""


def embedded_llm() -> Path:
    """The default LLM directory: the shipped pretrained prior."""
    if not (PRETRAINED_PRIOR / "config.json").is_file() or not (PRETRAINED_PRIOR / "model.safetensors").is_file():
        raise PriorZeroInputError(
            f"the embedded prior is missing from {PRETRAINED_PRIOR}: reinstall the package, or rebuild it with the "
            "commands in its pretraining.json (priorzero corpus ..., priorzero pretrain-prior ...)"
        )
    return PRETRAINED_PRIOR
