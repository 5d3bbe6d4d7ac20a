"""PriorZeroModule: the agent it builds per purpose, gradient clipping per model, its queue in checkpoints."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

import priorzero_pl.agent
from callbacks import Evaluation
from datamodules.collection import PriorZeroDataModule
from priorzero_pl.llm.config import LLMConfig
from priorzero_pl.episodes import EvaluationRequest
from priorzero_pl.mcts import MCTSConfig, PriorWeightSchedule
from priorzero_pl.models import WorldModelConfig
from priorzero_pl.module import PriorZeroModule
from priorzero_pl.objectives.objective import CandidateBatch
from priorzero_pl.objectives.ppo import PPOBatch, PPOObjective
from priorzero_pl.objectives.rft import RFTObjective
from priorzero_pl.prior import PriorConfig

SCHEDULE = PriorWeightSchedule(start=0.5, end=0.1, steps=200, kind="linear")


def make_module(tiny_lm_path: Path, **kwargs) -> PriorZeroModule:
    return PriorZeroModule(
        llm=LLMConfig(path=str(tiny_lm_path)),
        world_model=WorldModelConfig(latent_dim=16, embed_dim=16, vocab_size=256, num_heads=2),
        mcts=MCTSConfig(num_simulations=3),
        prior=PriorConfig(backends=["hf", "uniform"], length_normalise=True, history_len=1),
        **kwargs,
    )


def test_acting_agents_carry_every_setting_of_their_purpose(tiny_lm_path: Path) -> None:
    module = make_module(tiny_lm_path, prior_weight_schedule=SCHEDULE)
    module.trainer = SimpleNamespace(global_step=100)
    collect = module.acting_agent("collect", temperature=0.3)
    evaluate = module.acting_agent("evaluate", mode="prior", temperature=0.3)
    assert (collect.settings.explore, collect.settings.temperature, collect.settings.mode) == (True, 0.3, "world_model+prior")
    assert (evaluate.settings.explore, evaluate.settings.mode) == (False, "prior")
    assert collect.settings.prior_weight == evaluate.settings.prior_weight == pytest.approx(SCHEDULE(100))
    assert collect.world_model is module.world_model and collect.prior is module.prior


def test_evaluation_searches_with_the_prior_weight_collection_uses(
    tiny_lm_path: Path, tw_game_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At step 150 the schedule says w = 0.2: the Evaluation callback's searches use it, not
    mcts.prior_weight (0.5), so ``eval/*`` measures the agent that collects."""
    weights = []
    real_search = priorzero_pl.agent.run_search

    def recording_search(*args, **kwargs):
        weights.append(kwargs.get("prior_weight"))
        return real_search(*args, **kwargs)

    monkeypatch.setattr(priorzero_pl.agent, "run_search", recording_search)
    module = make_module(tiny_lm_path, prior_weight_schedule=SCHEDULE)
    datamodule = PriorZeroDataModule(game=str(tw_game_path), max_episode_steps=2)
    trainer = SimpleNamespace(
        global_step=150, global_rank=0, datamodule=datamodule, loggers=[], callback_metrics={},
        strategy=SingleDeviceStrategy(device=torch.device("cpu")),
    )
    module.trainer = trainer
    Evaluation(episodes=1, modes=["world_model+prior"], max_steps=2).evaluate(trainer, module)
    assert weights and all(w == pytest.approx(SCHEDULE(150)) for w in weights)


