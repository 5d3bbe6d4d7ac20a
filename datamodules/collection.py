"""The streaming DataModule: play the games with prior + MCTS, fill the replay buffer, yield batches."""

from __future__ import annotations

from typing import Any, Iterator

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, IterableDataset

from datamodules.collector import Collector
from priorzero_pl.buffer import ReplayBuffer, ReplayConfig
from priorzero_pl.envs import EnvPool, resolve_game
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.assets.embedded import EMBEDDED, embedded_game


class CollectAndReplay(IterableDataset):
    """Endless stream: collect ``collect_steps`` env steps, then yield ``batches_per_collect``
    batches sampled from the buffer (the replay ratio), after a warm-up that fills the buffer.

    Each item is a dict of named sub-batches: ``world_model`` (a ``WorldModelBatch``) and, on the
    first batch after a collection round, ``collect`` (that round's metrics, floats).
    """

    def __init__(self, datamodule: "PriorZeroDataModule") -> None:
        self.datamodule = datamodule

    def __iter__(self) -> Iterator[dict[str, Any]]:
        dm = self.datamodule
        while True:
            metrics = dm.collect_round()
            for i in range(dm.batches_per_collect):
                batch: dict[str, Any] = {"world_model": dm.buffer.sample(dm.batch_size)}
                if i == 0:
                    batch["collect"] = metrics
                yield batch


class EvaluationEpisodes(IterableDataset):
    """One item: the number of greedy evaluation episodes ``validation_step`` plays (batched)."""

    def __init__(self, episodes: int) -> None:
        self.episodes = episodes

    def __iter__(self) -> Iterator[int]:
        yield self.episodes


