"""The corpus as training data: loaded and verified, split by game, checked against the model.

Two checks keep "the prompt that is scored is the prompt that was built": every stored prompt must
be what :class:`PromptBuilder` builds for the step with the new tokenizer and the manifest's
prompt settings, and every prompt with its longest candidate must fit the model's positions (an
error naming the step, never a cut).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from priorzero_pl.corpus.manifest import CorpusManifest, verify_records
from priorzero_pl.corpus.records import RECORDS_FILE, CorpusStep, read_records
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import PROMPT_VERSION, PromptBuilder


def load_corpus(corpus_dir: Path, *, split: str) -> tuple[CorpusManifest, list[CorpusStep]]:
    """The manifest and records of a corpus of ``split`` games, after checking the records' hash."""
    manifest = CorpusManifest.load(corpus_dir)
    if manifest.split != split:
        raise PriorZeroInputError(
            f"{corpus_dir} is a {manifest.split}-split corpus where a {split}-split one is needed "
            f"(build it with `priorzero corpus --split {split}`)"
        )
    if manifest.prompt.prompt_version != PROMPT_VERSION:
        raise PriorZeroInputError(
            f"{corpus_dir} was rendered with {manifest.prompt.prompt_version}, this code builds {PROMPT_VERSION}: rebuild the corpus"
        )
    verify_records(corpus_dir, manifest)
    steps = list(read_records(Path(corpus_dir) / RECORDS_FILE))
    if not any(s.scorable for s in steps):
        raise PriorZeroInputError(f"{corpus_dir} has no scorable steps: build it with more games")
    return manifest, steps


def split_by_game(steps: Sequence[CorpusStep], heldout_fraction: float, seed: int) -> tuple[list[CorpusStep], list[CorpusStep]]:
    """``(train, heldout)``: whole games held out (at least one, at most all but one), drawn with ``seed``."""
    games = sorted({s.game for s in steps})
    if len(games) < 2:
        raise PriorZeroInputError(f"the corpus has {len(games)} game(s): a held-out split needs at least 2")
    count = min(len(games) - 1, max(1, math.ceil(heldout_fraction * len(games))))
    heldout = set(np.random.default_rng(seed).permutation(games)[:count].tolist())
    return [s for s in steps if s.game not in heldout], [s for s in steps if s.game in heldout]


def prompt_builder_for(manifest: CorpusManifest, tokenizer: PreTrainedTokenizerBase) -> PromptBuilder:
    """The prompt builder with the corpus's settings, over ``tokenizer``."""
    settings = manifest.prompt
    builder = PromptBuilder(
        tokenizer,
        history_len=settings.history_len,
        max_observation_chars=settings.max_observation_chars,
        use_chat_template=settings.use_chat_template,
        notes=settings.notes,
    )
    if settings.use_chat_template and tokenizer.chat_template != settings.chat_template:
        raise PriorZeroInputError("the tokenizer's chat template differs from the one the corpus prompts were rendered with")
    return builder


def check_prompts(steps: Sequence[CorpusStep], builder: PromptBuilder) -> None:
    """Fail unless each stored prompt is exactly what ``builder`` builds for its step: its stored
    window of history and notes fit the builder's settings, and rendering them gives the prompt."""
    for step in steps:
        window = len(step.history) == min(step.step, builder.history_len) and len(step.notes) <= builder.notes
        if not window or builder.render(step.note_list(), step.history_steps(), step.observation, step.candidates) != step.prompt:
            raise PriorZeroInputError(
                f"{step.game} step {step.step}: the stored prompt is not what PromptBuilder builds with the corpus's "
                "settings; rebuild the corpus with this code"
            )


def check_context(steps: Sequence[CorpusStep], tokenizer: PreTrainedTokenizerBase, max_positions: int) -> int:
    """The longest prompt + candidate + eos, in tokens; an error when it exceeds ``max_positions``."""
    longest = 0
    for step in steps:
        texts = [step.prompt + c for c in step.candidates]
        lengths = [len(ids) + 2 for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]  # + bos, eos
        if max(lengths) > max_positions:
            raise PriorZeroInputError(
                f"{step.game} step {step.step}: prompt + candidate is {max(lengths)} tokens, the model takes "
                f"{max_positions}; raise --max-context or lower the corpus's --max-observation-chars"
            )
        longest = max(longest, *lengths)
    return longest


class WalkthroughSteps(Dataset):
    """The steps worth a gradient: the walkthrough's action is a candidate and there is a choice."""

    def __init__(self, steps: Sequence[CorpusStep]) -> None:
        self.steps = [s for s in steps if s.scorable and len(s.candidates) > 1]

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> CorpusStep:
        return self.steps[index]


def collate_steps(batch: list[CorpusStep]) -> list[CorpusStep]:
    """Steps stay objects: :func:`candidate_logprobs` takes the prompts and candidates as text."""
    return batch
