"""The prior's prompt: chat template when the tokenizer has one, plain text otherwise."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import PLAIN_ANSWER_CUE, PROMPT_VERSION, SYSTEM_INSTRUCTION, HistoryStep, Note, PromptBuilder


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


def test_notes_keep_what_reading_showed_after_it_leaves_the_history(tokenizer: PreTrainedTokenizerBase) -> None:
    recipe = "Recipe #1. Ingredients: red potato. Directions: chop the red potato, fry the red potato, prepare meal."
    history = [  # each step: what the game showed, then what was done there
        HistoryStep("Kitchen. A cookbook is here.", "examine cookbook", 0.0),
        HistoryStep(recipe, "examine sofa", 0.0),
        HistoryStep("The sofa is comfy.", "take red potato", 1.0),
        HistoryStep("You take the red potato.", "examine cookbook", 0.0),
        HistoryStep(recipe, "go east", 0.0),
        HistoryStep("Garden.", "go west", 0.0),
        HistoryStep("Kitchen.", "open fridge", 0.0),
    ]
    builder = PromptBuilder(tokenizer, history_len=2, use_chat_template=False, notes=2)
    notes, recent = builder.visible(history)
    assert recent == history[-2:]
    # A note is the reading action and the game's answer (the next observation), oldest first;
    # the first cookbook reading repeats the second's text and is not noted twice.
    assert notes == [Note("examine sofa", "The sofa is comfy."), Note("examine cookbook", recipe)]
    prompt = builder.build(history, "Kitchen.", CANDIDATES)
    assert prompt.index("Notes from earlier reading") < prompt.index(f"Result: {recipe}") < prompt.index("Recent history")
    assert prompt == builder.render(notes, recent, "Kitchen.", CANDIDATES)
    assert recipe not in PromptBuilder(tokenizer, history_len=2, use_chat_template=False, notes=0).build(history, "x", CANDIDATES)

    assert PromptBuilder(tokenizer, history_len=2, notes=1).visible(history)[0] == [Note("examine cookbook", recipe)]
    # A reading whose answer the window still shows is not noted.
    assert PromptBuilder(tokenizer, history_len=3, notes=2).visible(history)[0] == [Note("examine sofa", "The sofa is comfy.")]
    assert PromptBuilder(tokenizer, history_len=7, notes=2).visible(history) == ([], history)
    # No history shown: notes still come from the whole episode, all but the last step (its
    # answer is the current observation).
    assert PromptBuilder(tokenizer, history_len=0, notes=2).visible(history)[0] == notes
    assert PromptBuilder(tokenizer, history_len=0, notes=2).visible(history[:1]) == ([], [])


def test_notes_must_be_a_count(tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(PriorZeroInputError, match="notes must be >= 0"):
        PromptBuilder(tokenizer, notes=-1)
