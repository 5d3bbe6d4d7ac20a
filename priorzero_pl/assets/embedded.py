"""The embedded defaults: what ``game: embedded`` and ``llm.path: embedded`` mean.

Nothing can be downloaded at run time. ``llm.path: embedded`` is the pretrained prior shipped in
this package (``pretrained_prior/``: a small Llama trained by ``priorzero pretrain-prior`` on a
walkthrough corpus of train-split TextWorld games; its ``pretraining.json`` holds the commands that
rebuild it and its held-out figures). ``game: embedded`` is an unseen game of the kind the prior
was pretrained on: a ``tw-cooking`` game of the easiest level from TextWorld's *test* split, at a
seed of its own (:data:`EMBEDDED_GAME`; no corpus, test corpus or benchmark uses it), built on
first use under ``cache_dir``. Its rewards are graded (one point per recipe step), so a score says
how far the agent got.
"""

from __future__ import annotations

import os
from pathlib import Path

from priorzero_pl.corpus.spec import GameSpec
from priorzero_pl.errors import PriorZeroInputError

EMBEDDED = "embedded"
"""The config value that selects an embedded asset instead of a path."""

EMBEDDED_GAME_SEED = 80_001
"""Below the corpus seeds (100000 up), above the test corpus's (1-24) and apart from the learning
benchmark's (90001 up)."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$PRIORZERO_CACHE``, else ``.priorzero`` in the working directory."""
    return Path(cache_dir or os.environ.get("PRIORZERO_CACHE", ".priorzero")).resolve()


def embedded_game(cache_dir: str | os.PathLike | None = None) -> Path:
    """The default game file (built on first use, a few seconds)."""
    return embedded_game_spec().make(cache_root(cache_dir) / "games")


def embedded_game_spec() -> GameSpec:
    """What ``game: embedded`` is: an easiest-level test-split cooking game."""
    return GameSpec("tw-cooking", seed=EMBEDDED_GAME_SEED, split="test", options={"recipe": 1, "take": 1, "go": 1})


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
