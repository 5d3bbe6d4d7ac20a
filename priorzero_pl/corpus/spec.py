"""Which TextWorld game a request means, and which games are reserved for evaluation.

A game is fixed by its family, its ``tw-make`` options, its split and its seed. Games are split
two ways at once, so that an evaluation game can never be a corpus game:

* by TextWorld's own split where the family has one: ``tw-cooking --split train|test`` draws foods
  and preparations from disjoint sets, ``tw-simple --test`` swaps in unseen foods;
* by seed for every family: corpus (train) games take seeds from :data:`TRAIN_SEED_START` up,
  evaluation (test) games below it. ``tw-coin_collector`` and ``tw-treasure_hunter`` have no split
  of their own, so for them the seed range is the split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from priorzero_pl.envs.textworld_make import make_game, tw_make_settings
from priorzero_pl.errors import PriorZeroInputError

Split = Literal["train", "test"]

TRAIN_SEED_START = 100_000
"""Corpus games use seeds >= this; evaluation games use seeds below it (the embedded default game's
seed 3 included)."""

CORPUS_FAMILIES = ("tw-cooking", "tw-simple", "tw-coin_collector", "tw-treasure_hunter")

_SPLIT_OPTIONS: dict[str, dict[Split, dict[str, object]]] = {
    "tw-cooking": {"train": {"split": "train"}, "test": {"split": "test"}},
    "tw-simple": {"train": {"test": False}, "test": {"test": True}},
}
"""The ``tw-make`` options that select each split, for the families that have one."""


@dataclass(frozen=True)
class GameSpec:
    """One TextWorld game: ``tw-make FAMILY OPTIONS SPLIT-OPTION --seed SEED``.

    ``options`` holds the family's difficulty settings (``recipe``, ``go``, ``level``, ...) without
    the split option, which ``split`` supplies.
    """

    family: str
    seed: int
    split: Split
    options: dict[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.family not in CORPUS_FAMILIES:
            raise PriorZeroInputError(f"game family '{self.family}' is not a corpus family; use one of {list(CORPUS_FAMILIES)}")
        if self.split not in ("train", "test"):
            raise PriorZeroInputError(f"game split '{self.split}' must be 'train' or 'test'")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise PriorZeroInputError(f"game seed={self.seed!r}: must be an integer >= 0")
        if (self.seed >= TRAIN_SEED_START) != (self.split == "train"):
            side = f">= {TRAIN_SEED_START}" if self.split == "train" else f"< {TRAIN_SEED_START}"
            raise PriorZeroInputError(
                f"{self.family} seed {self.seed} is outside the {self.split} split's seeds ({side}): "
                f"corpus games take seeds from {TRAIN_SEED_START} up, evaluation games below it"
            )
        reserved = {key for options in _SPLIT_OPTIONS.get(self.family, {}).values() for key in options}
        if reserved & set(self.options):
            raise PriorZeroInputError(
                f"{self.family} options {sorted(reserved & set(self.options))} select the split: set split= instead"
            )

    def tw_make_options(self) -> dict[str, object]:
        """The options passed to ``tw-make``: difficulty settings plus the split's own option."""
        return {**self.options, **_SPLIT_OPTIONS.get(self.family, {}).get(self.split, {})}

    def key(self) -> tuple[str, int, tuple[tuple[str, str], ...]]:
        """What identifies the game: family, seed and the settings it is built with (defaults filled
        in, switched-off flags dropped, order-free), so that two spellings of one request compare equal."""
        settings = tw_make_settings(self.family, self.tw_make_options())
        on = tuple(sorted((k, str(v)) for k, v in settings.items() if v is not False and v is not None))
        return self.family, self.seed, on

    def make(self, out_dir: Path) -> Path:
        """Build (or find) the game's ``.z8`` in ``out_dir``."""
        return make_game(out_dir, family=self.family, seed=self.seed, in_process=True, **self.tw_make_options())

    def to_dict(self) -> dict[str, object]:
        """JSON form, as listed in a corpus manifest."""
        return {"family": self.family, "seed": self.seed, "split": self.split, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> GameSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            family=str(data["family"]),
            seed=int(data["seed"]),  # type: ignore[arg-type]
            split=data["split"],  # type: ignore[arg-type]
            options=dict(data.get("options") or {}),  # type: ignore[arg-type]
        )


def supports_split(family: str) -> bool:
    """Whether TextWorld itself splits the family's content into train and test distributions."""
    return family in _SPLIT_OPTIONS


def split_rule() -> dict[str, object]:
    """How train and test games are kept apart, written into every manifest."""
    return {
        "train_seeds": f">= {TRAIN_SEED_START}",
        "test_seeds": f"< {TRAIN_SEED_START}",
        "split_options": {family: splits for family, splits in _SPLIT_OPTIONS.items()},
        "families_split_by_seed_only": [f for f in CORPUS_FAMILIES if not supports_split(f)],
    }
