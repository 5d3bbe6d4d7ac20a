"""The LLM policy: one scoring rule for the prior, the module's LLM objectives and pretraining."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm import LLMPolicy, candidate_logprobs, load_llm
from priorzero_pl.prior import HFPrior, PriorConfig, build_prior

PROMPTS = ["Kitchen\nYou are in the kitchen.\nNext action:\n", "Cellar\nIt is dark.\nNext action:\n"]
CANDIDATES = [["go north", "open fridge", "take knife"], ["light lamp", "go up"]]


def test_log_probs_are_the_scores_normalised_at_the_temperature(tiny_lm_path: Path) -> None:
    model, tokenizer = load_llm(tiny_lm_path)
    policy = LLMPolicy(model, tokenizer, length_normalise=True, temperature=2.0)
    with torch.no_grad():
        raw = candidate_logprobs(model, tokenizer, PROMPTS, CANDIDATES, length_normalise=True)
        got = policy.log_probs(PROMPTS, CANDIDATES)
        summed = policy.scores(PROMPTS, CANDIDATES, length_normalise=False)
    for g, r, s, cands in zip(got, raw, summed, CANDIDATES):
        assert g.dtype == torch.float32 and g.shape == (len(cands),)
        torch.testing.assert_close(g, torch.log_softmax(r / 2.0, 0))
        assert not torch.allclose(s, r), "the override scores sums, not means"


def test_another_model_is_scored_by_the_same_rule(tiny_lm_path: Path) -> None:
    model, tokenizer = load_llm(tiny_lm_path)
    other, _ = load_llm(tiny_lm_path)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(0.1 * torch.randn_like(param))
        policy = LLMPolicy(model, tokenizer, length_normalise=True)
        mine = policy.log_probs(PROMPTS, CANDIDATES)
        theirs = policy.log_probs(PROMPTS, CANDIDATES, model=other)
        direct = LLMPolicy(other, tokenizer, length_normalise=True).log_probs(PROMPTS, CANDIDATES)
    for a, b, c in zip(mine, theirs, direct):
        torch.testing.assert_close(b, c)
        assert not torch.allclose(a, b)


def test_the_hf_prior_scores_with_the_policy_s_model_and_the_config_s_settings(tiny_lm_path: Path) -> None:
    model, tokenizer = load_llm(tiny_lm_path)
    policy = LLMPolicy(model, tokenizer, length_normalise=True, temperature=1.5)
    prior = build_prior(PriorConfig(backends=["hf"], temperature=1.5, length_normalise=True), policy, model_path=None)
    hf = prior.backend("hf")
    assert isinstance(hf, HFPrior) and hf.policy.model is model
    with torch.no_grad():
        want = policy.log_probs(PROMPTS, CANDIDATES)
    for got, expected in zip(hf.score(PROMPTS, CANDIDATES), want):
        torch.testing.assert_close(got, expected)
    prior.close()


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_a_temperature_that_is_not_positive_is_refused(temperature: float) -> None:
    with pytest.raises(PriorZeroInputError, match="temperature must be > 0"):
        LLMPolicy(torch.nn.Linear(2, 2), object(), temperature=temperature)  # type: ignore[arg-type]
