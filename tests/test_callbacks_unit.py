"""Each callback against fakes of the module / datamodule contract, or inside a tiny real fit."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, TensorDataset

import callbacks.ppo as ppo_callback
from callbacks import PPO, RFT, Checkpointing, Evaluation, GracefulFallback, Transcripts, VLLMWeightSync
from callbacks.checkpointing import atomic_save_checkpoint
from datamodules.collection import PriorZeroDataModule
import priorzero_pl.llm.policy
from priorzero_pl import episodes
from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.episodes import EpisodeResult, TranscriptStep
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm import LLMPolicy
from priorzero_pl.mcts import MCTSConfig
from priorzero_pl.module import PriorZeroModule
from priorzero_pl.objectives.ppo import PPOBatch, ppo_rows


# ----------------------------------------------------------------------------- fakes
class TinyModule(L.LightningModule):
    """A linear regression; ``on_step`` runs inside ``training_step`` (to send signals mid-fit)."""

    def __init__(self, on_step: Any = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.on_step = on_step
        self.steps_run = 0

    def acting_agent(self, purpose: str, *, mode: str = "world_model+prior") -> tuple[str, str]:
        """Stands for the agent: the evaluation callbacks only hand it to ``play_episodes``."""
        return (purpose, mode)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.steps_run += 1
        if self.on_step is not None:
            self.on_step(self)
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return regression_data()


def regression_data() -> DataLoader:
    """TinyModule's training data: 64 batches of 4 random (x, y) pairs, the same every time."""
    generator = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(256, 4, generator=generator), torch.randn(256, 1, generator=generator)), batch_size=4)


class GameData(PriorZeroDataModule):
    """A PriorZeroDataModule that plays no game: it feeds TinyModule's data, and offers the
    callbacks its game contract (path, TextGame options) for a story that is never opened."""

    def __init__(self) -> None:
        super().__init__(max_episode_steps=7)
        self.game_path = "stories/game.z5"

    def prepare_data(self) -> None:
        """Nothing to build: the embedded game is not played."""

    def setup(self, stage: str) -> None:
        """No thread budget: the test process keeps its torch threads."""

    def train_dataloader(self) -> DataLoader:
        return regression_data()


def tiny_trainer(tmp_path: Path, callbacks: list, max_steps: int, logger: Any = False) -> L.Trainer:
    return L.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        callbacks=callbacks,
        logger=logger,
        # Checkpointing is a lightning Checkpoint: with it, Lightning adds no ModelCheckpoint of its own.
        enable_checkpointing=any(isinstance(c, Checkpointing) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
    )


class RecordingModule:
    """The parts of ``PriorZeroModule`` the LLM callbacks touch."""

    def __init__(self, llm: torch.nn.Module | None = None, queue_size: int = 0) -> None:
        self.llm = llm if llm is not None else torch.nn.Linear(3, 2)
        self.tokenizer = object()
        self.llm_updates = 0
        self.queued: list[tuple[Any, Any]] = []
        self.registered: dict[str, Any] = {}
        self.logged: dict[str, float] = {}
        self.extra_queue = queue_size
        self.prior: Any = None
        self.prior_config = SimpleNamespace(length_normalise=True, temperature=1.0)
        self.llm_config = SimpleNamespace(train=True)
        self.mcts_config = MCTSConfig()
        self.llm_path = "llm-directory"
        self.device = torch.device("cpu")

    # The real module's scoring, run on this fake's llm, tokenizer and prior_config.
    policy_logprobs = PriorZeroModule.policy_logprobs

    @property
    def llm_policy(self) -> LLMPolicy:
        return LLMPolicy(self.llm, self.tokenizer, self.prior_config.length_normalise, self.prior_config.temperature)

    @property
    def llm_queue_size(self) -> int:
        return self.extra_queue + len(self.queued)

    def register_llm_objective(self, objective: Any) -> None:
        self.registered[objective.name] = objective

    def enqueue_llm_objective(self, objective: Any, batch: Any) -> None:
        self.queued.append((objective, batch))

    def log(self, name: str, value: Any, **kwargs: Any) -> None:
        self.logged[name] = float(value)

    def log_dict(self, values: dict[str, Any], **kwargs: Any) -> None:
        for name, value in values.items():
            self.log(name, value)


def fake_trainer(global_step: int, segments: list[GameSegment] | None = None, **extra: Any) -> SimpleNamespace:
    """A trainer at ``global_step`` whose PriorZeroDataModule's replay buffer holds ``segments``."""
    datamodule = PriorZeroDataModule()
    for seg in segments or []:
        datamodule.buffer.add(seg)
    return SimpleNamespace(
        global_step=global_step,
        global_rank=0,
        world_size=1,
        is_global_zero=True,
        strategy=SingleDeviceStrategy(device=torch.device("cpu")),
        datamodule=datamodule,
        **extra,
    )


