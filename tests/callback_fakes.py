"""Fakes the callback tests share: a tiny Lightning fit, the parts of the module and the trainer
the callbacks touch, episodes, a logger that keeps what it is given."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch.utils.data import DataLoader, TensorDataset

from callbacks import Checkpointing
from datamodules.collection import PriorZeroDataModule
from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.episodes import EpisodeResult, TranscriptStep
from priorzero_pl.llm import LLMPolicy
from priorzero_pl.mcts import MCTSConfig
from priorzero_pl.module import PriorZeroModule


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
