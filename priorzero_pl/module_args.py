"""Checks of the module's init arguments (the ``model:`` section) that no single config class can make.

Each section validates itself in its ``__post_init__``; what is left is the values that only
fail late (``eval_seed`` is first used at the first validation, hundreds of steps in) and the
combinations that would be ignored without a word. The CLI calls :func:`check_module_args` on
the parsed ``model:`` section before it builds anything (loading an LLM takes minutes on a real
model); ``PriorZeroModule.__init__`` can call it on its own arguments for runs built in Python.
"""

from __future__ import annotations

from typing import Any, Mapping

from priorzero_pl.llm.config import LLMConfig
from priorzero_pl.optim_config import OptimConfig
from priorzero_pl.config_checks import require_int
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig, PriorWeightSchedule
from priorzero_pl.models import WorldModelConfig
from priorzero_pl.prior import PriorConfig

Section = Mapping[str, Any]
"""A config section as parsed (its fields by name), before it is built into its dataclass."""


def check_module_args(
    *,
    llm: LLMConfig | Section | None = None,
    world_model: WorldModelConfig | Section | None = None,
    mcts: MCTSConfig | Section | None = None,
    prior: PriorConfig | Section | None = None,
    optim: OptimConfig | Section | None = None,
    prior_weight_schedule: PriorWeightSchedule | Section | None = None,
    eval_seed: int = 1234,
) -> None:
    """Raise :class:`PriorZeroInputError` naming ``model.<key>``, its value and the fix, for the
    first bad argument of ``PriorZeroModule`` (same names; a section left out is not checked).

    A section given as a mapping is built into its dataclass, whose ``__post_init__`` checks each field.
    """
    for kind, section in [(LLMConfig, llm), (WorldModelConfig, world_model), (PriorConfig, prior), (OptimConfig, optim)]:
        _built(kind, section)
    mcts_config: MCTSConfig | None = _built(MCTSConfig, mcts)
    schedule: PriorWeightSchedule | None = _built(PriorWeightSchedule, prior_weight_schedule)
    # The evaluation games are seeded eval_seed + episode, and a game seed must be >= 0.
    require_int("model.eval_seed", eval_seed, minimum=0)
    if schedule is not None and mcts_config is not None and mcts_config.prior_mode != "mixture":
        raise PriorZeroInputError(
            f"model.prior_weight_schedule is set but model.mcts.prior_mode={mcts_config.prior_mode!r}: the schedule only "
            "sets the weight of prior_mode 'mixture'; set prior_mode: mixture or prior_weight_schedule: null"
        )


def _built(kind: type, section: object) -> Any:
    """The section as its dataclass: a mapping is built (and so checked field by field)."""
    return kind(**section) if isinstance(section, Mapping) else section
