"""Loading the language model that gives the prior (and is fine-tuned) from a local directory."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError


def load_llm(
    path: str | os.PathLike[str], *, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local Hugging Face model directory.

    Nothing is downloaded (``local_files_only``): runs happen on machines without network, and a
    typo in ``model.llm.path`` must fail here with a message that names the path, rather than as
    a hub lookup error from deep inside transformers. The pad token is set to eos when the
    tokenizer has none, because batched candidate scoring right-pads.
    """
    model_dir = Path(path).expanduser()
    if not model_dir.exists():
        raise PriorZeroInputError(
            f"LLM path {str(model_dir)!r} does not exist: set model.llm.path to a local Hugging Face model "
            "directory (build the embedded default with `python -m priorzero_pl.assets.tiny_lm --out DIR`)"
        )
    if not (model_dir / "config.json").is_file():
        raise PriorZeroInputError(
            f"LLM path {str(model_dir)!r} is not a Hugging Face model directory (no config.json in it): "
            "point model.llm.path at the folder written by save_pretrained"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PriorZeroInputError(
            f"could not load a causal LM with its tokenizer from {str(model_dir)!r}: {first_line}"
        ) from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise PriorZeroInputError(
                f"the tokenizer in {str(model_dir)!r} has neither a pad nor an eos token; candidate scoring "
                "ends each action with eos, so set eos_token in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
