"""FallbackPrior: order, per-call fall-through, cache, metrics; build_prior and PriorConfig."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import pytest
import torch

from priorzero_pl.llm import LLMPolicy
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.prior import (
    FallbackPrior,
    HFPrior,
    LRUCache,
    PriorConfig,
    PriorRequest,
    UniformPrior,
    build_prior,
    build_prompt_builder,
)


class ScriptedBackend:
    """Prefers candidate 0 by a fixed margin; raises while ``fail`` is set; counts its calls."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.calls: list[int] = []
        self.closed = False

    def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        self.calls.append(len(prompts))
        if self.fail:
            raise RuntimeError(f"{self.name} is down")
        return [torch.log_softmax(torch.tensor([2.0] + [0.0] * (len(c) - 1)), 0) for c in candidates]

    def close(self) -> None:
        self.closed = True


def requests(n: int = 2) -> list[PriorRequest]:
    return [PriorRequest(f"prompt {i}", ["north", "south", "east"], state_hash=f"s{i}") for i in range(n)]


def test_uniform_prior() -> None:
    out = UniformPrior().score(["p", "q"], [["a", "b", "c", "d"], ["a"]])
    torch.testing.assert_close(out[0], torch.full((4,), -math.log(4)))
    torch.testing.assert_close(out[1], torch.zeros(1))


def test_first_working_backend_serves_in_order() -> None:
    first, second = ScriptedBackend("vllm"), ScriptedBackend("hf")
    prior = FallbackPrior([first, second, UniformPrior()])
    out = prior.score(requests())
    assert first.calls == [2] and second.calls == []
    assert prior.active_backend == "vllm"
    assert out[0].argmax() == 0 and torch.logsumexp(out[0], 0).abs() < 1e-6
    metrics = prior.metrics()
    assert metrics["backend/vllm"] == 1 and metrics["backend/hf"] == 0 and metrics["fallbacks"] == 0


def test_failing_backend_falls_through_per_call_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    flaky, hf = ScriptedBackend("vllm", fail=True), ScriptedBackend("hf")
    prior = FallbackPrior([flaky, hf, UniformPrior()])
    with caplog.at_level(logging.WARNING, logger="priorzero_pl.prior.fallback"):
        prior.score(requests(1))
        prior.score([PriorRequest("other", ["a", "b"])])
    assert prior.active_backend == "hf"
    assert len(flaky.calls) == 2 and len(hf.calls) == 2
    metrics = prior.metrics()
    assert metrics["fallbacks"] == 2 and metrics["failures/vllm"] == 2 and metrics["backend/hf"] == 2
    assert len([r for r in caplog.records if "'vllm' failed" in r.getMessage()]) == 1

    flaky.fail = False  # recovered: the next call goes back to the preferred backend
    prior.score([PriorRequest("third", ["a", "b"])])
    assert prior.active_backend == "vllm"


def test_malformed_scores_count_as_failure() -> None:
    class NaNBackend(ScriptedBackend):
        def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
            return [torch.full((len(c),), float("nan")) for c in candidates]

    prior = FallbackPrior([NaNBackend("hf"), UniformPrior()])
    out = prior.score(requests(1))
    torch.testing.assert_close(out[0], torch.full((3,), -math.log(3)))
    assert prior.metrics()["failures/hf"] == 1 and prior.active_backend == "uniform"


def test_all_failing_raises() -> None:
    prior = FallbackPrior([ScriptedBackend("hf", fail=True)])
    with pytest.raises(RuntimeError, match="every prior backend failed"):
        prior.score(requests(1))


def test_input_errors_are_not_hidden() -> None:
    class Strict(ScriptedBackend):
        def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
            raise PriorZeroInputError("bad prompt")

    with pytest.raises(PriorZeroInputError, match="bad prompt"):
        FallbackPrior([Strict("hf"), UniformPrior()]).score(requests(1))
    with pytest.raises(PriorZeroInputError, match="at least one action"):
        PriorRequest("p", [])


def test_cache_hits_cost_nothing_and_clear() -> None:
    backend = ScriptedBackend("hf")
    prior = FallbackPrior([backend], cache_size=8)
    first = prior.score(requests(2))
    again = prior.score(requests(2) + [requests(3)[2], requests(3)[2]])
    assert backend.calls == [2, 1]  # only the new state, once although asked twice
    torch.testing.assert_close(again[0], first[0])
    again[0].add_(1.0)  # callers get copies: the cached entry is untouched
    torch.testing.assert_close(prior.score(requests(1))[0], first[0])
    assert prior.metrics()["cache_hit_rate"] == pytest.approx(3 / 7)  # 7 lookups: 0 + 2 + 1 hits

    prior.clear_cache()
    prior.score(requests(1))
    assert backend.calls == [2, 1, 1]


