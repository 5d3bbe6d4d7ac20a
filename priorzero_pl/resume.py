"""Resuming with ``--ckpt_path``: the model settings the user gives win over the checkpoint's.

LightningCLI 2.6 parses the hyperparameters saved in the checkpoint back over the whole parsed
config (``LightningCLI._parse_ckpt_path``, right after argument parsing), so
``--ckpt_path last.ckpt --model.prior.vllm_required true`` resumed on the checkpoint's ``false``
without a word. Here every model value the user gave explicitly (config files and command
line, no defaults) that the checkpoint replaced is put back, with one log line each, except
the few that the checkpoint's own state would override or contradict: those are refused, all
in one message, before anything is loaded.

Saved prompts are checked too: the module's checkpoint and every saved episode record the
:data:`~priorzero_pl.prior.prompt.PROMPT_VERSION` that rendered their prompts, and
:func:`warn_on_other_prompt_versions` says so when a resume brings back prompts of another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import PROMPT_VERSION

FIXED_BY_CHECKPOINT: dict[str, str] = {
    **{
        f"world_model.{name}": "the saved world-model weights have the checkpoint's sizes"
        for name in (
            "latent_dim", "embed_dim", "vocab_size", "max_observation_tokens", "max_action_tokens",
            "num_layers", "num_heads", "support_size", "pretrained_encoder_path",
        )
    },
    "llm.train": "the saved optimizer has an LLM parameter group only if the LLM trained",
    **{
        f"optim.{name}": "the saved optimizer state would put the checkpoint's value back"
        for name in ("world_model_lr", "llm_lr", "weight_decay")
    },
}
"""Model keys (relative to ``model.``) a resume cannot change, each with the reason."""

LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")
"""``ckpt_path`` values Lightning resolves itself (``registry:...`` too)."""

UNRECORDED_PROMPT_VERSION = "priorzero-prompt-v1"
"""The prompt version of saved prompts that recorded none: they were saved before versions were
stored, when v1 was the only one."""

_MISSING = object()


@dataclass(frozen=True)
class Override:
    """A model setting the user gave whose value differs from the checkpoint's."""

    key: str
    """Relative to ``model.`` (``prior.vllm_required``)."""
    given: Any
    saved: Any


def check_ckpt_path(ckpt_path: str | None) -> None:
    """A mistyped ``--ckpt_path`` fails here, not after the model is built, as a one-line error."""
    if ckpt_path is None or ckpt_path in LIGHTNING_CKPT_NAMES or ckpt_path.startswith("registry:") or "://" in ckpt_path:
        return
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise PriorZeroInputError(
            f"ckpt_path={ckpt_path!r} is not a file: give a checkpoint written by a fit (e.g. "
            "<default_root_dir>/checkpoints/last.ckpt), 'last', or leave --ckpt_path out to start a new run"
        )


def overrides(given: Namespace, resumed: Namespace) -> list[Override]:
    """Values of ``given`` (the model section parsed without defaults) that ``resumed`` (the model
    section after the checkpoint's hyperparameters were applied) does not have."""
    found = []
    for key, value in given.items():
        saved = resumed.get(key, _MISSING)
        if saved is _MISSING or not _same(saved, value):
            found.append(Override(key, value, None if saved is _MISSING else saved))
    return found


def restore_given(model: Namespace, given: Namespace, ckpt_path: str) -> list[Override]:
    """Put the user's model values back into ``model`` (in place), or refuse the resume.

    Raises :class:`PriorZeroInputError` listing every given key in :data:`FIXED_BY_CHECKPOINT`
    that differs from the checkpoint. Returns the overrides applied.
    """
    found = overrides(given, model)
    fixed = [o for o in found if o.key in FIXED_BY_CHECKPOINT]
    if fixed:
        listed = "; ".join(f"model.{o.key}={_show(o.given)} (checkpoint: {_show(o.saved)})" for o in fixed)
        reasons = "; ".join(sorted({FIXED_BY_CHECKPOINT[o.key] for o in fixed}))
        raise PriorZeroInputError(
            f"resume from {ckpt_path}: cannot change {listed}: {reasons}; drop these from the command line and "
            "config, or leave --ckpt_path out to start a new run"
        )
    for override in found:
        model[override.key] = override.given
        rank_zero_info(
            f"resume from {ckpt_path}: model.{override.key}={_show(override.given)} as given, not the "
            f"checkpoint's {_show(override.saved)}"
        )
    return found


def warn_on_other_prompt_versions(stored: Sequence[str | None], what: str, meaning: str) -> bool:
    """Warn once (rank zero) when saved prompts were rendered by another prompt version than
    this code's :data:`~priorzero_pl.prior.prompt.PROMPT_VERSION`; returns whether it warned.

    A resumed run reuses the prompts it saved exactly as they were written (LLM training on
    replayed episodes and queued LLM batches), while every new prompt is rendered in this
    version's text: the LLM then trains on two texts for one kind of state. The run still works;
    the warning says why its LLM may behave unlike a run of one version.

    Args:
        stored: the version each saved item recorded (None: none recorded, taken as
            :data:`UNRECORDED_PROMPT_VERSION`).
        what: what holds the prompts, for the message ("saved episodes").
        meaning: what the old text means for that part of the run.
    """
    versions = [UNRECORDED_PROMPT_VERSION if version is None else version for version in stored]
    other = [version for version in versions if version != PROMPT_VERSION]
    if not other:
        return False
    count = f"{len(other)} of {len(versions)} " if len(versions) > 1 else ""
    rank_zero_warn(
        f"resume: {count}{what} were rendered by prompt version {', '.join(sorted(set(other)))}, this code renders "
        f"{PROMPT_VERSION}: {meaning}"
    )
    return True


def _same(saved: Any, given: Any) -> bool:
    if isinstance(saved, Namespace):
        saved = saved.as_dict()
    if isinstance(given, Namespace):
        given = given.as_dict()
    return saved == given


def _show(value: Any) -> str:
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)
