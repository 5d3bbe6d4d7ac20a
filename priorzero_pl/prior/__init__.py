"""The LLM prior: a distribution over a state's candidate actions from a language model.

Tokenizers' Rust thread pool does not survive ``fork`` (env workers, DataLoader workers); turning
its parallelism off before anything forks avoids the deadlock warning and the deadlock.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from priorzero_pl.prior.backend import PriorBackend  # noqa: E402
from priorzero_pl.prior.cache import LRUCache  # noqa: E402
from priorzero_pl.prior.candidate_scoring import candidate_logprobs, normalise_scores  # noqa: E402
from priorzero_pl.prior.config import PriorConfig, build_prior, build_prompt_builder  # noqa: E402
from priorzero_pl.prior.fallback import FallbackPrior  # noqa: E402
from priorzero_pl.prior.hf_backend import HFPrior  # noqa: E402
from priorzero_pl.prior.prompt import PROMPT_VERSION, HistoryStep, PromptBuilder  # noqa: E402
from priorzero_pl.prior.request import PriorRequest  # noqa: E402
from priorzero_pl.prior.tokenization import CandidateTokens, encode_candidates  # noqa: E402
from priorzero_pl.prior.uniform import UniformPrior  # noqa: E402
from priorzero_pl.prior.vllm_backend import VLLMPrior  # noqa: E402

__all__ = [
    "PROMPT_VERSION",
    "CandidateTokens",
    "FallbackPrior",
    "HFPrior",
    "HistoryStep",
    "LRUCache",
    "PriorBackend",
    "PriorConfig",
    "PriorRequest",
    "PromptBuilder",
    "UniformPrior",
    "VLLMPrior",
    "build_prior",
    "build_prompt_builder",
    "candidate_logprobs",
    "encode_candidates",
    "normalise_scores",
]
