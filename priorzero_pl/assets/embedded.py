"""The embedded default: what ``game: embedded`` and ``llm_path: embedded`` build, locally and once.

Nothing can be downloaded at run time, so the default run builds a tiny causal LM (tokenizer trained
here, saved and loaded back through ``from_pretrained``) and a small TextWorld game with graded
rewards (``tw-simple --rewards dense``), cached under ``cache_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def embedded_llm(cache_dir: str | os.PathLike | None = None) -> Path:
    """The default LLM directory (built on first use, a few seconds)."""
    from priorzero_pl.assets.tiny_lm import build_tiny_lm

    return build_tiny_lm(cache_root(cache_dir) / "tiny_lm")
