"""``callbacks.VLLMWeightSync``: the trained weights reach the vLLM engine, every K LLM updates and on resume."""

from __future__ import annotations

from typing import Any

import torch

from callbacks import VLLMWeightSync
from tests.callback_fakes import RecordingModule, fake_trainer


class FakeVLLM:
    name = "vllm"

    def __init__(self) -> None:
        self.pushed: list[list[tuple[str, torch.Tensor]]] = []

    def load_weights(self, named_tensors: Any) -> None:
        self.pushed.append([(name, tensor.clone()) for name, tensor in named_tensors])


class FakePrior:
    def __init__(self, backends: dict[str, Any]) -> None:
        self.backends = backends
        self.cache_clears = 0

    def backend(self, name: str) -> Any:
        return self.backends.get(name)

    def clear_cache(self) -> None:
        self.cache_clears += 1


def test_weight_sync_pushes_the_current_weights_every_k_updates() -> None:
    module, vllm = RecordingModule(), FakeVLLM()
    module.prior = FakePrior({"vllm": vllm})
    sync = VLLMWeightSync(every_n_llm_updates=2)
    trainer = fake_trainer(global_step=1)
    sync.on_train_start(trainer, module)
    assert vllm.pushed == []

    for updates in (1, 2):
        with torch.no_grad():
            module.llm.weight.add_(1.0)
        module.llm_updates = updates
        sync.on_train_batch_end(trainer, module, None, None, 0)
    assert len(vllm.pushed) == 1
    pushed = dict(vllm.pushed[0])
    assert set(pushed) == {name for name, _ in module.llm.named_parameters()}
    for name, param in module.llm.named_parameters():
        torch.testing.assert_close(pushed[name], param.detach())
    assert module.prior.cache_clears == 1
    assert module.logged["llm/weight_syncs"] == 1.0

    module.llm_updates = 3
    sync.on_train_batch_end(trainer, module, None, None, 0)
    assert len(vllm.pushed) == 1


def test_weight_sync_on_resume_and_noop_without_vllm() -> None:
    module, vllm = RecordingModule(), FakeVLLM()
    module.prior, module.llm_updates = FakePrior({"vllm": vllm}), 7
    VLLMWeightSync().on_train_start(fake_trainer(global_step=70), module)
    assert len(vllm.pushed) == 1, "a resumed run must push the trained weights into the fresh engine"

    module = RecordingModule()
    module.prior = FakePrior({"hf": object()})
    sync = VLLMWeightSync()
    for updates in (1, 2):
        module.llm_updates = updates
        sync.on_train_batch_end(fake_trainer(global_step=updates), module, None, None, 0)
    assert sync.syncs == 0 and module.prior.cache_clears == 0 and "llm/weight_syncs" not in module.logged
