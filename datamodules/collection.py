"""The streaming DataModule: play the games with prior + MCTS, fill the replay buffer, yield batches."""

from __future__ import annotations

from time import perf_counter
from typing import Any, Iterator, Protocol

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, IterableDataset

from priorzero_pl.collect import collect
from priorzero_pl.agent import Agent
from priorzero_pl.assets.embedded import EMBEDDED, embedded_game
from priorzero_pl.buffer import GameSegment, ReplayBuffer, ReplayConfig
from priorzero_pl.data_args import check_data_args
from priorzero_pl.envs import EnvPool, resolve_game
from priorzero_pl.episodes import EvaluationRequest
from priorzero_pl.rank_state import gather_rank_states, own_rank_state
from priorzero_pl.resume import warn_on_other_prompt_versions
from priorzero_pl.rollout import Rollout, TimedGames
from priorzero_pl.stage_timer import StageTimer
from priorzero_pl.threads import ThreadBudget, apply_thread_budget, plan_thread_budget

_BUFFER_STREAM, _ACTING_STREAM = 0, 1
"""Seed entropy ``[data.seed, rank, stream]``: each rank's replay sampler and acting generator are
independent streams."""


class AgentFactory(Protocol):
    """What the data module collects with: the agent over the current weights, exploring at
    ``temperature`` (``functools.partial(PriorZeroModule.acting_agent, "collect")``)."""

    def __call__(self, *, temperature: float) -> Agent: ...


class ReplayTicket:
    """A placeholder the training stream yields; the data module turns it into a batch when the
    loop takes it (``on_before_batch_transfer``). Lightning's fetcher runs one item ahead: a batch
    made there would be played with the weights of two steps back, and a checkpoint written in
    between would hold a data state one batch ahead of the loop, which a resume cannot replay."""


class CollectAndReplay(IterableDataset):
    """Endless stream of :class:`ReplayTicket`; see :meth:`PriorZeroDataModule.next_batch`."""

    def __iter__(self) -> Iterator[ReplayTicket]:
        while True:
            yield ReplayTicket()


class EvaluationEpisodes(IterableDataset):
    """One item: the :class:`~priorzero_pl.episodes.EvaluationRequest` ``validation_step`` plays."""

    def __init__(self, request: EvaluationRequest) -> None:
        self.request = request

    def __iter__(self) -> Iterator[EvaluationRequest]:
        yield self.request


