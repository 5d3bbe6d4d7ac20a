"""The prior the search talks to: backends in order of preference, a cache, and the figures."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import Sequence

import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.backend import PriorBackend
from priorzero_pl.prior.cache import LRUCache
from priorzero_pl.prior.request import PriorRequest

log = logging.getLogger(__name__)


def _check_scores(scores: list[torch.Tensor], requests: Sequence[PriorRequest]) -> None:
    """A backend that answers with the wrong shape or NaNs has failed as surely as one that raised."""
    if len(scores) != len(requests):
        raise ValueError(f"backend returned {len(scores)} score tensors for {len(requests)} requests")
    for tensor, request in zip(scores, requests):
        if tensor.shape != (len(request.candidates),):
            raise ValueError(f"backend returned shape {tuple(tensor.shape)} for {len(request.candidates)} candidates")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError("backend returned non-finite log-probs")


def _entropy(logprobs: torch.Tensor) -> float:
    return float(-(logprobs.exp() * logprobs).sum())


class FallbackPrior:
    """Scores requests with the first backend that succeeds, caching answers by state.

    Backends are tried in the given order for every call: one that raises (or times out, or
    returns malformed scores) is counted and the same call goes to the next one, so a flaky
    vLLM engine costs one slower call instead of the run. Input errors
    (:class:`PriorZeroInputError`) are raised, not hidden behind a fallback.

    Args:
        backends: in order of preference; end with ``UniformPrior`` so that some backend always
            answers.
        cache_size: LRU capacity in requests (0 disables the cache).
        metrics_window: entropy and latency in :meth:`metrics` are means over this many calls.
    """

    def __init__(self, backends: Sequence[PriorBackend], *, cache_size: int = 4096, metrics_window: int = 100) -> None:
        if not backends:
            raise PriorZeroInputError("FallbackPrior needs at least one backend (add 'uniform', which cannot fail)")
        names = [backend.name for backend in backends]
        if len(set(names)) != len(names):
            raise PriorZeroInputError(f"prior backends must have distinct names, got {names}")
        if metrics_window <= 0:
            raise PriorZeroInputError(f"metrics_window must be > 0, got {metrics_window}")
        self._backends = list(backends)
        self._cache = LRUCache(cache_size)
        self._served: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._fallbacks = 0
        self._lookups = 0
        self._hits = 0
        self._entropy: deque[float] = deque(maxlen=metrics_window)
        self._latency_ms: deque[float] = deque(maxlen=metrics_window)
        self.active_backend: str = names[0]
        """The backend that served the last call that needed one (the first backend before any)."""

    def score(self, requests: Sequence[PriorRequest]) -> list[torch.Tensor]:
        """``[len(r.candidates)]`` float32 CPU log-probs per request, normalised over its candidates.

        Cached requests cost nothing; the rest (deduplicated) go to the backends in one call.
        """
        start = time.perf_counter()
        results: list[torch.Tensor | None] = [None] * len(requests)
        misses: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
        for index, request in enumerate(requests):
            key = request.cache_key()
            cached = self._cache.get(key)
            self._lookups += 1
            if cached is not None:
                self._hits += 1
                results[index] = cached.clone()
            else:
                misses.setdefault(key, []).append(index)
        if misses:
            scored = self._score_uncached([requests[indices[0]] for indices in misses.values()])
            for (key, indices), scores in zip(misses.items(), scored):
                self._cache.put(key, scores)
                for index in indices:
                    results[index] = scores.clone()
        final = [scores for scores in results if scores is not None]
        if final:
            self._entropy.append(sum(_entropy(scores) for scores in final) / len(final))
        self._latency_ms.append((time.perf_counter() - start) * 1000.0)
        return final

    def _score_uncached(self, requests: list[PriorRequest]) -> list[torch.Tensor]:
        prompts = [request.prompt for request in requests]
        candidates = [request.candidates for request in requests]
        for position, backend in enumerate(self._backends):
            try:
                scores = [tensor.detach().float().cpu() for tensor in backend.score(prompts, candidates)]
                _check_scores(scores, requests)
            except PriorZeroInputError:
                raise
            except Exception as exc:  # noqa: BLE001 - any backend failure falls back; counted and logged once
                self._failed[backend.name] += 1
                is_last = position == len(self._backends) - 1
                if not is_last:
                    self._fallbacks += 1
                if backend.name not in self._warned:
                    self._warned.add(backend.name)
                    nxt = "nothing" if is_last else repr(self._backends[position + 1].name)
                    log.warning(
                        "prior backend %r failed (%s: %s); this call falls back to %s; further failures are "
                        "only counted (prior/failures/%s)",
                        backend.name, type(exc).__name__, exc, nxt, backend.name,
                    )
                continue
            self._served[backend.name] += 1
            self.active_backend = backend.name
            return scores
        raise RuntimeError(f"every prior backend failed: {[b.name for b in self._backends]}; add 'uniform' last")

    def metrics(self) -> dict[str, float]:
        """Figures to log under ``prior/``: ``entropy`` (mean nats per request) and ``latency_ms``
        (per call) over the last ``metrics_window`` calls; cumulative ``cache_hit_rate``,
        ``fallbacks``, ``backend/<name>`` (calls served) and ``failures/<name>``."""
        figures = {
            "entropy": sum(self._entropy) / len(self._entropy) if self._entropy else 0.0,
            "latency_ms": sum(self._latency_ms) / len(self._latency_ms) if self._latency_ms else 0.0,
            "cache_hit_rate": self._hits / self._lookups if self._lookups else 0.0,
            "fallbacks": float(self._fallbacks),
        }
        for backend in self._backends:
            figures[f"backend/{backend.name}"] = float(self._served[backend.name])
            figures[f"failures/{backend.name}"] = float(self._failed[backend.name])
        return figures

    def backend(self, name: str) -> PriorBackend | None:
        """The backend called ``name`` (e.g. ``"vllm"`` for the weight-sync callback), or None."""
        return next((backend for backend in self._backends if backend.name == name), None)

    @property
    def backend_names(self) -> list[str]:
        """Names of the backends that started, in order of preference."""
        return [backend.name for backend in self._backends]

    def clear_cache(self) -> None:
        """Drop all cached priors: call after the LLM's weights changed."""
        self._cache.clear()

    def close(self) -> None:
        """Close every backend; one that fails to close does not keep the others open."""
        for backend in self._backends:
            try:
                backend.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort at shutdown
                log.warning("closing prior backend %r failed: %s", backend.name, exc)
