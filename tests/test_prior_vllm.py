"""The vllm backend end to end against a fake async engine (vLLM itself needs a GPU).

The fake implements the slice of ``AsyncLLMEngine`` the backend uses (async ``generate`` yielding
outputs with ``prompt_logprobs``, ``collective_rpc`` onto workers, ``reset_prefix_cache``) and
computes the prompt log-probs with the tiny HF model, so the vLLM path must agree with the HF path.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Callable

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.models.llm import load_llm
from priorzero_pl.prior import FallbackPrior, HFPrior, PriorRequest, UniformPrior, VLLMPrior
from priorzero_pl.prior.tokenization import encode_candidates
from priorzero_pl.prior.vllm_worker import WeightSyncWorkerExtension

SAMPLING = SimpleNamespace(max_tokens=1, prompt_logprobs=0, skip_reading_prefix_cache=False)


class FakeWorkerModel:
    def __init__(self) -> None:
        self.loaded: list[tuple[str, torch.Tensor]] = []

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        self.loaded.extend(weights)


class FakeWorker(WeightSyncWorkerExtension):
    """A vLLM worker with the extension mixed in, as ``worker_extension_cls`` does."""

    def __init__(self) -> None:
        self.model_runner = SimpleNamespace(model=FakeWorkerModel())


class FakeEngine:
    """Stands in for ``AsyncLLMEngine``. ``stall(n)`` decides whether request attempt ``n`` hangs.

    Prefix caching is emulated as in vLLM: unless ``skip_reading_prefix_cache`` is set, a request
    reuses the longest block-aligned prefix of an earlier request (at most all but its last token),
    and the positions it did not compute get no prompt log-probs (the list is shorter at the front).
    """

    def __init__(
        self, model: PreTrainedModel, stall: Callable[[int], bool] = lambda n: False, block_size: int = 16
    ) -> None:
        self.model = model
        self.stall = stall
        self.block_size = block_size
        self.completed: list[list[int]] = []
        self.cache_hits = 0
        self.attempts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.workers = [FakeWorker()]
        self.prefix_cache_resets = 0
        self.shut_down = False
        self.fail_next = 0

    async def generate(self, prompt: dict[str, list[int]], sampling_params: Any, request_id: str) -> AsyncIterator[Any]:
        assert sampling_params.max_tokens == 1 and sampling_params.prompt_logprobs == 0
        attempt = self.attempts
        self.attempts += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the other requests of the call arrive, as in a batching engine
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("engine hiccup")
            if self.stall(attempt):
                await asyncio.sleep(3600)
            ids = prompt["prompt_token_ids"]
            cached = 0
            if getattr(sampling_params, "skip_reading_prefix_cache", True) is False:
                shared = max((_common_prefix(ids, done) for done in self.completed), default=0)
                cached = min(shared // self.block_size * self.block_size, len(ids) - 1)
                self.cache_hits += cached > 0
            with torch.no_grad():
                logprobs = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            prompt_logprobs: list[dict[int, Any] | None] = [None]
            for position in range(cached + 1, len(ids)):
                row = logprobs[position - 1]
                top = int(row.argmax())
                entry = {top: SimpleNamespace(logprob=float(row[top]), rank=1)}
                entry[ids[position]] = SimpleNamespace(logprob=float(row[ids[position]]), rank=2)
                prompt_logprobs.append(entry)
            self.completed.append(list(ids))
            yield SimpleNamespace(request_id=request_id, finished=True, prompt_logprobs=prompt_logprobs)
        finally:
            self.in_flight -= 1

    async def collective_rpc(
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> list[Any]:
        assert isinstance(method, str), "vLLM only takes method names without insecure serialization"
        return [getattr(worker, method)(*args, **(kwargs or {})) for worker in self.workers]

    async def reset_prefix_cache(self) -> bool:
        self.prefix_cache_resets += 1
        return True

    def shutdown(self) -> None:
        self.shut_down = True


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.fixture(scope="module")
def llm(tiny_lm_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return load_llm(tiny_lm_path)


PROMPTS = ["Cellar\nIt is dark.\nNext action:\n", "Attic > "]
CANDIDATES = [["go up", "light lamp", "wait"], ["take rope", "go down"]]


def make_prior(engine: FakeEngine, tokenizer: PreTrainedTokenizerBase, **kwargs: Any) -> VLLMPrior:
    return VLLMPrior(engine, tokenizer, sampling_params=SAMPLING, **kwargs)


def test_scores_match_hf_and_requests_run_concurrently(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    engine = FakeEngine(model)
    prior = make_prior(engine, tokenizer, temperature=0.7, length_normalise=True)
    try:
        got = prior.score(PROMPTS, CANDIDATES)
    finally:
        prior.close()
    want = HFPrior(model, tokenizer, temperature=0.7, length_normalise=True).score(PROMPTS, CANDIDATES)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)
    assert engine.attempts == 5
    assert engine.max_in_flight == 5  # all candidates of all prompts in one engine batch
    assert engine.shut_down


@pytest.mark.parametrize("hit", ["inside_prompt", "whole_prompt"])
def test_prefix_cache_hits_keep_scores_exact(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase], hit: str) -> None:
    """A hit that stops inside the prompt only drops log-probs from the front. A hit over the whole
    prompt leaves the first candidate token without a log-prob (its logits were never computed), so
    that request goes again without cache reads. Either way the scores are those of the HF path."""
    model, tokenizer = llm
    prefix_len = len(encode_candidates(tokenizer, PROMPTS[0], CANDIDATES[0]).prefix)
    engine = FakeEngine(model, block_size=prefix_len - 1 if hit == "inside_prompt" else 1)
    prior = make_prior(engine, tokenizer)
    try:
        got = prior.score(PROMPTS[:1], CANDIDATES[:1])[0]
    finally:
        prior.close()
    want = HFPrior(model, tokenizer).score(PROMPTS[:1], CANDIDATES[:1])[0]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert engine.cache_hits == 2  # the second and third candidate reuse the first one's prompt
    assert prior.recomputed == (0 if hit == "inside_prompt" else 2)


def test_timeout_is_retried(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    engine = FakeEngine(model, stall=lambda attempt: attempt == 0)
    prior = make_prior(engine, tokenizer, timeout_s=0.2, retries=1)
    try:
        out = prior.score(PROMPTS[:1], CANDIDATES[:1])
    finally:
        prior.close()
    assert prior.timeouts == 1 and engine.attempts == 4
    assert torch.logsumexp(out[0], 0).abs() < 1e-5


def test_engine_error_is_retried(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    engine = FakeEngine(model)
    engine.fail_next = 1
    prior = make_prior(engine, tokenizer, retries=1)
    try:
        assert prior.score(PROMPTS[:1], CANDIDATES[:1])[0].shape == (3,)
    finally:
        prior.close()
    assert engine.attempts == 4


def test_persistent_timeout_falls_back_to_hf(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    engine = FakeEngine(model, stall=lambda attempt: True)
    vllm_prior = make_prior(engine, tokenizer, timeout_s=0.1, retries=1)
    prior = FallbackPrior([vllm_prior, HFPrior(model, tokenizer), UniformPrior()])
    try:
        requests = [PriorRequest(p, c) for p, c in zip(PROMPTS, CANDIDATES)]
        out = prior.score(requests)
    finally:
        prior.close()
    assert prior.active_backend == "hf"
    metrics = prior.metrics()
    assert metrics["fallbacks"] == 1 and metrics["failures/vllm"] == 1 and metrics["backend/hf"] == 1
    assert vllm_prior.timeouts >= 2  # the first attempt and its retry
    want = HFPrior(model, tokenizer).score(PROMPTS, CANDIDATES)
    for g, w in zip(out, want):
        torch.testing.assert_close(g, w)


def test_load_weights_reaches_the_worker_model_and_resets_prefix_cache(
    llm: tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> None:
    model, tokenizer = llm
    engine = FakeEngine(model)
    prior = make_prior(engine, tokenizer)
    try:
        prior.load_weights(model.named_parameters())
    finally:
        prior.close()
    loaded = engine.workers[0].model_runner.model.loaded
    params = dict(model.named_parameters())
    assert [name for name, _ in loaded] == list(params)
    for name, tensor in loaded:
        assert tensor.device.type == "cpu" and not tensor.requires_grad
        assert torch.equal(tensor, params[name].detach())
    assert engine.prefix_cache_resets == 1


def test_close_stops_the_loop_thread(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    before = {t.name for t in threading.enumerate()}
    prior = make_prior(FakeEngine(model), tokenizer)
    prior.close()
    prior.close()
    assert {t.name for t in threading.enumerate()} <= before


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_errors_say_how_to_get_it(
    tiny_lm_path: Path, llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]
) -> None:
    with pytest.raises(PriorZeroInputError, match=r"pip install 'priorzero-pl\[vllm\]'.*vllm_required: false"):
        VLLMPrior.from_model_path(tiny_lm_path)
    with pytest.raises(PriorZeroInputError, match="sampling_params"):
        VLLMPrior(FakeEngine(llm[0]), llm[1])


def test_bad_settings(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    with pytest.raises(PriorZeroInputError, match="timeout"):
        make_prior(FakeEngine(model), tokenizer, timeout_s=0)
    with pytest.raises(PriorZeroInputError, match="retries"):
        make_prior(FakeEngine(model), tokenizer, retries=-1)