class PriorZeroDataModule(L.LightningDataModule):
    """Streams training batches from games played by the current agent.

    The stream collects ``collect_steps`` env steps, then yields ``batches_per_collect`` batches
    sampled from the buffer (the replay ratio), after a warm-up that fills the buffer. Each batch
    is a dict of named sub-batches: ``world_model`` (a ``WorldModelBatch``) and, on the first
    batch after a collection round, ``collect`` (that round's metrics, floats). Batches are made
    when the training loop takes them (see :class:`ReplayTicket`).

    The dataloaders run in the main process (``num_workers=0``): the agent must act with the
    trainer's current weights, and each worker would get its own copy of the games. Collection
    parallelism lives in :class:`~priorzero_pl.envs.EnvPool`; the agent comes from the
    :class:`AgentFactory` handed to :meth:`connect` (``priorzero_pl.cli.connect`` hands it
    ``PriorZeroModule.acting_agent`` for ``collect``) and plays through
    :class:`~priorzero_pl.rollout.Rollout`.

    Under DDP / DeepSpeed every rank collects with its own ``EnvPool`` (seeds offset by rank), its
    own acting generator and its own buffer sampler into its own buffer; the checkpoint keeps every
    rank's (:mod:`priorzero_pl.rank_state`). A resumed run continues exactly where it stopped: the
    buffer, both generators, the counters, the place in the replay-ratio cycle, and the episodes
    in progress, which are replayed into the fresh games (with the checkpoint's env seeds).

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
        seed: base seed (env ``i`` of rank ``r`` uses ``seed + 1000 * r + i``; the generators
            of rank ``r`` use ``[seed, r, stream]``).
        allow_unverified_game: train on a story file that fails its checksum or that Jericho does
            not recognise (its score is then off, so reward 0), with one logged warning.
        learner_threads: the learner's torch threads. None (default): the cores each rank has
            left after its ``num_envs`` env workers, at least one (:mod:`priorzero_pl.threads`);
            0: torch's default of one per core.
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
        allow_unverified_game: bool = False,
        learner_threads: int | None = None,
    ) -> None:
        check_data_args(
            game=game, games_dir=games_dir, num_envs=num_envs, max_episode_steps=max_episode_steps,
            batch_size=batch_size, collect_steps=collect_steps, batches_per_collect=batches_per_collect,
            warmup_steps=warmup_steps, replay=replay, temperature_start=temperature_start,
            temperature_end=temperature_end, temperature_decay_steps=temperature_decay_steps,
            max_consecutive_failures=max_consecutive_failures, eval_episodes=eval_episodes,
            valid_actions_timeout=valid_actions_timeout, seed=seed, allow_unverified_game=allow_unverified_game,
            learner_threads=learner_threads,
        )
        super().__init__()
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
        self.learner_threads = learner_threads
        self.thread_budget: ThreadBudget | None = None
        """The budget this rank applied at set-up (logged once)."""
        self.buffer = ReplayBuffer.from_config(replay, seed=[seed, 0, _BUFFER_STREAM])
        self.rng = np.random.default_rng([seed, 0, _ACTING_STREAM])
        """The acting generator (root noise, action sampling, tie-breaking) of this rank."""
        self.env_seed = seed
        """Seed of env 0 of this rank's pool (``seed + 1000 * rank``, or the checkpoint's)."""
        self.env_steps = 0
        self.episodes = 0
        self.collector_failures = 0
        self.consecutive_failures = 0
        self.batches_left = 0
        """Batches still to sample before the next collection round."""
        # Resolved now so that a bad path fails before any model is loaded.
        self.game_path: str | None = None if game == EMBEDDED else str(resolve_game(game, games_dir))
        self.env_pool: EnvPool | None = None
        self.rollout: Rollout | None = None
        self._saved_rollout: dict[str, Any] | None = None
        self._seeded_rank: int | None = None
        self._agent_factory: AgentFactory | None = None
        self._timer: StageTimer | None = None

    def connect(self, agent_factory: AgentFactory, timer: StageTimer | None = None) -> None:
        """Hand the data module the agent it collects with, and the stage timer its env steps,
        replay sampling and round overhead are reported to (``PriorZeroModule.stage_timer``; None
        times nothing). Given, not looked up through the trainer: the data module then depends on
        an agent factory and a timer, not on the module's class, and a test can collect with any
        agent."""
        self._agent_factory = agent_factory
        self._timer = timer

    # ------------------------------------------------------------------ set-up
    def prepare_data(self) -> None:
        """Build the embedded game once (rank zero) before any rank resolves it."""
        if self.game == EMBEDDED:
            embedded_game()

    def setup(self, stage: str) -> None:
        if self.game_path is None:
            self.game_path = str(embedded_game())
        rank = self._rank()
        if self._seeded_rank != rank:
            self._seeded_rank = rank
            self.buffer.reseed([self.seed, rank, _BUFFER_STREAM])
            self.rng = np.random.default_rng([self.seed, rank, _ACTING_STREAM])
            self.env_seed = self.seed + 1000 * rank
        if self.thread_budget is None:
            self.thread_budget = plan_thread_budget(
                self.learner_threads, env_workers=self.num_envs, processes_per_node=self._processes_per_node()
            )
            apply_thread_budget(self.thread_budget)
            rank_zero_info(self.thread_budget.describe())

    def _processes_per_node(self) -> int:
        return max(1, int(getattr(self.trainer, "num_devices", 1) or 1))

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def game_kwargs(self, max_steps: int | None = None) -> dict[str, Any]:
        """How every `TextGame` of this run is built (collection and evaluation); ``max_steps``
        overrides the episode limit."""
        return {"max_steps": max_steps or self.max_episode_steps, "valid_actions_timeout": self.valid_actions_timeout}

    def _ensure_rollout(self) -> Rollout:
        if self.rollout is None:
            self.env_pool = EnvPool(self.game_path, self.num_envs, seed=self.env_seed, **self.game_kwargs())
            timer = self._timer
            games = self.env_pool if timer is None else TimedGames(self.env_pool, timer)
            self.rollout = Rollout(games, game=self.game_path, restart=True)
            if self._saved_rollout is not None:
                self.rollout.restore(self._saved_rollout)
                self._saved_rollout = None
        return self.rollout

    def teardown(self, stage: str) -> None:
        """Close the games; the episodes in progress are kept, for a checkpoint written after."""
        if self.rollout is not None and self.rollout.started:
            self._saved_rollout = self.rollout.state_dict()
        self._close_games()

    def _close_games(self) -> None:
        if self.env_pool is not None:
            self.env_pool.close()
        self.env_pool = None
        self.rollout = None

    # ------------------------------------------------------------- collection
    def temperature(self) -> float:
        """Action-selection temperature: linear from start to end over the decay steps (env steps)."""
        start, end, steps = self.hparams.temperature_start, self.hparams.temperature_end, self.hparams.temperature_decay_steps
        progress = 1.0 if steps == 0 else min(1.0, self.env_steps / steps)
        return start + (end - start) * progress

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.next_batch() if isinstance(batch, ReplayTicket) else batch

    def next_batch(self) -> dict[str, Any]:
        """The next training batch: after a collection round when the round's batches are used up."""
        batch: dict[str, Any] = {}
        if self.batches_left == 0:
            batch["collect"] = self.collect_round()
            self.batches_left = self.batches_per_collect
        self.batches_left -= 1
        timer = self._timer
        if timer is None:
            batch["world_model"] = self.buffer.sample(self.batch_size)
        else:
            with timer.stage("replay_sample"):
                batch["world_model"] = self.buffer.sample(self.batch_size)
        return batch

    def stop_requested(self) -> bool:
        """Whether the fit was told to stop: Lightning's SIGTERM flag (``trainer.received_sigterm``)
        or ``trainer.should_stop`` (set by ``callbacks.Checkpointing`` on Ctrl+C, or by any
        callback ending the fit). Collection asks it between env steps."""
        trainer = self.trainer
        return trainer is not None and (trainer.received_sigterm or trainer.should_stop)

    def collect_round(self) -> dict[str, float]:
        """Collect one round (the whole warm-up the first time). A round that raises is logged,
        counted and skipped (its games are restarted); ``max_consecutive_failures`` in a row stop
        the run with the cause.

        A stop request (:meth:`stop_requested`) ends the round at the next env step. With a batch
        to sample the loop takes one more step and stops there (with a checkpoint); before the
        buffer holds anything, a SIGTERM raises ``SIGTERMException`` (``callbacks.Checkpointing``
        saves the warm-up's episodes on it) and a Ctrl+C ``KeyboardInterrupt``."""
        timer = self._timer
        if timer is None:
            return self._collect_round()
        started, timed = perf_counter(), timer.total()
        try:
            return self._collect_round()
        finally:  # what the round's env, prior and search stages did not hold
            timer.add("collect_other", max(0.0, perf_counter() - started - (timer.total() - timed)))

    def _collect_round(self) -> dict[str, float]:
        if self._agent_factory is None:
            raise RuntimeError(
                "PriorZeroDataModule has no agent to collect with: call priorzero_pl.cli.connect(module, datamodule) "
                "before the fit (build_cli does)"
            )
        target = self.collect_steps if self.buffer.num_steps >= max(self.warmup_steps, 1) else max(self.warmup_steps, 1)
        while True:
            try:
                agent = self._agent_factory(temperature=self.temperature())
                stats = collect(self._ensure_rollout(), agent, self.rng, self.buffer, target, self.stop_requested)
            except Exception as err:  # noqa: BLE001 - any collection failure is survivable up to the limit
                self.collector_failures += 1
                self.consecutive_failures += 1
                rank_zero_warn(f"collection round failed ({self.consecutive_failures} in a row): {type(err).__name__}: {err}")
                self._close_games()
                self._saved_rollout = None
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
            if self.stop_requested():
                raise SIGTERMException() if self.trainer.received_sigterm else KeyboardInterrupt()
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
        return DataLoader(CollectAndReplay(), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        request = EvaluationRequest(game=self.game_path, episodes=self.eval_episodes, game_kwargs=self.game_kwargs())
        return DataLoader(EvaluationEpisodes(request), batch_size=None, num_workers=0)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Every rank's data state (see :mod:`priorzero_pl.rank_state`): what a resumed run needs
        to continue exactly where this one stopped."""
        if self.rollout is not None and self.rollout.started:
            rollout = self.rollout.state_dict()
        else:
            rollout = self._saved_rollout
        local = {
            "buffer": self.buffer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "env_seed": self.env_seed,
            "rollout": rollout,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "collector_failures": self.collector_failures,
            "batches_left": self.batches_left,
        }
        return {"ranks": gather_rank_states(local)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """This rank's part of what :meth:`state_dict` saved; warns when saved episodes hold
        prompts of another prompt version (their prompts are replayed for LLM training)."""
        local = own_rank_state(state_dict["ranks"], self._rank(), "a replay buffer and episodes in progress")
        if local is None:
            return
        self.buffer.load_state_dict(local["buffer"])
        self.rng.bit_generator.state = local["rng"]
        self.env_seed = int(local["env_seed"])
        self._close_games()
        self._saved_rollout = local["rollout"]
        self.env_steps = int(local["env_steps"])
        self.episodes = int(local["episodes"])
        self.collector_failures = int(local["collector_failures"])
        self.batches_left = int(local["batches_left"])
        in_progress = (self._saved_rollout or {}).get("segments") or []
        warn_on_other_prompt_versions(
            [segment.prompt_version for segment in self.buffer.recent_segments(self.buffer.num_segments)]
            + [GameSegment.from_state(segment).prompt_version for segment in in_progress],
            "saved episodes (replay buffer and episodes in progress)",
            "LLM training on replayed prompts (distillation, RFT, PPO) sees the old text until those episodes "
            "leave the buffer, while new episodes are rendered in the new text",
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "world_model" in batch:
            return {**batch, "world_model": batch["world_model"].to(device)}
        return batch
