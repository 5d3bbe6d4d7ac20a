"""The vllm backend end to end against a fake async engine (vLLM itself needs a GPU).

The fake implements the slice of ``AsyncLLMEngine`` the backend uses (async ``generate`` yielding
outputs with ``prompt_logprobs``, ``collective_rpc`` onto workers, ``reset_prefix_cache``) and
computes the prompt log-probs with the tiny HF model, so the vLLM path must agree with the HF path.
Its ``collective_rpc`` sends the arguments through a plain ``msgpack`` encoder and decoder (no
hooks), as the real engine sends them to another process through its own msgpack encoder.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Callable

import msgpack
import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.llm import LLMPolicy
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.prior import FallbackPrior, HFPrior, PriorRequest, UniformPrior, VLLMPrior
from priorzero_pl.llm.tokenization import encode_candidates
from priorzero_pl.prior.vllm_worker import WeightSyncWorkerExtension, pack_weights, unpack_weights

SAMPLING = SimpleNamespace(max_tokens=1, prompt_logprobs=0, skip_reading_prefix_cache=False)


class FakeWorkerModel:
    def __init__(self) -> None:
        self.loaded: list[tuple[str, torch.Tensor]] = []
        self.calls = 0

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        self.calls += 1
        self.loaded.extend(weights)


class FakeWorker(WeightSyncWorkerExtension):
    """A vLLM worker with the extension mixed in, as ``worker_extension_cls`` does; ``get_model``
    is the model runner's (it unwraps the CUDA-graph wrapper in vLLM)."""

    def __init__(self) -> None:
        model = FakeWorkerModel()
        self.model_runner = SimpleNamespace(model=model, get_model=lambda: model)


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
        # Into the engine process and back: what survives a hook-less msgpack round trip is what
        # vLLM's encoder carries intact for utility calls (tensors do not).
        args, kwargs = msgpack.unpackb(msgpack.packb([list(args), kwargs or {}]))
        return msgpack.unpackb(msgpack.packb([getattr(worker, method)(*args, **kwargs) for worker in self.workers]))

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
    want = HFPrior(LLMPolicy(model, tokenizer, temperature=0.7, length_normalise=True)).score(PROMPTS, CANDIDATES)
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
    want = HFPrior(LLMPolicy(model, tokenizer)).score(PROMPTS[:1], CANDIDATES[:1])[0]
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
    prior = FallbackPrior([vllm_prior, HFPrior(LLMPolicy(model, tokenizer)), UniformPrior()])
    try:
        requests = [PriorRequest(p, c) for p, c in zip(PROMPTS, CANDIDATES)]
        out = prior.score(requests)
    finally:
        prior.close()
    assert prior.active_backend == "hf"
    metrics = prior.metrics()
    assert metrics["fallbacks"] == 1 and metrics["failures/vllm"] == 1 and metrics["backend/hf"] == 1
    assert vllm_prior.timeouts >= 2  # the first attempt and its retry
    want = HFPrior(LLMPolicy(model, tokenizer)).score(PROMPTS, CANDIDATES)
    for g, w in zip(out, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_load_weights_crosses_msgpack_and_rebuilds_the_same_tensors(
    llm: tuple[PreTrainedModel, PreTrainedTokenizerBase], dtype: torch.dtype
) -> None:
    """The weights cross a hook-less msgpack encoder/decoder in chunks (one ``collective_rpc``
    each) and the worker hands ``load_weights`` tensors equal to the trainer's, dtype and shape
    included; then the prefix cache is reset."""
    model, tokenizer = llm
    engine = FakeEngine(model)
    prior = make_prior(engine, tokenizer, max_chunk_bytes=4096)
    params = {name: p.detach().to(dtype) for name, p in model.named_parameters()}
    try:
        prior.load_weights(params.items())
    finally:
        prior.close()
    worker_model = engine.workers[0].model_runner.model
    assert [name for name, _ in worker_model.loaded] == list(params)
    for name, tensor in worker_model.loaded:
        assert tensor.dtype == dtype and tensor.shape == params[name].shape
        assert torch.equal(tensor, params[name]), name
    assert worker_model.calls > 1  # the 4 KiB chunks split the tiny LM into several messages
    assert engine.prefix_cache_resets == 1


def test_weight_chunks_are_plain_msgpack_and_bounded() -> None:
    weights = [("a", torch.arange(6, dtype=torch.float32).reshape(2, 3)), ("b", torch.tensor(1.5, dtype=torch.bfloat16)),
               ("c", torch.ones(100, dtype=torch.int64)), ("d", torch.zeros(0, 4))]
    chunks = list(pack_weights(weights, max_chunk_bytes=128))
    assert [chunk["names"] for chunk in chunks] == [["a", "b"], ["c"], ["d"]]  # "c" alone is 800 bytes
    rebuilt = [pair for chunk in chunks for pair in unpack_weights(msgpack.unpackb(msgpack.packb(chunk)))]
    assert [name for name, _ in rebuilt] == ["a", "b", "c", "d"]
    for (_, want), (_, got) in zip(weights, rebuilt):
        assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)
    with pytest.raises(TypeError):
        msgpack.packb([("a", weights[0][1])])  # what the old payload was: a tensor does not cross
    with pytest.raises(ValueError, match="unknown torch dtype"):
        unpack_weights({**chunks[0], "dtypes": ["float32", "no_such_dtype"]})
    with pytest.raises(ValueError, match="needs bytes"):
        unpack_weights({**chunks[1], "data": chunks[1]["data"][:10]})


