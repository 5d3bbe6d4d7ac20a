"""Walkthrough corpora: TextWorld games generated offline, their walkthroughs played through
``TextGame`` and stored as prompt-format steps, with a manifest that keeps evaluation games out."""

from priorzero_pl.corpus.build import build_corpus
from priorzero_pl.corpus.manifest import (
    CorpusManifest,
    GameEntry,
    PromptSettings,
    assert_not_in_corpus,
    games_in_manifest,
    verify_records,
)
from priorzero_pl.corpus.plan import CorpusPlan
from priorzero_pl.corpus.records import CorpusStep, read_records
from priorzero_pl.corpus.spec import TRAIN_SEED_START, GameSpec

__all__ = [
    "TRAIN_SEED_START",
    "CorpusManifest",
    "CorpusPlan",
    "CorpusStep",
    "GameEntry",
    "GameSpec",
    "PromptSettings",
    "assert_not_in_corpus",
    "build_corpus",
    "games_in_manifest",
    "read_records",
    "verify_records",
]
