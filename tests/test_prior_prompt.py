"""The prior's prompt: chat template when the tokenizer has one, plain text otherwise."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import PLAIN_ANSWER_CUE, PROMPT_VERSION, SYSTEM_INSTRUCTION, HistoryStep, PromptBuilder


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_lm_path, local_files_only=True)


HISTORY = [HistoryStep(f"room {i}", f"action {i}", float(i)) for i in range(6)]
CANDIDATES = ["go north", "take lamp", "open mailbox"]


def test_version_is_declared() -> None:
    assert PROMPT_VERSION.startswith("priorzero-prompt-v")


def test_chat_prompt_uses_template_and_generation_prompt(tokenizer: PreTrainedTokenizerBase) -> None:
    prompt = PromptBuilder(tokenizer).build(HISTORY, "West of House", CANDIDATES)
    assert prompt.startswith(f"{tokenizer.bos_token}<|system|>\n{SYSTEM_INSTRUCTION}")
    assert prompt.endswith("<|assistant|>\n")
    for candidate in CANDIDATES:
        assert prompt.count(f"- {candidate}") == 1


def test_plain_prompt_when_disabled_or_no_template(tokenizer: PreTrainedTokenizerBase) -> None:
    plain = PromptBuilder(tokenizer, use_chat_template=False).build(HISTORY, "West of House", CANDIDATES)
    assert plain.startswith(SYSTEM_INSTRUCTION)
    assert plain.endswith(PLAIN_ANSWER_CUE)
    assert "<|system|>" not in plain

    no_template = copy.deepcopy(tokenizer)
    no_template.chat_template = None
    assert PromptBuilder(no_template).build(HISTORY, "West of House", CANDIDATES) == plain


def test_template_without_system_role_gets_instruction_in_user_turn(tokenizer: PreTrainedTokenizerBase) -> None:
    gemma_like = copy.deepcopy(tokenizer)
    gemma_like.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}[model]{% endif %}"
    )
    prompt = PromptBuilder(gemma_like).build([], "Kitchen", CANDIDATES)
    assert prompt.startswith(f"[user]{SYSTEM_INSTRUCTION}")
    assert prompt.endswith("[model]")


def test_history_window_and_observation_cut(tokenizer: PreTrainedTokenizerBase) -> None:
    builder = PromptBuilder(tokenizer, history_len=2, max_observation_chars=20, use_chat_template=False)
    long_observation = "You are in a maze of twisty little passages, all alike."
    prompt = builder.build(HISTORY, long_observation, CANDIDATES)
    assert "action 3" not in prompt and "action 4" in prompt and "action 5" in prompt
    assert "Reward: 5" in prompt
    assert long_observation not in prompt
    assert long_observation[:20].rstrip() + " ..." in prompt

    none = PromptBuilder(tokenizer, history_len=0, use_chat_template=False).build(HISTORY, "x", CANDIDATES)
    assert "Recent history" not in none


def test_same_prompt_for_every_candidate_order_kept(tokenizer: PreTrainedTokenizerBase) -> None:
    prompt = PromptBuilder(tokenizer).build([], "Kitchen", CANDIDATES)
    positions = [prompt.index(f"- {c}") for c in CANDIDATES]
    assert positions == sorted(positions)


def test_bad_arguments(tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(PriorZeroInputError):
        PromptBuilder(tokenizer, history_len=-1)
    with pytest.raises(PriorZeroInputError):
        PromptBuilder(tokenizer, max_observation_chars=0)
    with pytest.raises(PriorZeroInputError, match="candidate"):
        PromptBuilder(tokenizer).build([], "obs", [])