def segment(name: str, rewards: list[float], root_values: list[float], terminal: bool) -> GameSegment:
    seg = GameSegment(game=name, terminal=terminal)
    for t, (reward, value) in enumerate(zip(rewards, root_values)):
        seg.append(
            observation=f"{name} {t}",
            candidates=["north", "south"],
            prompt=f"{name} prompt {t}",
            action=t % 2,
            reward=reward,
            visit_policy=[0.5, 0.5],
            prior_logprobs=[-0.7, -0.7],
            root_value=value,
            behaviour_logprob=-0.1 * (t + 1),
        )
    return seg


# ----------------------------------------------------------------------------- vLLM weight sync
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


# ----------------------------------------------------------------------------- RFT / PPO scheduling
def test_rft_queues_minibatches_of_the_best_recent_episodes() -> None:
    segments = [segment(f"e{i}", [float(i), 0.0, 0.0], [0.0] * 3, terminal=True) for i in range(8)]
    rft = RFT(every_n_steps=10, recent_episodes=4, top_fraction=0.5, minibatch_size=4, loss="candidates")
    module = RecordingModule()
    rft.on_fit_start(fake_trainer(0), module)

    rft.on_train_batch_end(fake_trainer(9, segments), module, None, None, 0)
    assert module.queued == []
    rft.on_train_batch_end(fake_trainer(10, segments), module, None, None, 0)
    # recent 4 = e4..e7, top half = e7, e6: 6 steps -> minibatches of 4 and 2
    assert [len(batch) for _, batch in module.queued] == [4, 2]
    prompts = {p for _, batch in module.queued for p in batch.prompts}
    assert prompts == {f"e{i} prompt {t}" for i in (6, 7) for t in range(3)}
    assert all(objective.name == "rft" for objective, _ in module.queued)
    assert module.logged["llm/rft_episodes"] == 2.0 and module.logged["llm/rft_return_mean"] == 6.5

    rft.on_train_batch_end(fake_trainer(10, segments), module, None, None, 1)
    assert len(module.queued) == 2, "a second batch at the same global step (accumulation) starts no round"


def test_rft_skips_a_round_while_the_queue_is_full() -> None:
    segments = [segment("e", [1.0], [0.0], terminal=True)]
    rft = RFT(every_n_steps=10, loss="candidates")
    module = RecordingModule(queue_size=10)
    rft.on_fit_start(fake_trainer(0), module)
    with pytest.warns(UserWarning, match="skipping a round"):
        rft.on_train_batch_end(fake_trainer(10, segments), module, None, None, 0)
    assert module.queued == []


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


@pytest.mark.parametrize(
    "make",
    [
        lambda: PPO(epochs=0),
        lambda: PPO(gae_lambda=1.5),
        lambda: PPO(importance_weight_cap=0.0),
        lambda: RFT(top_fraction=0.0),
        lambda: RFT(loss="sequence"),
        lambda: VLLMWeightSync(every_n_llm_updates=0),
        lambda: Checkpointing(every_n_steps=0),
        lambda: Checkpointing(keep_last=-1),
        lambda: Evaluation(modes=["world_model", "greedy"]),
        lambda: Evaluation(modes=[]),
        lambda: Transcripts(mode="prior_only"),
    ],
)
def test_bad_init_args_are_input_errors(make: Any) -> None:
    with pytest.raises(PriorZeroInputError):
        make()


# ----------------------------------------------------------------------------- checkpointing
def test_atomic_save_keeps_the_old_checkpoint_when_a_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old")

    def failing_save(path: Path, weights_only: bool | None = None) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    trainer = fake_trainer(3, save_checkpoint=failing_save)
    with pytest.raises(OSError):
        atomic_save_checkpoint(trainer, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_periodic_checkpoints_keep_last_and_resume(tmp_path: Path) -> None:
    checkpointing = Checkpointing(every_n_steps=2, keep_last=2)
    tiny_trainer(tmp_path, [checkpointing], max_steps=7).fit(TinyModule())
    directory = tmp_path / "checkpoints"
    assert sorted(p.name for p in directory.iterdir()) == ["last.ckpt", "step=4.ckpt", "step=6.ckpt"]
    last = torch.load(directory / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6
    assert "rng" in last["callbacks"][checkpointing.state_key]

    resumed = TinyModule()
    tiny_trainer(tmp_path, [Checkpointing(every_n_steps=2, keep_last=2)], max_steps=9).fit(resumed, ckpt_path=directory / "last.ckpt")
    assert resumed.steps_run == 3


def test_sigterm_mid_fit_saves_a_loadable_checkpoint_and_stops(tmp_path: Path) -> None:
    def terminate_at_step_5(module: TinyModule) -> None:
        if module.global_step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SIGTERMException):
        tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100)], max_steps=50).fit(TinyModule(terminate_at_step_5))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    resumed = TinyModule()
    tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100)], max_steps=8).fit(resumed, ckpt_path=last)
    assert resumed.steps_run == 3


