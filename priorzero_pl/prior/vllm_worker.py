"""Code that runs inside vLLM's worker processes.

vLLM mixes ``worker_extension_cls`` into its worker class, and ``collective_rpc`` calls the
extension's methods by *name*: unlike sending a function, that needs no pickled callables (which
vLLM refuses unless ``VLLM_ALLOW_INSECURE_SERIALIZATION`` is set). The module imports nothing from
vLLM, so it is importable (and testable) anywhere.
"""

from __future__ import annotations

import torch

WORKER_EXTENSION = f"{__name__}.WeightSyncWorkerExtension"
"""The dotted path ``VLLMPrior.from_model_path`` passes as ``worker_extension_cls``."""

LOAD_WEIGHTS_METHOD = "priorzero_load_weights"
"""The ``collective_rpc`` method name that loads new weights."""


class WeightSyncWorkerExtension:
    """Adds :meth:`priorzero_load_weights` to every vLLM worker (``self`` is the worker)."""

    model_runner: object

    def priorzero_load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        """Load Hugging Face-named tensors into the worker's model; vLLM's ``load_weights`` maps the
        names (e.g. fuses q/k/v) and shards them for tensor parallelism itself."""
        self.model_runner.model.load_weights(weights=weights)  # type: ignore[attr-defined]
