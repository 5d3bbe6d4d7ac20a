"""``callbacks.PPO``: rows from stored episodes, rounds scored by the policy and its frozen reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import callbacks.ppo as ppo_callback
from callbacks import PPO
import priorzero_pl.llm.policy
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig
from priorzero_pl.objectives.ppo import PPOBatch, ppo_rows
from tests.callback_fakes import RecordingModule, fake_trainer, segment


def test_ppo_rows_use_stored_values_and_behaviour_logprobs() -> None:
    terminal = segment("t", [1.0, 2.0], [0.5, 1.0], terminal=True)
    truncated = segment("u", [1.0, 0.0, 5.0], [0.0, 2.0, 3.0], terminal=False)
    rows = ppo_rows([terminal, truncated], gamma=1.0, lam=1.0)
    # terminal: returns-to-go 3, 2; truncated: last step only bootstraps -> steps 0, 1 with
    # returns 1 + 0 + V(s2) = 4 and 0 + V(s2) = 3
    assert rows.prompts == ["t prompt 0", "t prompt 1", "u prompt 0", "u prompt 1"]
    torch.testing.assert_close(rows.returns, torch.tensor([3.0, 2.0, 4.0, 3.0]))
    torch.testing.assert_close(rows.advantages, torch.tensor([2.5, 1.0, 4.0, 1.0]))
    torch.testing.assert_close(rows.behaviour_logprob, torch.tensor([-0.1, -0.2, -0.1, -0.2]))
    assert rows.action_index.tolist() == [0, 1, 0, 1]


def _fake_reference_loader(monkeypatch: pytest.MonkeyPatch, module: "RecordingModule") -> None:
    """``load_llm(path)`` gives a fresh copy of the fake's initial LLM (the pretrained weights)."""
    import copy

    pretrained = copy.deepcopy(module.llm)
    monkeypatch.setattr(ppo_callback, "load_llm", lambda path: (copy.deepcopy(pretrained), None))


def test_ppo_round_queues_epochs_of_minibatches_scored_by_the_current_and_reference_llm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scored_with = []

    def fake_scores(model: Any, tokenizer: Any, prompts: list[str], candidates: list[list[str]], **kw: Any) -> list[torch.Tensor]:
        assert kw == {"length_normalise": True}
        scored_with.append("reference" if model is ppo.reference else "policy" if model is module.llm else "?")
        value = 0.0 if model is module.llm else 1.0
        return [torch.tensor([value, 0.0]) for _ in prompts]

    monkeypatch.setattr(priorzero_pl.llm.policy, "candidate_logprobs", fake_scores)
    segments = [segment(f"e{i}", [float(i), 1.0, 0.0], [0.0, 0.5, 0.2], terminal=True) for i in range(3)]
    ppo = PPO(every_n_steps=5, recent_episodes=2, epochs=3, minibatch_size=4)
    module = RecordingModule()
    module.mcts_config = MCTSConfig(discount=0.5)
    _fake_reference_loader(monkeypatch, module)
    trainer = fake_trainer(0, precision_plugin=L.pytorch.plugins.Precision())
    ppo.on_fit_start(trainer, module)
    ppo.on_train_start(trainer, module)
    assert module.registered == {"ppo": ppo.objective}
    assert ppo.reference is not module.llm and not any(p.requires_grad for p in ppo.reference.parameters())
    assert not ppo.reference.training

    ppo.on_train_batch_end(fake_trainer(5, segments, precision_plugin=L.pytorch.plugins.Precision()), module, None, None, 0)
    # 2 episodes x 3 steps = 6 rows -> 2 minibatches (4 + 2) per epoch, 3 epochs
    assert [len(batch) for _, batch in module.queued] == [4, 2] * 3
    assert set(scored_with) == {"policy", "reference"}
    batches = [batch for _, batch in module.queued]
    assert all(isinstance(b, PPOBatch) for b in batches)
    first_epoch = torch.cat([b.advantages for b in batches[:2]])
    assert first_epoch.mean().abs() < 1e-5 and first_epoch.std(unbiased=False) == pytest.approx(1.0, abs=1e-4)
    for b in batches:
        for old, ref in zip(b.old_logprobs, b.ref_logprobs):
            torch.testing.assert_close(old, torch.log(torch.tensor([0.5, 0.5])))
            torch.testing.assert_close(ref, torch.log_softmax(torch.tensor([1.0, 0.0]), -1))
    # Advantages discounted with the search's discount (0.5), not a PPO gamma of its own.
    assert module.logged["llm/adv_mean"] == pytest.approx(float(ppo_rows(segments[-2:], 0.5, 0.95).advantages.mean()))
    assert module.logged["llm/adv_mean"] != pytest.approx(float(ppo_rows(segments[-2:], 0.99, 0.95).advantages.mean()))
    assert module.logged["llm/ppo_rows"] == 6.0

    replay = RecordingModule()
    again = PPO(every_n_steps=5, recent_episodes=2, epochs=3, minibatch_size=4)
    again.reference = ppo.reference
    again.on_train_batch_end(fake_trainer(5, segments, precision_plugin=L.pytorch.plugins.Precision()), replay, None, None, 0)
    assert [b.prompts for _, b in replay.queued] == [b.prompts for b in batches], "a round's shuffle is a function of the step"


def test_ppo_reference_is_the_pretrained_llm_whatever_was_restored_before(tiny_lm_path: Path) -> None:
    """DeepSpeed restores a checkpoint after ``on_fit_start``, other strategies before: the
    reference is loaded from model.llm.path at train start, so a module whose weights a restore
    changed (at either point) gets the same reference, the one its checkpoint's fingerprint names."""
    from priorzero_pl.llm.loading import load_llm

    llm, tokenizer = load_llm(str(tiny_lm_path))
    module = RecordingModule(llm=llm)
    module.tokenizer, module.llm_path = tokenizer, str(tiny_lm_path)
    trainer = fake_trainer(1, [segment("e", [1.0, 0.0], [0.0, 0.0], terminal=True)], precision_plugin=L.pytorch.plugins.Precision())

    fresh = PPO(every_n_steps=1, recent_episodes=1, epochs=1, minibatch_size=8)
    fresh.on_fit_start(trainer, module)
    fresh.on_train_start(trainer, module)
    fresh.on_train_batch_end(trainer, module, None, None, 0)
    (objective, batch), = module.queued
    _, metrics = objective.loss(module.policy_logprobs, batch)
    assert metrics["ref_kl"].item() == pytest.approx(0.0, abs=1e-5), "at the start the policy is its reference"
    saved = fresh.state_dict()

    with torch.no_grad():  # a restored checkpoint: the policy trained away from the pretrained weights
        for param in llm.parameters():
            param.add_(0.05 * torch.randn_like(param))
    resumed = PPO(every_n_steps=1, recent_episodes=1, epochs=1, minibatch_size=8)
    resumed.load_state_dict(saved)
    resumed.on_fit_start(trainer, module)
    resumed.on_train_start(trainer, module)
    for mine, theirs in zip(resumed.reference.parameters(), fresh.reference.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert resumed.reference_fingerprint == fresh.reference_fingerprint

    stale = PPO()
    stale.load_state_dict({"reference_fingerprint": "0123456789abcdef"})
    with pytest.raises(PriorZeroInputError, match="model.llm.path=.*weights changed since the checkpoint"):
        stale.on_train_start(trainer, module)
