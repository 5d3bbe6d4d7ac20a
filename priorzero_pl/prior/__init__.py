"""The LLM prior: a distribution over a state's candidate actions from a language model."""

from priorzero_pl.prior.backend import PriorBackend
from priorzero_pl.prior.cache import LRUCache
from priorzero_pl.prior.config import PriorConfig, build_prior, build_prompt_builder
from priorzero_pl.prior.fallback import FallbackPrior
from priorzero_pl.prior.hf_backend import HFPrior
from priorzero_pl.prior.prompt import PROMPT_VERSION, HistoryStep, PromptBuilder
from priorzero_pl.prior.request import PriorRequest
from priorzero_pl.prior.uniform import UniformPrior
from priorzero_pl.prior.vllm_backend import VLLMPrior

__all__ = [
    "PROMPT_VERSION",
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
]