def test_sigint_mid_fit_saves_and_stops_cleanly(tmp_path: Path) -> None:
    def interrupt_at_step_3(module: TinyModule) -> None:
        if module.global_step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    handler_before = signal.getsignal(signal.SIGINT)
    module = TinyModule(interrupt_at_step_3)
    trainer = tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100)], max_steps=50)
    trainer.fit(module)
    assert trainer.global_step == 3 and module.steps_run == 3
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_rng_state_round_trips() -> None:
    import random

    import numpy as np

    checkpointing = Checkpointing()
    state = checkpointing.state_dict()
    drawn = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpointing.load_state_dict(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == drawn


def test_each_rank_restores_its_own_rng_states(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint holds every rank's python, numpy and torch RNG states; rank 1 takes back its
    own (the states rank 1 saved), not rank zero's."""
    import random

    import numpy as np

    checkpointing = Checkpointing()
    before = checkpointing.state_dict()

    def saved_and_drawn() -> tuple[dict, tuple]:
        (state,) = checkpointing.state_dict()["rng"]
        return state, (random.random(), np.random.rand(), torch.rand(1).item())

    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    rank0, _ = saved_and_drawn()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    rank1, drawn1 = saved_and_drawn()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    checkpointing.load_state_dict({"rng": [rank0, rank1]})
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == drawn1
    monkeypatch.undo()
    checkpointing.load_state_dict(before)


# ----------------------------------------------------------------------------- graceful fallback
class FakeHealthPrior:
    def __init__(self) -> None:
        self.figures = {"entropy": 1.2, "cache_hit_rate": 0.5, "fallbacks": 0.0, "failures/vllm": 0.0, "backend/hf": 9.0}

    def metrics(self) -> dict[str, float]:
        return dict(self.figures)


def test_graceful_fallback_logs_failure_counters_and_warns_once_per_kind() -> None:
    module = RecordingModule()
    module.prior = FakeHealthPrior()
    trainer = fake_trainer(1)
    trainer.datamodule.env_pool = SimpleNamespace(restarts=0)
    callback = GracefulFallback()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert module.logged == {
        "fallback/fallbacks": 0.0,
        "fallback/failures/vllm": 0.0,
        "fallback/collector_failures": 0.0,
        "fallback/env_restarts": 0.0,
    }
    module.prior.figures["failures/vllm"] = 1.0
    trainer.datamodule.env_pool.restarts = 2
    with pytest.warns(UserWarning) as record:
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert sorted(str(w.message).split(" ")[1] for w in record) == ["env_restarts", "failures/vllm"]
    module.prior.figures["failures/vllm"] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert module.logged["fallback/failures/vllm"] == 2.0


def test_graceful_fallback_runs_every_cleanup_step_when_others_fail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def save_checkpoint(path: Path, weights_only: bool | None = None) -> None:
        done.append("checkpoint")
        raise OSError("disk full")

    def datamodule_teardown(stage: str) -> None:
        done.append(f"datamodule {stage}")
        raise RuntimeError("env pool already dead")

    trainer = fake_trainer(1, save_checkpoint=save_checkpoint, default_root_dir=str(tmp_path), checkpoint_callbacks=[])
    trainer.datamodule = SimpleNamespace(teardown=datamodule_teardown)
    module = SimpleNamespace(teardown=lambda stage: done.append(f"module {stage}"))
    GracefulFallback().on_exception(trainer, module, RuntimeError("boom"))
    assert done == ["checkpoint", "datamodule fit", "module fit"]
    assert "disk full" in caplog.text and "env pool already dead" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_graceful_fallback_saves_an_emergency_checkpoint_in_a_real_fit(tmp_path: Path) -> None:
    def crash_at_step_2(module: TinyModule) -> None:
        if module.global_step == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tiny_trainer(tmp_path, [GracefulFallback()], max_steps=10).fit(TinyModule(crash_at_step_2))
    assert torch.load(tmp_path / "emergency-step00002.ckpt", weights_only=True)["global_step"] == 2


# ----------------------------------------------------------------------------- evaluation / transcripts
def fake_episode(score: float, length: int) -> EpisodeResult:
    steps = [
        TranscriptStep(
            observation="West of House\nThere is a | mailbox here.",
            candidates=["open mailbox", "go north"],
            prior=[0.7, 0.3],
            visits=[0.875, 0.125],
            action="open mailbox",
            reward=1.0 if t == 0 else 0.0,
        )
        for t in range(length)
    ]
    return EpisodeResult(score=score, max_score=4.0, length=length, transcript=steps)


class MemoryLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))