def test_a_worker_that_loads_too_few_tensors_is_an_error(llm: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    model, tokenizer = llm
    engine = FakeEngine(model)
    engine.workers[0].priorzero_load_weights = lambda chunk: 0  # type: ignore[method-assign]
    prior = make_prior(engine, tokenizer)
    try:
        with pytest.raises(RuntimeError, match="loaded"):
            prior.load_weights(model.named_parameters())
    finally:
        prior.close()
    assert engine.prefix_cache_resets == 0


class FakeVLLM:
    """The ``vllm`` module as ``from_model_path`` uses it: records the engine arguments."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.engine_args: dict[str, Any] = {}
        self.AsyncLLMEngine = SimpleNamespace(from_engine_args=lambda args: self.engine)

    def AsyncEngineArgs(self, **kwargs: Any) -> dict[str, Any]:  # noqa: N802 - vLLM's name
        self.engine_args = kwargs
        return kwargs

    @staticmethod
    def SamplingParams(**kwargs: Any) -> SimpleNamespace:  # noqa: N802 - vLLM's name
        return SimpleNamespace(skip_reading_prefix_cache=True, **kwargs)


@pytest.mark.parametrize(("current", "explicit", "want"), [(1, None, 1), (0, 3, 3)])
def test_engine_starts_on_the_ranks_own_device(
    monkeypatch: pytest.MonkeyPatch,
    tiny_lm_path: Path,
    llm: tuple[PreTrainedModel, PreTrainedTokenizerBase],
    current: int,
    explicit: int | None,
    want: int,
) -> None:
    """Rank 1 of ``--trainer.devices 2``: Lightning made ``cuda:1`` the current device before the
    module's setup, and the engine goes there (vLLM's ``device_ids``), not to ``cuda:0``."""
    fake = FakeVLLM(FakeEngine(llm[0]))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    prior = VLLMPrior.from_model_path(tiny_lm_path, tokenizer=llm[1], device_index=explicit, gpu_memory_utilization=0.2)
    prior.close()
    assert fake.engine_args["device_ids"] == [want]
    assert fake.engine_args["gpu_memory_utilization"] == 0.2 and fake.engine_args["model"] == str(tiny_lm_path)
    with pytest.raises(PriorZeroInputError, match="device_index=4 is not one of the 4 visible"):
        VLLMPrior.from_model_path(tiny_lm_path, tokenizer=llm[1], device_index=4)


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
