"""Every callback refuses impossible init arguments with a PriorZeroInputError."""

from __future__ import annotations

from typing import Any

import pytest

from callbacks import PPO, RFT, Checkpointing, Evaluation, Transcripts, VLLMWeightSync
from priorzero_pl.errors import PriorZeroInputError


@pytest.mark.parametrize(
    "make",
    [
        lambda: PPO(epochs=0),
        lambda: PPO(gae_lambda=1.5),
        lambda: PPO(importance_weight_cap=0.0),
        lambda: RFT(top_fraction=0.0),
        lambda: RFT(loss="sequence"),
        lambda: VLLMWeightSync(every_n_llm_updates=0),
        lambda: Checkpointing(every_n_steps=0),
        lambda: Checkpointing(keep_last=-1),
        lambda: Evaluation(modes=["world_model", "greedy"]),
        lambda: Evaluation(modes=[]),
        lambda: Transcripts(mode="prior_only"),
    ],
)
def test_bad_init_args_are_input_errors(make: Any) -> None:
    with pytest.raises(PriorZeroInputError):
        make()