def test_validation_step_searches_with_the_scheduled_prior_weight(
    tiny_lm_path: Path, tw_game_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``validation_step`` (the ``eval/*`` metrics of ``trainer.validate``) acts through the same
    evaluation agent: at step 150 its searches use the schedule's w = 0.2, not mcts.prior_weight."""
    weights = []
    real_search = priorzero_pl.agent.run_search

    def recording_search(*args, **kwargs):
        weights.append(kwargs.get("prior_weight"))
        return real_search(*args, **kwargs)

    monkeypatch.setattr(priorzero_pl.agent, "run_search", recording_search)
    module = make_module(tiny_lm_path, prior_weight_schedule=SCHEDULE)
    module.trainer = SimpleNamespace(global_step=150)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    request = EvaluationRequest(game=str(tw_game_path), episodes=1, game_kwargs={"max_steps": 2, "valid_actions_timeout": 5.0})
    module.validation_step(request, 0)
    assert weights and all(w == pytest.approx(SCHEDULE(150)) for w in weights)


def test_gradients_are_clipped_per_model(tiny_lm_path: Path) -> None:
    """A large LLM gradient must not shrink the world model's step: each group is clipped by
    its own norm (world model 0.5 stays 0.5; LLM 10 becomes 1)."""
    module = make_module(tiny_lm_path)
    module.trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    optimizer = module.configure_optimizers()["optimizer"]

    def set_gradients(params: list[torch.nn.Parameter], norm: float) -> None:
        raw = [torch.randn_like(p) for p in params]
        total = torch.sqrt(sum(g.square().sum() for g in raw))
        for p, g in zip(params, raw):
            p.grad = g * (norm / total)

    groups = {group["name"]: group["params"] for group in optimizer.param_groups}
    set_gradients(groups["world_model"], 0.5)
    set_gradients(groups["llm"], 10.0)
    module.configure_gradient_clipping(optimizer, gradient_clip_val=1.0, gradient_clip_algorithm="norm")

    def norm(params: list[torch.nn.Parameter]) -> float:
        return float(torch.sqrt(sum(p.grad.square().sum() for p in params)))

    assert norm(groups["world_model"]) == pytest.approx(0.5, rel=1e-4)
    assert norm(groups["llm"]) == pytest.approx(1.0, rel=1e-4)


def _ppo_batch() -> PPOBatch:
    logp = torch.log(torch.tensor([0.5, 0.5]))
    return PPOBatch(
        prompts=["p"], candidates=[["a", "b"]], action_index=torch.tensor([1]), behaviour_logprob=torch.tensor([-0.3]),
        advantages=torch.tensor([1.0]), returns=torch.tensor([2.0]), old_logprobs=[logp], ref_logprobs=[logp],
    )


def test_queued_llm_batches_survive_a_checkpoint(tiny_lm_path: Path) -> None:
    module = make_module(tiny_lm_path)
    rft = RFTObjective("candidates")
    module.enqueue_llm_objective(rft, CandidateBatch(prompts=["x", "y"], candidates=[["a"], ["b", "c"]], action_index=torch.tensor([0, 1])))
    module.enqueue_llm_objective(PPOObjective(), _ppo_batch())
    module.enqueue_llm_objective(rft, CandidateBatch(prompts=["z"], candidates=[["d"]], action_index=torch.tensor([0])))
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    stream = io.BytesIO()
    torch.save(checkpoint, stream)
    stream.seek(0)
    loaded = torch.load(stream, weights_only=True)

    resumed = make_module(tiny_lm_path)
    resumed.on_load_checkpoint(loaded)
    assert resumed.llm_queue_size == 3
    again = RFTObjective("candidates")
    resumed.register_llm_objective(again)  # the RFT callback's objective; no PPO callback this time
    objective, batch = resumed._next_queued()
    assert objective is again and batch.prompts == ["x", "y"] and batch.action_index.tolist() == [0, 1]
    with pytest.warns(UserWarning, match="'ppo' LLM batches from the checkpoint are dropped"):
        objective, batch = resumed._next_queued()
    assert batch.prompts == ["z"] and resumed.llm_queue_size == 0


def test_each_rank_resumes_its_own_queued_llm_batches(tiny_lm_path: Path) -> None:
    """The checkpoint holds every rank's queue (gathered on rank zero); rank 1 takes back the
    batches rank 1 queued, not rank zero's."""
    rft = RFTObjective("candidates")
    queues = []
    for prompts in (["zero"], ["one", "one again"]):
        module = make_module(tiny_lm_path)
        for prompt in prompts:
            module.enqueue_llm_objective(rft, CandidateBatch(prompts=[prompt], candidates=[["a"]], action_index=torch.tensor([0])))
        checkpoint: dict = {}
        module.on_save_checkpoint(checkpoint)
        queues += checkpoint["priorzero"]["llm_queue"]
    checkpoint["priorzero"]["llm_queue"] = queues

    resumed = make_module(tiny_lm_path)
    resumed.trainer = SimpleNamespace(global_rank=1)
    resumed.on_load_checkpoint(checkpoint)
    resumed.register_llm_objective(rft)
    assert resumed.llm_queue_size == 2
    assert [resumed._next_queued()[1].prompts for _ in range(2)] == [["one"], ["one again"]]


def test_a_second_discount_is_refused(tiny_lm_path: Path) -> None:
    from priorzero_pl.buffer import ReplayBuffer
    from priorzero_pl.errors import PriorZeroInputError

    module = make_module(tiny_lm_path)
    with pytest.raises(PriorZeroInputError, match=r"data.replay.discount=0.99 differs from model.mcts.discount=0.997"):
        module.connect(ReplayBuffer(10, discount=0.99))
