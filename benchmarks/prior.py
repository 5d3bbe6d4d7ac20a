"""Candidates scored per second by the HF prior: one full forward pass per candidate (naive) against
the shared-prefix scoring (prompt once, then all candidates in one pass over its KV cache), in its
default packed layout and in the batched layout (cache repeated per candidate).

Setting: a small Llama built locally (hidden 256, 4 layers; random weights, which cost the same as
trained ones), a 200-token prompt, 20 candidates of 3-6 tokens, CPU (one torch thread unless
``--threads``), no grad. The last line is one JSON object; ``speedup`` is shared-prefix (packed)
cand/s over naive cand/s, and ``max_abs_diff`` says the two compute the same scores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from transformers import PreTrainedTokenizerBase

# The repository root, so that a plain ``python benchmarks/prior.py`` finds the tests' reference.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priorzero_pl.assets.tiny_lm import build_tiny_lm  # noqa: E402
from priorzero_pl.llm.loading import load_llm  # noqa: E402
from priorzero_pl.llm.candidate_scoring import candidate_logprobs  # noqa: E402
from priorzero_pl.llm.tokenization import encode_candidates  # noqa: E402
from tests.references.prior_scoring import naive_candidate_logprobs  # noqa: E402

PROMPT_TOKENS = 200
NUM_CANDIDATES = 20
CANDIDATE_TOKENS = (3, 6)
SECONDS = 8.0
MAX_SECONDS = 40.0

VERBS = ("take", "drop", "open", "close", "examine", "read", "push", "pull", "light", "unlock", "put")
OBJECTS = ("lamp", "mailbox", "sword", "rug", "egg", "rope", "bottle", "chest", "book", "candle", "trap door")
SUFFIXES = ("", " now", " with the key", " on the table", " in the trophy case", " carefully")


def build_prompt(tokenizer: PreTrainedTokenizerBase) -> str:
    """Observation text repeated up to ``PROMPT_TOKENS`` tokens (bos included), then the answer cue."""
    cue = "\nNext action:\n"
    sentence = "You are in the kitchen of the white house. A table seems to have been used recently. "
    words: list[str] = []
    for word in (sentence * 100).split(" "):
        candidate = " ".join([*words, word]) + cue
        if len(encode_candidates(tokenizer, candidate, ["x"]).prefix) > PROMPT_TOKENS:
            break
        words.append(word)
    return " ".join(words) + cue


def pick_candidates(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[str]:
    """``NUM_CANDIDATES`` commands whose own tokens (before eos) number 3 to 6, spread evenly over
    those lengths so that the batch is ragged like real candidate lists."""
    low, high = CANDIDATE_TOKENS
    by_length: dict[int, list[str]] = {n: [] for n in range(low, high + 1)}
    for verb, obj, suffix in itertools.product(VERBS, OBJECTS, SUFFIXES):
        text = f"{verb} {obj}{suffix}"
        length = len(encode_candidates(tokenizer, prompt, [text]).continuations[0]) - 1
        if length in by_length:
            by_length[length].append(text)
    pools = [pool for pool in by_length.values() if pool]
    chosen: list[str] = []
    for index in range(NUM_CANDIDATES * len(pools)):
        pool = pools[index % len(pools)]
        if index // len(pools) < len(pool):
            chosen.append(pool[index // len(pools)])
        if len(chosen) == NUM_CANDIDATES:
            return chosen
    raise RuntimeError(f"only {len(chosen)} commands have {low}-{high} tokens")


def interleaved_rates(methods: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median candidates/s of each method over alternating rounds: the machine may be shared, and
    alternating exposes every method to the same background load."""
    for method in methods.values():
        method()  # warm-up: allocator, kernels
    rates: dict[str, list[float]] = {name: [] for name in methods}
    start = time.perf_counter()
    while time.perf_counter() - start < SECONDS or (
        min(len(r) for r in rates.values()) < 3 and time.perf_counter() - start < MAX_SECONDS
    ):
        for name, method in methods.items():
            began = time.perf_counter()
            method()
            rates[name].append(NUM_CANDIDATES / (time.perf_counter() - began))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: on a shared 2-core machine more threads spin against "
        "other processes and the figures swing by 10x)",
    )
    torch.set_num_threads(parser.parse_args().threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_lm(Path(tmp) / "bench_lm", hidden_size=256, num_layers=4, vocab_size=512)
        model, tokenizer = load_llm(path)
    model.eval()
    prompt = build_prompt(tokenizer)
    candidates = pick_candidates(tokenizer, prompt)
    tokens = encode_candidates(tokenizer, prompt, candidates)
    lengths = [len(c) - 1 for c in tokens.continuations]
    print(
        f"model: hidden 256, 4 layers, {model.num_parameters() / 1e6:.1f} M parameters; "
        f"prompt {len(tokens.prefix)} tokens; {len(candidates)} candidates of {min(lengths)}-{max(lengths)} "
        f"tokens (+ eos); torch threads {torch.get_num_threads()}"
    )

    with torch.no_grad():
        shared = candidate_logprobs(model, tokenizer, [prompt], [candidates])[0]
        naive = naive_candidate_logprobs(model, tokenizer, prompt, candidates)
        max_abs_diff = float((shared - naive).abs().max())
        rates = interleaved_rates(
            {
                "naive": lambda: naive_candidate_logprobs(model, tokenizer, prompt, candidates),
                "packed": lambda: candidate_logprobs(model, tokenizer, [prompt], [candidates], packed=True),
                "batched": lambda: candidate_logprobs(model, tokenizer, [prompt], [candidates], packed=False),
            }
        )
    naive_rate, shared_rate, batched_rate = rates["naive"], rates["packed"], rates["batched"]
    print(f"naive (one full pass per candidate):   {naive_rate:8.1f} cand/s")
    print(f"shared prefix, packed (default):       {shared_rate:8.1f} cand/s   x{shared_rate / naive_rate:.1f}")
    print(f"shared prefix, batched (cache x A):    {batched_rate:8.1f} cand/s   x{batched_rate / naive_rate:.1f}")
    print(f"max |shared - naive| score difference: {max_abs_diff:.2e}")
    print(
        json.dumps(
            {
                "torch_threads": torch.get_num_threads(),
                "prompt_tokens": len(tokens.prefix),
                "num_candidates": len(candidates),
                "candidate_tokens_mean": round(sum(lengths) / len(lengths), 2),
                "naive_cand_per_s": round(naive_rate, 1),
                "shared_prefix_cand_per_s": round(shared_rate, 1),
                "batched_layout_cand_per_s": round(batched_rate, 1),
                "speedup": round(shared_rate / naive_rate, 2),
                "max_abs_diff": max_abs_diff,
            }
        )
    )


if __name__ == "__main__":
    main()
