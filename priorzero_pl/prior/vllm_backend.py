"""The ``vllm`` prior: candidate scores from a vLLM async engine with prefix caching.

Each candidate is one request ``prompt + candidate + eos`` (as token ids, split exactly as the HF
path splits them) that generates a single token and returns prompt log-probs; the log-probs at the
candidate's positions sum to its score. All requests of a call are in flight together, so the
engine batches them, and prefix caching computes each prompt's KV blocks once for all its
candidates.

vLLM skips prefix-cache reads for requests with prompt log-probs by default (cached positions have
no logits). Where ``SamplingParams`` has ``skip_reading_prefix_cache`` this prior turns the reads
back on: a cache hit then only shortens the log-prob list from the front, and the candidate's
positions are the *last* ones. If a hit reaches into a candidate's own tokens (another candidate
started with them), its log-probs are missing and that request alone is recomputed without cache
reads.

vLLM itself is imported only in :meth:`VLLMPrior.from_model_path` and the default sampling
parameters: the package must import (and the ``hf``/``uniform`` priors work) without it.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.candidate_scoring import normalise_scores
from priorzero_pl.prior.event_loop import BackgroundEventLoop
from priorzero_pl.llm.tokenization import CandidateTokens, encode_candidates
from priorzero_pl.prior.vllm_worker import DEFAULT_CHUNK_BYTES, LOAD_WEIGHTS_METHOD, WORKER_EXTENSION, pack_weights

log = logging.getLogger(__name__)

VLLM_INSTALL_HINT = (
    "install the extra with `pip install 'priorzero-pl[vllm]'` on a CUDA machine, "
    "or set prior.vllm_required: false to fall back to the hf prior"
)


class AsyncScoringEngine(Protocol):
    """The part of vLLM's ``AsyncLLMEngine`` (``vllm.v1.engine.async_llm.AsyncLLM``) used here.

    ``generate(prompt, sampling_params, request_id)`` is an async generator of ``RequestOutput``;
    the last one carries ``prompt_logprobs``: one entry per prompt position (``None`` at position
    0), each mapping token id -> an object with a ``.logprob`` float, and always holding the
    prompt's own token. ``collective_rpc(name, args=...)`` calls a method of every worker (here one
    added by ``vllm_worker.WeightSyncWorkerExtension``); ``reset_prefix_cache`` drops cached KV.
    """

    def generate(self, prompt: Any, sampling_params: Any, request_id: str) -> Any: ...

    async def collective_rpc(
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> list[Any]: ...

    async def reset_prefix_cache(self) -> Any: ...


class _MissingLogprobs(RuntimeError):
    """The engine returned no log-prob for some candidate position (prefix-cache hit into it)."""


def _continuation_score(prompt_logprobs: Any, continuation: Sequence[int], length_normalise: bool) -> float:
    """Sum (or mean) of the log-probs of ``continuation``, the last tokens of the request.

    Read from the end of ``prompt_logprobs``: a prefix-cache hit drops entries from the front only.
    """
    count = len(continuation)
    available = 0 if prompt_logprobs is None else len(prompt_logprobs)
    if available < count:
        raise _MissingLogprobs(f"vLLM returned {available} prompt log-probs, the candidate needs {count}")
    total = 0.0
    for index, token in enumerate(continuation):
        entry = prompt_logprobs[available - count + index]
        if entry is None or token not in entry:
            raise _MissingLogprobs(f"vLLM returned no log-prob for candidate token {token} (position {index})")
        total += float(entry[token].logprob)
    return total / count if length_normalise else total


def _without_cache_reads(sampling_params: Any) -> Any:
    """The same parameters with prefix-cache reads off, so every prompt position gets a log-prob."""
    if getattr(sampling_params, "skip_reading_prefix_cache", None) is not False:
        return sampling_params
    recompute = copy.copy(sampling_params)
    recompute.skip_reading_prefix_cache = True
    return recompute


class VLLMPrior:
    """Prior backend over an async vLLM engine (or any engine with the same ``generate``).

    Args:
        engine: an :class:`AsyncScoringEngine`; tests pass a fake.
        tokenizer: the model's tokenizer (for the prompt/candidate boundary; see ``tokenization``).
        temperature: of the normalisation over candidates.
        length_normalise: mean instead of sum of candidate token log-probs.
        timeout_s: limit for one request attempt; a stuck engine must not stall self-play.
        retries: further attempts per request after a timeout or error; when all fail, ``score``
            raises and ``FallbackPrior`` serves that call from the next backend.
        sampling_params: vLLM ``SamplingParams`` for scoring (``max_tokens=1``, ``prompt_logprobs=0``);
            default built with vLLM imported.
        loop: the event loop thread the engine lives on; default a new one owned by this prior.
        max_chunk_bytes: tensor bytes per weight-sync message (see :meth:`load_weights`).
    """

    name = "vllm"

    def __init__(
        self,
        engine: AsyncScoringEngine,
        tokenizer: PreTrainedTokenizerBase,
        *,
        temperature: float = 1.0,
        length_normalise: bool = False,
        timeout_s: float = 30.0,
        retries: int = 1,
        sampling_params: Any = None,
        loop: BackgroundEventLoop | None = None,
        max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if timeout_s <= 0:
            raise PriorZeroInputError(f"vllm_timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise PriorZeroInputError(f"vllm_retries must be >= 0, got {retries}")
        if max_chunk_bytes < 1:
            raise PriorZeroInputError(f"VLLMPrior max_chunk_bytes must be >= 1, got {max_chunk_bytes}")
        self.engine = engine
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.length_normalise = length_normalise
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_chunk_bytes = max_chunk_bytes
        self.sampling_params = sampling_params if sampling_params is not None else _scoring_sampling_params()
        self._recompute_params = _without_cache_reads(self.sampling_params)
        self._loop = loop if loop is not None else BackgroundEventLoop("priorzero-vllm")
        self._request_ids = itertools.count()
        self.timeouts = 0
        """Request attempts that ran past ``timeout_s`` (each followed by a retry or a failure)."""
        self.recomputed = 0
        """Requests re-sent without prefix-cache reads because a cache hit covered candidate tokens."""

    @classmethod
    def from_model_path(
        cls,
        path: str | Path,
        *,
        tokenizer: PreTrainedTokenizerBase | None = None,
        temperature: float = 1.0,
        length_normalise: bool = False,
        timeout_s: float = 30.0,
        retries: int = 1,
        device_index: int | None = None,
        **engine_kwargs: Any,
    ) -> VLLMPrior:
        """Start an ``AsyncLLMEngine`` on ``path`` (``engine_kwargs`` go to ``AsyncEngineArgs``, e.g.
        ``gpu_memory_utilization``, ``enable_prefix_caching``).

        The engine runs on CUDA device ``device_index`` (an index among the visible devices, passed
        as vLLM's ``device_ids``); by default the current device. Lightning sets each rank's
        current device to the rank's own before the module's ``setup`` builds the prior, so with
        ``--trainer.devices N`` every rank's engine sits next to that rank's model instead of all
        of them on ``cuda:0``, where later ranks would fail vLLM's free-memory check.

        Raises :class:`PriorZeroInputError` when vLLM is not installed or there is no CUDA device,
        which ``build_prior`` turns into a skipped backend unless vLLM is required.
        """
        try:
            import vllm
        except ImportError as exc:
            raise PriorZeroInputError(
                f"the vllm prior needs vLLM, which is not importable ({exc}): {VLLM_INSTALL_HINT}"
            ) from exc
        if not torch.cuda.is_available():
            raise PriorZeroInputError(f"the vllm prior needs a CUDA device and none is visible: {VLLM_INSTALL_HINT}")
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        device = torch.cuda.current_device() if device_index is None else device_index
        if not 0 <= device < torch.cuda.device_count():
            raise PriorZeroInputError(
                f"the vllm prior's device_index={device} is not one of the {torch.cuda.device_count()} visible CUDA devices"
            )
        loop = BackgroundEventLoop("priorzero-vllm")

        async def start() -> Any:
            # Created on the loop it will serve: the engine binds its output task to that loop.
            args = vllm.AsyncEngineArgs(
                model=str(path), worker_extension_cls=WORKER_EXTENSION, device_ids=[device], **engine_kwargs
            )
            return vllm.AsyncLLMEngine.from_engine_args(args)

        try:
            engine = loop.run(start())
        except BaseException:
            loop.close()
            raise
        return cls(
            engine,
            tokenizer,
            temperature=temperature,
            length_normalise=length_normalise,
            timeout_s=timeout_s,
            retries=retries,
            loop=loop,
        )

    def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """``[A_i]`` float32 CPU log-probs per prompt, normalised over its candidates."""
        if len(prompts) != len(candidates):
            raise PriorZeroInputError(f"got {len(prompts)} prompts but {len(candidates)} candidate lists")
        encoded = [encode_candidates(self.tokenizer, prompt, cands) for prompt, cands in zip(prompts, candidates)]
        flat = self._loop.run(self._score_all(encoded))
        out: list[torch.Tensor] = []
        offset = 0
        for tokens in encoded:
            count = len(tokens.continuations)
            raw = torch.tensor(flat[offset : offset + count], dtype=torch.float32)
            out.append(normalise_scores(raw, self.temperature))
            offset += count
        return out

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Push new LLM weights (Hugging Face parameter names) into the engine's model.

        The tensors go as :class:`~priorzero_pl.prior.vllm_worker.WeightChunk` s (bytes + dtype +
        shape, ``max_chunk_bytes`` per ``collective_rpc``; see ``vllm_worker`` for why not as
        tensors), through CPU memory: fine for the small and mid-sized models this prior runs,
        while very large ones want an NCCL broadcast instead. Every worker must report loading
        every tensor of a chunk, or this raises. The prefix cache is reset afterwards: its KV
        blocks came from the old weights.
        """
        for chunk in pack_weights(named_tensors, self.max_chunk_bytes):
            loaded = self._loop.run(self.engine.collective_rpc(LOAD_WEIGHTS_METHOD, args=(chunk,)))
            if not loaded or any(count != len(chunk["names"]) for count in loaded):
                raise RuntimeError(
                    f"vLLM weight sync: the workers loaded {loaded} of {len(chunk['names'])} tensors "
                    f"(first {chunk['names'][0]!r}); the engine is left with mixed weights"
                )
        self._loop.run(self.engine.reset_prefix_cache())

    def close(self) -> None:
        """Shut the engine down and stop the event loop thread."""
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        self._loop.close()

    async def _score_all(self, encoded: list[CandidateTokens]) -> list[float]:
        tasks = [
            asyncio.ensure_future(self._score_sequence(tokens.prefix + continuation, len(tokens.prefix)))
            for tokens in encoded
            for continuation in tokens.continuations
        ]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            # One request failed for good: the call falls back, so the others' work is wasted.
            # Cancelling a request's generator makes vLLM abort it.
            for task in tasks:
                task.cancel()
            raise

    async def _score_sequence(self, ids: list[int], start: int) -> float:
        last_error: BaseException | None = None
        for attempt in range(self.retries + 1):
            request_id = f"priorzero-{next(self._request_ids)}"
            try:
                return await asyncio.wait_for(self._request_score(ids, start, request_id), self.timeout_s)
            except asyncio.TimeoutError as exc:
                self.timeouts += 1
                last_error = TimeoutError(f"vLLM request timed out after {self.timeout_s} s")
                last_error.__cause__ = exc
            except Exception as exc:  # noqa: BLE001 - any engine failure is retried, then falls back
                last_error = exc
            log.debug(
                "vLLM request %s failed (attempt %d of %d): %s", request_id, attempt + 1, self.retries + 1, last_error
            )
        assert last_error is not None
        raise last_error

    async def _request_score(self, ids: list[int], start: int, request_id: str) -> float:
        output = await self._final_output(ids, request_id, self.sampling_params)
        try:
            return _continuation_score(output.prompt_logprobs, ids[start:], self.length_normalise)
        except _MissingLogprobs:
            if self._recompute_params is self.sampling_params:
                raise
        self.recomputed += 1
        output = await self._final_output(ids, f"{request_id}-full", self._recompute_params)
        return _continuation_score(output.prompt_logprobs, ids[start:], self.length_normalise)

    async def _final_output(self, ids: list[int], request_id: str, sampling_params: Any) -> Any:
        final = None
        # A dict with prompt_token_ids is vLLM's TokensPrompt: the ids are used as given, so the
        # boundary between prompt and candidate is the one computed by encode_candidates.
        async for output in self.engine.generate({"prompt_token_ids": ids}, sampling_params, request_id):
            final = output
        if final is None:
            raise RuntimeError(f"vLLM request {request_id} finished without output")
        return final


def _scoring_sampling_params() -> Any:
    """``SamplingParams`` for scoring: one generated token, prompt log-probs of the prompt's own
    tokens (``prompt_logprobs=0``), no detokenisation, prefix-cache reads on where vLLM allows it
    (see the module docstring)."""
    try:
        from vllm import SamplingParams
    except ImportError as exc:
        raise PriorZeroInputError(
            f"VLLMPrior without explicit sampling_params needs vLLM ({exc}): {VLLM_INSTALL_HINT}"
        ) from exc
    params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
    if hasattr(params, "skip_reading_prefix_cache"):
        params.skip_reading_prefix_cache = False
    return params
