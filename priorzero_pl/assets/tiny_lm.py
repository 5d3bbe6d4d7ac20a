"""Small Llamas with a BPE tokenizer trained on the spot: the random tiny LM, and the builders the
pretrained prior shares with it.

No model can be downloaded at run time, yet every code path that serves a real Hugging Face model
(``from_pretrained``, chat templates, special tokens, KV caches) must run in tests and in the
CPU demo. :func:`build_tiny_lm` trains a byte-level BPE tokenizer on a small built-in corpus of
text-adventure English, wraps it as a ``PreTrainedTokenizerFast`` with a chat template, builds a
randomly initialised (seeded) ``LlamaForCausalLM`` sized to it and writes both with
``save_pretrained``: the plumbing model of the unit tests, which knows nothing. The pretrained
prior (``priorzero pretrain-prior``, shipped as ``llm.path: embedded``) is built by the same
:func:`train_tokenizer` (on its corpus) and :func:`llama_config`, so both load and prompt alike.

Run ``python -m priorzero_pl.assets.tiny_lm --out DIR`` to build a random one by hand.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from priorzero_pl.errors import PriorZeroInputError

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Role markers are special tokens so they never merge with text; an assistant turn ends with the
eos token, which is why candidate scoring appends eos after the action text."""

MIN_VOCAB_SIZE = 300
"""256 byte tokens, the special tokens and a few merges."""

_MARKER = "priorzero_tiny_lm.json"
"""Written last: its presence (with matching build parameters) means the directory is complete."""

_VERBS = ("go", "take", "drop", "open", "close", "examine", "read", "push", "pull", "eat", "light", "unlock")
_OBJECTS = (
    "lamp", "mailbox", "leaflet", "sword", "door", "window", "trophy case", "rug", "trap door",
    "egg", "nest", "rope", "knife", "bottle", "water", "key", "chest", "book", "candle", "torch",
)
_DIRECTIONS = ("north", "south", "east", "west", "up", "down", "northeast", "northwest", "southeast", "southwest")
_ROOMS = (
    "West of House", "North of House", "Behind House", "Kitchen", "Living Room", "Cellar",
    "Forest Path", "Clearing", "Attic", "Gallery", "Maze", "Dam Base",
)
_OBSERVATIONS = (
    "You are standing in an open field west of a white house, with a boarded front door.",
    "There is a small mailbox here.",
    "Opening the small mailbox reveals a leaflet.",
    "You are in the kitchen of the white house. A table seems to have been used recently.",
    "It is pitch black. You are likely to be eaten by a grue.",
    "Taken.",
    "Dropped.",
    "You can't go that way.",
    "The door is locked.",
    "Your score has just gone up by ten points.",
    "A brass lantern is on the trophy case.",
    "With great effort, you move the rug aside, revealing a dusty trap door.",
    "You hear the sound of running water in the distance.",
    "Welcome to the game! Your goal is to find the treasure and bring it home.",
)


def _corpus() -> list[str]:
    """Commands, observations and prompt scaffolding, so that the BPE merges look like the text
    the prior will actually score (short imperative commands after a templated prompt)."""
    lines = [f"go {d}" for d in _DIRECTIONS] + list(_DIRECTIONS)
    lines += [f"{verb} {obj}" for verb, obj in itertools.product(_VERBS, _OBJECTS)]
    lines += [f"put {a} in {b}" for a, b in itertools.product(_OBJECTS[:8], _OBJECTS[8:16])]
    lines += [f"{room}\n{obs}" for room, obs in itertools.product(_ROOMS, _OBSERVATIONS)]
    lines += [
        "You are playing a text adventure game.",
        "Observation: Action: Reward: Valid actions: Current observation: Next action:",
        "Answer with exactly one action from the list.",
        "inventory look wait score save restore quit yes no",
    ]
    return lines


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``, with this module's special tokens and chat
    template. Byte-level: every string is encodable (no unknown token), like GPT-2/Llama-3 families."""
    check_vocab_size(vocab_size)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def template_tokenizer() -> PreTrainedTokenizerFast:
    """A small tokenizer carrying the chat template and special tokens of every model built here:
    enough to render prompts exactly as such a model's :class:`PromptBuilder` will (the text of a
    rendered prompt depends on the template and the special tokens' text, not on the merges)."""
    return train_tokenizer(_corpus(), 512)


def check_vocab_size(vocab_size: int) -> None:
    """Reject a vocabulary too small for the byte alphabet and the special tokens."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise PriorZeroInputError(
            f"vocab_size must be >= {MIN_VOCAB_SIZE} (256 bytes + specials + merges), got {vocab_size}"
        )


def check_shape(*, hidden_size: int, num_layers: int, num_heads: int = 4, num_kv_heads: int = 2) -> None:
    """Reject a model shape that Llama cannot take, with the value and the rule."""
    if num_heads <= 0 or num_kv_heads <= 0 or num_heads % num_kv_heads:
        raise PriorZeroInputError(
            f"num_heads ({num_heads}) must be a positive multiple of num_kv_heads ({num_kv_heads})"
        )
    if hidden_size <= 0 or hidden_size % (4 * num_heads):
        raise PriorZeroInputError(
            f"hidden_size must be a positive multiple of {4 * num_heads} ({num_heads} heads of >= 4), got {hidden_size}"
        )
    if num_layers <= 0:
        raise PriorZeroInputError(f"num_layers must be positive, got {num_layers}")


def llama_config(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = 4096,
) -> LlamaConfig:
    """A small Llama sized to ``tokenizer``, the shape of every model built here."""
    check_shape(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads)
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        # Fewer KV heads than query heads, so grouped-query attention (as in real Llama/Qwen
        # checkpoints) is exercised by the KV-cache reuse in candidate scoring.
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def _is_complete(out_dir: Path, params: dict[str, int]) -> bool:
    marker = out_dir / _MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == params
    except (OSError, json.JSONDecodeError):
        return False


def build_tiny_lm(
    out_dir: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 512,
) -> Path:
    """Build (or reuse) the tiny causal LM in ``out_dir`` and return ``out_dir``.

    Cached: when ``out_dir`` already holds a model built with the same parameters, nothing is
    rebuilt. The files are written into a temporary sibling first and moved in one by one with
    the completion marker last, so a crashed or concurrent build never leaves a directory that
    looks complete but is not.
    """
    check_shape(hidden_size=hidden_size, num_layers=num_layers)
    check_vocab_size(vocab_size)
    out_dir = Path(out_dir)
    params = {"seed": seed, "hidden_size": hidden_size, "num_layers": num_layers, "vocab_size": vocab_size}
    if _is_complete(out_dir, params):
        return out_dir

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(_corpus(), vocab_size)
    config = llama_config(tokenizer, hidden_size=hidden_size, num_layers=num_layers)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)

    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.build-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for entry in Path(tmp).iterdir():
            os.replace(entry, out_dir / entry.name)
    (out_dir / _MARKER).write_text(json.dumps(params))
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """CLI: build the tiny LM into ``--out`` (a no-op when it is already there)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the model into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--force", action="store_true", help="rebuild even when a complete model is there")
    args = parser.parse_args(argv)
    if args.force and args.out.exists():
        (args.out / _MARKER).unlink(missing_ok=True)
    path = build_tiny_lm(
        args.out,
        seed=args.seed,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        vocab_size=args.vocab_size,
    )
    print(path)


if __name__ == "__main__":
    main()
