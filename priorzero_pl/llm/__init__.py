"""The LLM policy: loading a local causal LM, scoring a state's candidate actions with it (one
shared-prompt pass), normalising the scores into a policy. The prior (``priorzero_pl.prior``), the
module's LLM objectives and prior pretraining all score through here."""

from priorzero_pl.llm.candidate_scoring import candidate_logprobs, normalise_scores
from priorzero_pl.llm.config import LLMConfig
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.llm.policy import LLMPolicy
from priorzero_pl.llm.tokenization import CandidateTokens, encode_candidates

__all__ = [
    "CandidateTokens",
    "LLMConfig",
    "LLMPolicy",
    "candidate_logprobs",
    "encode_candidates",
    "load_llm",
    "normalise_scores",
]