def test_cache_key_includes_state_hash() -> None:
    backend = ScriptedBackend("hf")
    prior = FallbackPrior([backend])
    prior.score([PriorRequest("p", ["a", "b"], state_hash="x")])
    prior.score([PriorRequest("p", ["a", "b"], state_hash="y")])
    prior.score([PriorRequest("p", ["b", "a"], state_hash="x")])
    assert backend.calls == [1, 1, 1]


def test_lru_cache_evicts_least_recently_used() -> None:
    cache = LRUCache(2)
    cache.put("a", torch.zeros(1))
    cache.put("b", torch.ones(1))
    assert cache.get("a") is not None
    cache.put("c", torch.ones(1))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    disabled = LRUCache(0)
    disabled.put("a", torch.zeros(1))
    assert disabled.get("a") is None
    with pytest.raises(PriorZeroInputError):
        LRUCache(-1)


def test_metrics_entropy_and_latency() -> None:
    prior = FallbackPrior([UniformPrior()], cache_size=0)
    prior.score([PriorRequest("p", ["a", "b", "c", "d"])])
    metrics = prior.metrics()
    assert metrics["entropy"] == pytest.approx(math.log(4))
    assert metrics["latency_ms"] > 0
    assert metrics["backend/uniform"] == 1


def test_backend_lookup_and_close() -> None:
    hf = ScriptedBackend("hf")
    prior = FallbackPrior([hf, UniformPrior()])
    assert prior.backend("hf") is hf and prior.backend("vllm") is None
    assert prior.backend_names == ["hf", "uniform"]
    prior.close()
    assert hf.closed
    with pytest.raises(PriorZeroInputError, match="distinct"):
        FallbackPrior([ScriptedBackend("hf"), ScriptedBackend("hf")])
    with pytest.raises(PriorZeroInputError, match="at least one backend"):
        FallbackPrior([])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backends": []}, "empty"),
        ({"backends": ["vllm", "gpt"]}, "unknown"),
        ({"backends": ["hf", "hf"]}, "twice"),
        ({"backends": ["hf"], "vllm_required": True}, "vllm_required"),
        ({"temperature": 0.0}, "temperature"),
        ({"cache_size": -1}, "cache_size"),
        ({"vllm_timeout_s": 0.0}, "vllm_timeout_s"),
        ({"vllm_retries": -1}, "vllm_retries"),
        ({"vllm_gpu_memory_utilization": 1.5}, "gpu_memory"),
        ({"history_len": -2}, "history_len"),
        ({"max_observation_chars": 0}, "max_observation_chars"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(PriorZeroInputError, match=match):
        PriorConfig(**kwargs)  # type: ignore[arg-type]


def test_build_prior_skips_vllm_without_it(tiny_lm_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On this CPU machine vLLM cannot start: one log line, then hf serves; the prior is the same
    module object as the trainable LLM."""
    model, tokenizer = load_llm(tiny_lm_path)
    config = PriorConfig(temperature=1.5, history_len=1)
    with caplog.at_level(logging.WARNING, logger="priorzero_pl.prior.config"):
        prior = build_prior(config, LLMPolicy(model, tokenizer), model_path=str(tiny_lm_path))
    skips = [r.getMessage() for r in caplog.records if "'vllm' skipped" in r.getMessage()]
    assert len(skips) == 1 and "pip install" in skips[0]
    assert prior.backend_names == ["hf", "uniform"]
    hf = prior.backend("hf")
    assert isinstance(hf, HFPrior) and hf.policy.model is model and hf.policy.temperature == 1.5

    builder = build_prompt_builder(config, tokenizer)
    assert builder.history_len == 1
    cands = ["go north", "open mailbox"]
    out = prior.score([PriorRequest(builder.build([], "West of House", cands), cands)])
    assert out[0].shape == (2,) and prior.active_backend == "hf"


def test_build_prior_vllm_required_is_an_error(tiny_lm_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match=r"priorzero-pl\[vllm\]"):
        build_prior(PriorConfig(vllm_required=True), None, model_path=str(tiny_lm_path))


def test_build_prior_without_llm_is_uniform() -> None:
    prior = build_prior(PriorConfig(), None, model_path=None)
    assert prior.backend_names == ["uniform"]
    with pytest.raises(PriorZeroInputError, match="no prior backend"):
        build_prior(PriorConfig(backends=["hf"]), None, model_path=None)
