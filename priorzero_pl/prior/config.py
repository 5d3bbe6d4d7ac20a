"""Configuration of the LLM prior and the factory that turns it into a ``FallbackPrior``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from transformers import PreTrainedTokenizerBase

from priorzero_pl.config_checks import require_int, require_number
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.policy import LLMPolicy
from priorzero_pl.prior.backend import PriorBackend
from priorzero_pl.prior.fallback import FallbackPrior
from priorzero_pl.prior.hf_backend import HFPrior
from priorzero_pl.prior.prompt import PromptBuilder
from priorzero_pl.prior.uniform import UniformPrior
from priorzero_pl.prior.vllm_backend import VLLM_INSTALL_HINT, VLLMPrior

log = logging.getLogger(__name__)

BACKEND_NAMES = ("vllm", "hf", "uniform")


@dataclass
class PriorConfig:
    """How the LLM prior is computed (the ``prior:`` section of the config)."""

    backends: list[str] = field(default_factory=lambda: ["vllm", "hf", "uniform"])
    """Backends in order of preference; each call falls to the next one when a backend fails."""
    vllm_required: bool = False
    """Make a vLLM backend that cannot start an error instead of a logged skip."""
    temperature: float = 1.0
    """Softmax temperature over candidate scores (> 1 flattens the prior)."""
    length_normalise: bool = False
    """Score a candidate by its mean token log-prob instead of the sum (no bias against long actions)."""
    history_len: int = 4
    """Past steps (observation, action, reward) shown in the prompt."""
    max_observation_chars: int = 512
    """Each observation in the prompt is cut to this many characters."""
    notes: int = 0
    """Reading steps (examine, read) from before the history kept in the prompt as notes."""
    use_chat_template: bool = True
    """Wrap the prompt in the tokenizer's chat template when it has one."""
    cache_size: int = 4096
    """Requests kept in the LRU prior cache (0 disables it)."""
    vllm_timeout_s: float = 30.0
    """Limit for one vLLM scoring request attempt."""
    vllm_retries: int = 1
    """Further attempts of a vLLM request after a timeout or error, before the call falls back."""
    vllm_gpu_memory_utilization: float = 0.3
    """Fraction of GPU memory vLLM may take (the trainer shares the GPU)."""
    vllm_enable_prefix_caching: bool = True
    """Share each prompt's KV blocks across its candidates."""

    def __post_init__(self) -> None:
        key = "model.prior."
        if not self.backends:
            raise PriorZeroInputError(f"{key}backends is empty: list some of {list(BACKEND_NAMES)} (end with 'uniform')")
        unknown = [name for name in self.backends if name not in BACKEND_NAMES]
        if unknown:
            raise PriorZeroInputError(f"{key}backends has unknown names {unknown}: choose from {list(BACKEND_NAMES)}")
        if len(set(self.backends)) != len(self.backends):
            raise PriorZeroInputError(f"{key}backends lists a backend twice: {self.backends}")
        if self.vllm_required and "vllm" not in self.backends:
            raise PriorZeroInputError(
                f"{key}vllm_required is true but 'vllm' is not in {key}backends={self.backends}: add it or drop vllm_required"
            )
        require_number(key + "temperature", self.temperature, above=0)
        require_int(key + "history_len", self.history_len, minimum=0)
        require_int(key + "max_observation_chars", self.max_observation_chars, minimum=1)
        require_int(key + "notes", self.notes, minimum=0)
        require_int(key + "cache_size", self.cache_size, minimum=0)
        require_number(key + "vllm_timeout_s", self.vllm_timeout_s, above=0)
        require_int(key + "vllm_retries", self.vllm_retries, minimum=0)
        require_number(key + "vllm_gpu_memory_utilization", self.vllm_gpu_memory_utilization, above=0, at_most=1)


def build_prompt_builder(config: PriorConfig, tokenizer: PreTrainedTokenizerBase) -> PromptBuilder:
    """The prompt builder that matches ``config`` (history length, observation cut, template, notes)."""
    return PromptBuilder(
        tokenizer,
        history_len=config.history_len,
        max_observation_chars=config.max_observation_chars,
        use_chat_template=config.use_chat_template,
        notes=config.notes,
    )


def _start_vllm(
    config: PriorConfig, tokenizer: PreTrainedTokenizerBase | None, model_path: str | None
) -> PriorBackend | None:
    """The vLLM backend, or None (with one log line) when it cannot start and is not required."""
    try:
        if model_path is None:
            raise PriorZeroInputError(
                "the vllm prior needs model.llm.path (a local model directory) to start an engine"
            )
        return VLLMPrior.from_model_path(
            model_path,
            tokenizer=tokenizer,
            temperature=config.temperature,
            length_normalise=config.length_normalise,
            timeout_s=config.vllm_timeout_s,
            retries=config.vllm_retries,
            gpu_memory_utilization=config.vllm_gpu_memory_utilization,
            enable_prefix_caching=config.vllm_enable_prefix_caching,
        )
    except PriorZeroInputError as exc:
        if config.vllm_required:
            raise
        log.warning("prior backend 'vllm' skipped: %s", exc)
    except Exception as exc:  # noqa: BLE001 - an engine that fails to start (OOM, bad model) degrades
        if config.vllm_required:
            raise PriorZeroInputError(
                f"model.prior.vllm_required is true but the vLLM engine failed to start ({type(exc).__name__}: {exc}); "
                f"{VLLM_INSTALL_HINT}"
            ) from exc
        log.warning("prior backend 'vllm' skipped: the engine failed to start (%s: %s)", type(exc).__name__, exc)
    return None


def build_prior(config: PriorConfig, policy: LLMPolicy | None, *, model_path: str | None) -> FallbackPrior:
    """Start the configured backends in order and wrap them in a :class:`FallbackPrior`.

    ``policy`` is the module's LLM policy (the trainable LM itself, scored with ``config``'s
    length normalisation and temperature): the ``hf`` backend scores with it directly.
    A backend that cannot start is skipped with one log line (vLLM absent, no GPU, no model),
    except vLLM under ``vllm_required``, which raises :class:`PriorZeroInputError`.
    """
    backends: list[PriorBackend] = []
    for name in config.backends:
        if name == "vllm":
            vllm_backend = _start_vllm(config, policy.tokenizer if policy is not None else None, model_path)
            if vllm_backend is not None:
                backends.append(vllm_backend)
        elif name == "hf":
            if policy is None:
                log.warning("prior backend 'hf' skipped: no LLM is loaded (set model.llm.path)")
                continue
            # The same LM, scored with this config's settings (the module builds its policy from them too).
            backends.append(
                HFPrior(replace(policy, temperature=config.temperature, length_normalise=config.length_normalise))
            )
        else:
            backends.append(UniformPrior())
    if not backends:
        raise PriorZeroInputError(
            f"no prior backend could start from model.prior.backends={config.backends}: add 'uniform', which always starts"
        )
    log.info("prior backends in order: %s", [backend.name for backend in backends])
    return FallbackPrior(backends, cache_size=config.cache_size)