def test_evaluation_logs_every_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, str, int, int, dict]] = []

    def play(agent: Any, game: str, *, episodes: int, seed: int, **game_kwargs: Any) -> list[EpisodeResult]:
        assert not module.training and not torch.is_grad_enabled(), "episodes are played in eval mode, without autograd"
        calls.append((agent, game, episodes, seed, game_kwargs))
        return [fake_episode(2.0, 3), fake_episode(4.0, 5)]

    monkeypatch.setattr(episodes, "play_episodes", play)
    logger = MemoryLogger()
    callback = Evaluation(every_n_steps=2, episodes=2, seed=7, max_steps=9)
    module = TinyModule(on_step=lambda m: training_modes.append(m.training))
    training_modes: list[bool] = []
    trainer = tiny_trainer(tmp_path, [callback], max_steps=3, logger=logger)
    trainer.fit(module, datamodule=GameData())
    assert training_modes == [True, True, True], "training resumes in train mode after an evaluation"
    modes = ["world_model", "world_model+prior", "prior"]
    expected = [(("evaluate", m), "stories/game.z5", 2, 7, {"max_steps": 9, "valid_actions_timeout": 5.0}) for m in modes]
    assert calls == expected * 2, "each mode's evaluation agent, at step 2 and at the end of training (step 3)"
    logged = [(step, metrics) for step, metrics in logger.metrics if any(k.startswith("eval_") for k in metrics)]
    assert [step for step, _ in logged] == [2, 3]
    for mode in modes:
        assert logged[-1][1][f"eval_{mode}/score"] == 3.0
        assert logged[-1][1][f"eval_{mode}/normalized_score"] == 0.75
        assert logged[-1][1][f"eval_{mode}/episode_length"] == 4.0
    assert callback.last_metrics == logged[-1][1]
    assert float(trainer.callback_metrics["eval_prior/normalized_score"]) == 0.75


def test_transcripts_write_tensorboard_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    played = []

    def play(agent: Any, game: str, **kw: Any) -> list[EpisodeResult]:
        played.append((agent, game, kw))
        return [fake_episode(1.0, 2)]

    monkeypatch.setattr(episodes, "play_episodes", play)
    logger = TensorBoardLogger(tmp_path, name="tb")
    module = TinyModule()
    tiny_trainer(tmp_path, [Transcripts(every_n_steps=2, mode="prior", seed=3)], max_steps=4, logger=logger).fit(
        module, datamodule=GameData()
    )
    assert played == [
        (("evaluate", "prior"), "stories/game.z5", {"episodes": 1, "seed": 3, "max_steps": 7, "valid_actions_timeout": 5.0})
    ] * 2

    events = EventAccumulator(logger.log_dir, size_guidance={"tensors": 0})
    events.Reload()
    tag = "transcript/prior/text_summary"
    assert tag in events.Tags()["tensors"]
    entries = events.Tensors(tag)
    assert [e.step for e in entries] == [2, 4]
    text = entries[0].tensor_proto.string_val[0].decode()
    assert "| step | observation | candidates (prior / visits) | action | reward |" in text
    assert "West of House<br>There is a \\| mailbox here." in text
    assert "**open mailbox (0.70 / 0.88)**<br>go north (0.30 / 0.12)" in text
    assert "score **1** / 4 in 2 steps" in text


def test_transcripts_do_nothing_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def play(module: Any, **kw: Any) -> list[EpisodeResult]:
        raise AssertionError("no episode should be played without a TensorBoard logger")

    monkeypatch.setattr(episodes, "play_episodes", play)
    tiny_trainer(tmp_path, [Transcripts(every_n_steps=1)], max_steps=2, logger=MemoryLogger()).fit(TinyModule())


def test_transcript_cells_show_game_text_literally() -> None:
    from callbacks.transcripts import transcript_markdown

    episode = fake_episode(0.0, 1)
    episode.transcript[0].observation = "  \\|/ *banner* _x_\r\n|"
    row = transcript_markdown(episode, "h").splitlines()[-1]
    assert row.startswith("| 0 | \\\\\\|/ \\*banner\\* \\_x\\_<br>\\| | ")
    assert row.count(" | ") == 4, "exactly five cells: no unescaped pipe from the game text"
