"""The one way a callback reaches the run's data: :func:`collection`.

Callbacks read the replay buffer (RFT, PPO), the game (Evaluation, Transcripts) and the collector's
health (GracefulFallback) from the fit's :class:`~datamodules.collection.PriorZeroDataModule`.
Asking for it here, by its type, turns a fit without one into an error that names the callback
and the missing piece, instead of an ``AttributeError`` deep inside a hook.
"""

from __future__ import annotations

from typing import Literal, overload

import lightning as L

from datamodules.collection import PriorZeroDataModule
from priorzero_pl.errors import PriorZeroInputError


@overload
def collection(trainer: L.Trainer, needed_by: str) -> PriorZeroDataModule: ...


@overload
def collection(trainer: L.Trainer, needed_by: str, *, optional: Literal[True]) -> PriorZeroDataModule | None: ...


def collection(trainer: L.Trainer, needed_by: str, *, optional: bool = False) -> PriorZeroDataModule | None:
    """The fit's :class:`~datamodules.collection.PriorZeroDataModule`.

    ``needed_by`` names the callback (and what it reads) in the error. With ``optional`` a fit
    without any data module gives ``None`` (a callback that only reports the collector's health
    when there is one); a data module of another type is an error either way."""
    datamodule = trainer.datamodule
    if datamodule is None and optional:
        return None
    if not isinstance(datamodule, PriorZeroDataModule):
        found = "no data module" if datamodule is None else f"a {type(datamodule).__name__}"
        raise PriorZeroInputError(
            f"{needed_by} needs the fit's PriorZeroDataModule, but the trainer has {found}: "
            "fit with datamodule=PriorZeroDataModule(...) (priorzero fit does)"
        )
    return datamodule
