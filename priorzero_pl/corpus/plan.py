"""Which games a corpus holds: a deterministic draw of families and difficulty settings.

Game ``i`` of a corpus gets seed ``seed_start + i``; its family and difficulty are drawn from a
generator seeded with that same seed, so the list follows from the plan's fields alone and a
smaller corpus is a prefix of a larger one with the same start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from priorzero_pl.corpus.spec import CORPUS_FAMILIES, TRAIN_SEED_START, GameSpec, Split
from priorzero_pl.errors import PriorZeroInputError

DEFAULT_FAMILY_WEIGHTS: dict[str, float] = {
    "tw-cooking": 0.7,
    "tw-simple": 0.1,
    "tw-coin_collector": 0.1,
    "tw-treasure_hunter": 0.1,
}
"""Cooking games dominate: they are the benchmark's games and the richest walkthroughs."""

COOKING_OPTIONS = ("recipe", "take", "go", "open", "cut", "cook", "drop")
"""tw-make's tw-cooking difficulty settings (``split`` is the plan's own)."""
COOKING_GO = (1, 6, 9, 12)
COIN_COLLECTOR_LEVELS = (1, 3, 5, 10, 103, 105, 205)
"""Quest lengths 1-10, then with dead-end and randomly placed distractor rooms."""
TREASURE_HUNTER_LEVELS = (1, 5, 10, 15, 20, 25)
"""Easy (open rooms), medium (closed doors and containers), hard (locked, keys carried)."""
SIMPLE_REWARDS = ("dense", "balanced", "sparse")
SIMPLE_GOALS = ("detailed", "brief", "none")


def default_seed_start(split: Split) -> int:
    """Corpus games start at :data:`TRAIN_SEED_START`, evaluation games at 1."""
    return TRAIN_SEED_START if split == "train" else 1


@dataclass
class CorpusPlan:
    """The games of one corpus.

    Attributes:
        split: ``train`` for a pretraining corpus, ``test`` for unseen evaluation games.
        num_games: how many games are drawn (failed generations count, and are listed as such).
        seed_start: seed of game 0 (game ``i`` has seed ``seed_start + i``, which also draws its
            family and difficulty).
        family_weights: relative frequency of each family.
        cooking_options: one fixed ``tw-cooking`` difficulty (e.g. ``{"recipe": 1, "take": 1, "go": 1}``)
            instead of a draw across the range: a corpus of one level.
    """

    split: Split = "train"
    num_games: int = 160
    seed_start: int | None = None
    family_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAMILY_WEIGHTS))
    cooking_options: dict[str, object] | None = None

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise PriorZeroInputError(f"corpus split '{self.split}' must be 'train' or 'test'")
        if self.num_games < 1:
            raise PriorZeroInputError(f"corpus num_games must be >= 1, got {self.num_games}")
        if self.seed_start is None:
            self.seed_start = default_seed_start(self.split)
        unknown = sorted(set(self.family_weights) - set(CORPUS_FAMILIES))
        if unknown:
            raise PriorZeroInputError(f"corpus families {unknown} unknown: choose from {list(CORPUS_FAMILIES)}")
        if not self.family_weights or any(w < 0 for w in self.family_weights.values()) or sum(self.family_weights.values()) <= 0:
            raise PriorZeroInputError(f"corpus family weights {self.family_weights} must be >= 0 and not all 0")
        unknown = sorted(set(self.cooking_options or {}) - set(COOKING_OPTIONS))
        if unknown:
            raise PriorZeroInputError(f"cooking options {unknown} unknown: choose from {list(COOKING_OPTIONS)}")
        # Checks the whole seed range against the split's reserved seeds, with GameSpec's message.
        for seed in (self.seed_start, self.seed_start + self.num_games - 1):
            GameSpec(family=CORPUS_FAMILIES[0], seed=seed, split=self.split)

    @property
    def seed_range(self) -> tuple[int, int]:
        """First and last seed, both included."""
        assert self.seed_start is not None
        return self.seed_start, self.seed_start + self.num_games - 1

    def games(self) -> list[GameSpec]:
        """The corpus's games, in order."""
        assert self.seed_start is not None
        families = list(self.family_weights)
        weights = np.array([self.family_weights[f] for f in families], dtype=np.float64)
        games = []
        for seed in range(self.seed_start, self.seed_start + self.num_games):
            # One generator per game: game i is the same in every corpus that has one, whatever its size.
            rng = np.random.default_rng(seed)
            family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
            fixed = family == "tw-cooking" and self.cooking_options is not None
            options = dict(self.cooking_options or {}) if fixed else _draw_options(family, rng)
            games.append(GameSpec(family=family, seed=seed, split=self.split, options=options))
        return games


def _draw_options(family: str, rng: np.random.Generator) -> dict[str, object]:
    """Difficulty settings across the family's range."""
    if family == "tw-cooking":
        recipe = int(rng.integers(1, 4))
        return {
            "recipe": recipe,
            "take": int(rng.integers(1, recipe + 1)),
            "go": int(rng.choice(COOKING_GO)),
            "open": bool(rng.random() < 0.5),
            "cut": bool(rng.random() < 0.5),
            "cook": bool(rng.random() < 0.5),
        }
    if family == "tw-simple":
        return {"rewards": str(rng.choice(SIMPLE_REWARDS)), "goal": str(rng.choice(SIMPLE_GOALS))}
    if family == "tw-coin_collector":
        return {"level": int(rng.choice(COIN_COLLECTOR_LEVELS))}
    return {"level": int(rng.choice(TREASURE_HUNTER_LEVELS))}
