"""The embedded tiny LM: built locally, cached, and loadable through the real from_pretrained path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from priorzero_pl.assets.tiny_lm import build_tiny_lm, main
from priorzero_pl.errors import PriorZeroInputError


def test_loads_back_through_auto_classes(tiny_lm_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path, local_files_only=True)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    assert None not in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    ids = tokenizer("open mailbox", return_tensors="pt")["input_ids"]
    assert tokenizer.decode(ids[0]) == "open mailbox"
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))


def test_chat_template_ends_turns_with_eos(tiny_lm_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path, local_files_only=True)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == f"{tokenizer.bos_token}<|user|>\nhi{tokenizer.eos_token}\n<|assistant|>\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # Role markers are single special tokens, never split or merged with text.
    assert tokenizer.convert_tokens_to_ids("<|assistant|>") in ids


def test_second_build_is_cached_and_seeded(tiny_lm_path: Path, tmp_path: Path) -> None:
    weights = tiny_lm_path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    start = time.perf_counter()
    assert build_tiny_lm(tiny_lm_path) == tiny_lm_path
    assert time.perf_counter() - start < 1.0
    assert weights.stat().st_mtime_ns == stamp

    other = build_tiny_lm(tmp_path / "again")
    a = AutoModelForCausalLM.from_pretrained(tiny_lm_path).state_dict()
    b = AutoModelForCausalLM.from_pretrained(other).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_parameters_rebuild(tmp_path: Path) -> None:
    build_tiny_lm(tmp_path, hidden_size=32, num_layers=1)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (32, 1)
    build_tiny_lm(tmp_path, hidden_size=48, num_layers=1)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.hidden_size == 48


def test_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="hidden_size"):
        build_tiny_lm(tmp_path, hidden_size=30)
    with pytest.raises(PriorZeroInputError, match="vocab_size"):
        build_tiny_lm(tmp_path, vocab_size=100)


def test_cli_builds_into_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path / "cli"), "--hidden-size", "32", "--num-layers", "1"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli")
    assert (tmp_path / "cli" / "config.json").is_file()


def test_template_tokenizer_renders_prompts_as_the_models_do(tiny_lm_path: Path) -> None:
    """Corpora render prompts with template_tokenizer(); a model built here must see the same text."""
    from priorzero_pl.assets.tiny_lm import template_tokenizer, train_tokenizer
    from priorzero_pl.prior import HistoryStep, PromptBuilder

    history = [HistoryStep("You are in a kitchen.", "open fridge", 0.0)]
    args = (history, "You see a carrot.", ["take carrot", "go north"])
    model_tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path, local_files_only=True)
    expected = PromptBuilder(model_tokenizer).build(*args)
    assert PromptBuilder(template_tokenizer()).build(*args) == expected
    trained = train_tokenizer(["take carrot from fridge", "slice carrot with knife"] * 50, 320)
    assert PromptBuilder(trained).build(*args) == expected
    assert trained.decode(trained("slice carrot", add_special_tokens=False)["input_ids"]) == "slice carrot"
