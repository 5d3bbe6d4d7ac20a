"""``callbacks.access.collection``: the callbacks' one way to the fit's data module, and its error."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from callbacks import RFT
from callbacks.access import collection
from datamodules.collection import PriorZeroDataModule
from priorzero_pl.errors import PriorZeroInputError


def test_collection_is_the_fits_priorzero_data_module() -> None:
    datamodule = PriorZeroDataModule()
    trainer = SimpleNamespace(datamodule=datamodule)
    assert collection(trainer, "RFT") is datamodule
    assert collection(trainer, "GracefulFallback", optional=True) is datamodule


def test_a_fit_without_one_is_an_error_that_names_the_callback_and_the_missing_piece() -> None:
    expected = (
        r"^Evaluation \(the game\) needs the fit's PriorZeroDataModule, but the trainer has no data module: "
        r"fit with datamodule=PriorZeroDataModule\(\.\.\.\)"
    )
    with pytest.raises(PriorZeroInputError, match=expected):
        collection(SimpleNamespace(datamodule=None), "Evaluation (the game)")
    with pytest.raises(PriorZeroInputError, match="but the trainer has a LightningDataModule"):
        collection(SimpleNamespace(datamodule=L.LightningDataModule()), "Evaluation (the game)")


def test_optional_is_none_only_without_any_data_module() -> None:
    assert collection(SimpleNamespace(datamodule=None), "GracefulFallback", optional=True) is None
    with pytest.raises(PriorZeroInputError, match="^GracefulFallback needs the fit's PriorZeroDataModule"):
        collection(SimpleNamespace(datamodule=L.LightningDataModule()), "GracefulFallback", optional=True)


def test_a_callback_says_what_it_was_missing() -> None:
    rft = RFT(every_n_steps=1, loss="candidates")
    module = SimpleNamespace(llm_queue_size=0)
    trainer = SimpleNamespace(global_step=1, datamodule=None, strategy=SingleDeviceStrategy(device=torch.device("cpu")))
    expected = r"^RFT \(the replay buffer's recent episodes\) needs the fit's PriorZeroDataModule"
    with pytest.raises(PriorZeroInputError, match=expected):
        rft.on_train_batch_end(trainer, module, None, None, 0)