class PriorZeroDataModule(L.LightningDataModule):
    """Streams training batches from games played by the current agent.

    The dataloaders run in the main process (``num_workers=0``): the agent must act with the
    trainer's current weights, and each worker would get its own copy of the games. Collection
    parallelism lives in :class:`~priorzero_pl.envs.EnvPool`.

    Under DDP / DeepSpeed every rank collects with its own ``EnvPool`` (seeds offset by rank) into
    its own buffer.

    Args:
        game: a Jericho story file path, a game name looked up in ``games_dir`` / ``$PRIORZERO_GAMES``
            (``zork1``), or ``embedded`` (a small TextWorld game with graded rewards, built locally
            under ``$PRIORZERO_CACHE``, default ``.priorzero``).
        games_dir: where game names are looked up.
        num_envs: games played in parallel (worker processes) per rank.
        max_episode_steps: episode truncation.
        batch_size: unrolls per training batch.
        collect_steps: env steps (summed over games) per collection round.
        batches_per_collect: training batches per collection round (the replay ratio).
        warmup_steps: env steps collected before the first batch.
        replay: replay buffer settings.
        temperature_start: action-selection temperature at the start of training.
        temperature_end: temperature after ``temperature_decay_steps`` env steps (linear decay).
        temperature_decay_steps: env steps over which the temperature decays.
        max_consecutive_failures: collection rounds that may fail in a row before the run stops.
        eval_episodes: greedy episodes per validation run.
        valid_actions_timeout: seconds allowed to compute a state's valid actions.
        seed: base seed (env ``i`` of rank ``r`` uses ``seed + 1000 * r + i``).
    """

    def __init__(
        self,
        game: str = EMBEDDED,
        games_dir: str | None = None,
        num_envs: int = 2,
        max_episode_steps: int = 50,
        batch_size: int = 32,
        collect_steps: int = 32,
        batches_per_collect: int = 4,
        warmup_steps: int = 64,
        replay: ReplayConfig = ReplayConfig(),
        temperature_start: float = 1.0,
        temperature_end: float = 0.25,
        temperature_decay_steps: int = 5000,
        max_consecutive_failures: int = 3,
        eval_episodes: int = 1,
        valid_actions_timeout: float = 5.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in [
            ("num_envs", num_envs),
            ("max_episode_steps", max_episode_steps),
            ("batch_size", batch_size),
            ("collect_steps", collect_steps),
            ("batches_per_collect", batches_per_collect),
            ("max_consecutive_failures", max_consecutive_failures),
            ("eval_episodes", eval_episodes),
        ]:
            if value < 1:
                raise PriorZeroInputError(f"data.{name} must be >= 1, got {value}")
        if warmup_steps < 0 or temperature_decay_steps < 0:
            raise PriorZeroInputError("data.warmup_steps and data.temperature_decay_steps must be >= 0")
        if temperature_start < 0 or temperature_end < 0:
            raise PriorZeroInputError("data.temperature_start / temperature_end must be >= 0 (0 = greedy)")
        self.save_hyperparameters()
        self.game = game
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.batch_size = batch_size
        self.collect_steps = collect_steps
        self.batches_per_collect = batches_per_collect
        self.warmup_steps = warmup_steps
        self.max_consecutive_failures = max_consecutive_failures
        self.eval_episodes = eval_episodes
        self.valid_actions_timeout = valid_actions_timeout
        self.seed = seed
        self.buffer = ReplayBuffer.from_config(replay, seed=seed)
        self.env_steps = 0
        self.episodes = 0
        self.collector_failures = 0
        self.consecutive_failures = 0
        # Resolved now so that a bad path fails before any model is loaded.
        self.game_path: str | None = None if game == EMBEDDED else str(resolve_game(game, games_dir))
        self.env_pool: EnvPool | None = None
        self.collector: Collector | None = None

    # ------------------------------------------------------------------ set-up
    def prepare_data(self) -> None:
        """Build the embedded game once (rank zero) before any rank resolves it."""
        if self.game == EMBEDDED:
            embedded_game()

    def setup(self, stage: str) -> None:
        if self.game_path is None:
            self.game_path = str(embedded_game())

    def game_kwargs(self) -> dict[str, Any]:
        """How every `TextGame` of this run is built (collection and evaluation)."""
        return {"max_steps": self.max_episode_steps, "valid_actions_timeout": self.valid_actions_timeout}

    def _ensure_collector(self) -> Collector:
        if self.collector is None:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            seed = self.seed + 1000 * rank
            self.env_pool = EnvPool(self.game_path, self.num_envs, seed=seed, **self.game_kwargs())
            self.collector = Collector(self.env_pool, self.buffer, game=self.game_path, seed=seed)
        return self.collector

    def teardown(self, stage: str) -> None:
        if self.env_pool is not None:
            self.env_pool.close()
        self.env_pool = None
        self.collector = None

    # ------------------------------------------------------------- collection
    def temperature(self) -> float:
        """Action-selection temperature: linear from start to end over the decay steps (env steps)."""
        start, end, steps = self.hparams.temperature_start, self.hparams.temperature_end, self.hparams.temperature_decay_steps
        progress = 1.0 if steps == 0 else min(1.0, self.env_steps / steps)
        return start + (end - start) * progress

    def collect_round(self) -> dict[str, float]:
        """Collect one round (the whole warm-up the first time). A round that raises is logged,
        counted and skipped; ``max_consecutive_failures`` in a row stop the run with the cause."""
        module = self.trainer.lightning_module
        target = self.collect_steps if self.buffer.num_steps >= max(self.warmup_steps, 1) else max(self.warmup_steps, 1)
        while True:
            try:
                stats = self._ensure_collector().collect(
                    module.agent(), target, temperature=self.temperature(), prior_weight=module.prior_weight()
                )
            except Exception as err:  # noqa: BLE001 - any collection failure is survivable up to the limit
                self.collector_failures += 1
                self.consecutive_failures += 1
                rank_zero_warn(f"collection round failed ({self.consecutive_failures} in a row): {type(err).__name__}: {err}")
                self.teardown("fit")
                if self.consecutive_failures > self.max_consecutive_failures:
                    raise RuntimeError(
                        f"collection failed {self.consecutive_failures} times in a row (data.max_consecutive_failures="
                        f"{self.max_consecutive_failures}); last error: {type(err).__name__}: {err}"
                    ) from err
                continue
            self.consecutive_failures = 0
            self.env_steps += stats.env_steps
            self.episodes += len(stats.episode_returns)
            if self.buffer.num_steps > 0:
                break
        metrics = stats.metrics()
        metrics.update(
            env_steps=float(self.env_steps),
            episodes=float(self.episodes),
            failures=float(self.collector_failures),
            temperature=float(self.temperature()),
            buffer_steps=float(self.buffer.num_steps),
        )
        return metrics

    # ------------------------------------------------------------ dataloaders
    def train_dataloader(self) -> DataLoader:
        return DataLoader(CollectAndReplay(self), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(EvaluationEpisodes(self.eval_episodes), batch_size=None, num_workers=0)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Replay buffer and counters: what a resumed run needs to continue where this one stopped."""
        return {
            "buffer": self.buffer.state_dict(),
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "collector_failures": self.collector_failures,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state_dict["buffer"])
        self.env_steps = int(state_dict["env_steps"])
        self.episodes = int(state_dict["episodes"])
        self.collector_failures = int(state_dict["collector_failures"])

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "world_model" in batch:
            return {**batch, "world_model": batch["world_model"].to(device)}
        return batch
