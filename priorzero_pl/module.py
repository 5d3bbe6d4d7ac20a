"""`PriorZeroModule`: the world model and the LLM policy, trained by one optimizer."""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import Any, Literal, Sequence

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy
from lightning.pytorch.utilities import grad_norm, rank_zero_warn
from torchmetrics import MeanMetric

from priorzero_pl.agent import ActingMode, ActingSettings, Agent
from priorzero_pl.assets.embedded import EMBEDDED, embedded_llm
from priorzero_pl.buffer import ReplayBuffer, WorldModelBatch
from priorzero_pl.llm.config import LLMConfig
from priorzero_pl.optim_config import OptimConfig
from priorzero_pl.episodes import EvaluationRequest, play_episodes
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig, PriorWeightSchedule
from priorzero_pl.models import WorldModel, WorldModelConfig
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.module_args import check_module_args
from priorzero_pl.objectives.distillation import distillation_loss
from priorzero_pl.objectives.objective import CandidateBatch, LLMObjective
from priorzero_pl.prior import PROMPT_VERSION, FallbackPrior, PriorConfig, build_prior, build_prompt_builder
from priorzero_pl.llm.policy import LLMPolicy
from priorzero_pl.rank_state import gather_rank_states, own_rank_state
from priorzero_pl.resume import warn_on_other_prompt_versions
from priorzero_pl.stage_timer import StageTimer, StageTotals, perf_metrics

Purpose = Literal["collect", "evaluate"]
"""What an agent is built for: ``collect`` explores (root noise, tempered sampling); ``evaluate``
is noise-free and greedy. Both search with the prior weight scheduled for the current step."""


class PriorZeroModule(L.LightningModule):
    """World model + LLM policy.

    Every training step optimises the world model on replayed unrolls (value, reward, policy vs
    MCTS visits, latent consistency) and, unless switched off, distils the visit policy into the
    LLM. Callbacks add further LLM objectives (RFT, PPO) by queueing ``(objective, batch)`` pairs:
    the module applies one per step inside the same loss, so there is one ``backward`` and one
    optimizer (which DeepSpeed requires). The queue is part of the checkpoint (every rank's).

    Acting goes through :meth:`acting_agent`, which builds the agent with every setting a purpose
    needs; collection, evaluation, transcripts and the demo all act through it.

    Args:
        llm: the LLM policy (local HF model path or ``embedded``) and its training switches.
        world_model: world-model architecture and loss weights.
        mcts: search settings used for collection and evaluation.
        prior: how the LLM prior is served and prompted.
        optim: learning rates and weight decay.
        prior_weight_schedule: anneals the ``mixture`` weight of the LLM prior over training steps
            (``None``: ``mcts.prior_weight`` throughout).
        eval_seed: seed of the greedy evaluation episodes played by ``validate``.
    """

    def __init__(
        self,
        llm: LLMConfig = LLMConfig(),
        world_model: WorldModelConfig = WorldModelConfig(),
        mcts: MCTSConfig = MCTSConfig(),
        prior: PriorConfig = PriorConfig(),
        optim: OptimConfig = OptimConfig(),
        prior_weight_schedule: PriorWeightSchedule | None = None,
        eval_seed: int = 1234,
    ) -> None:
        check_module_args(mcts=mcts, prior_weight_schedule=prior_weight_schedule, eval_seed=eval_seed)
        super().__init__()
        self.save_hyperparameters()
        self.llm_config, self.mcts_config, self.prior_config, self.optim_config = llm, mcts, prior, optim
        self.eval_seed = eval_seed
        self.prior_weight_schedule = prior_weight_schedule
        self.llm_path = str(embedded_llm() if llm.path == EMBEDDED else llm.path)
        self.llm, self.tokenizer = load_llm(self.llm_path)
        if llm.gradient_checkpointing:
            self.llm.gradient_checkpointing_enable()
        self.llm.requires_grad_(llm.train)
        self.llm.train(llm.train)  # from_pretrained returns eval mode; Lightning keeps submodule modes
        self.llm_policy = LLMPolicy(self.llm, self.tokenizer, prior.length_normalise, prior.temperature)
        """The LLM as a policy: the hf prior, distillation, RFT and PPO all score through it."""
        self.world_model = WorldModel(world_model)
        self.prompt_builder = build_prompt_builder(prior, self.tokenizer)
        self.prior: FallbackPrior | None = None
        self._replay: ReplayBuffer | None = None
        """The buffer the training batches come from; its priorities are updated when it is prioritized."""
        self.llm_updates = 0
        self._prior_cache_updates = 0
        self._llm_objectives: dict[str, LLMObjective] = {}
        # (objective name, batch); a batch restored from a checkpoint is its state dict until used.
        self._llm_queue: deque[tuple[str, CandidateBatch | dict[str, Any]]] = deque()
        self._warned_unknown_objectives: set[str] = set()
        self.nonfinite_losses = 0
        """Training steps skipped because the loss was NaN or inf (``callbacks.GracefulFallback``
        logs it as ``fallback/nonfinite_loss`` and stops the fit after too many in a row)."""
        self.consecutive_nonfinite_losses = 0
        self.eval_score = MeanMetric()
        self.eval_normalized_score = MeanMetric()
        self.eval_episode_length = MeanMetric()
        self.stage_timer = StageTimer()
        """Seconds per stage of the fit (:mod:`priorzero_pl.stage_timer`): the collecting agent and
        the data module's games report to it, the training hooks below time the learner, and
        every training step's remainder counts as ``logging_callbacks``. Logged as ``perf/``."""
        self.last_step_totals: StageTotals | None = None
        """What the last training step spent per stage (``benchmarks/throughput.py`` reads it)."""
        self._perf_window = StageTotals()
        self._perf_window_steps = 0
        self._backward_started: float | None = None
        self._optimizer_started: float | None = None
        self._validation_started: float | None = None

    def connect(self, replay: ReplayBuffer) -> None:
        """Hand the module the replay buffer its batches are sampled from, so that a prioritized
        buffer gets the trained steps' priorities. Given, not looked up through the trainer: the
        module then depends on a buffer, not on the data module's class.

        Refuses a buffer whose value targets use another discount than the search (and PPO)."""
        if replay.config.discount != self.mcts_config.discount:
            raise PriorZeroInputError(
                f"data.replay.discount={replay.config.discount} differs from model.mcts.discount="
                f"{self.mcts_config.discount}: the value targets, the search and PPO must use one discount; "
                f"set data.replay.discount to {self.mcts_config.discount}"
            )
        self._replay = replay

    # --------------------------------------------------------------- acting
    def setup(self, stage: str) -> None:
        if self.prior is None:
            self.prior = build_prior(self.prior_config, self.llm_policy, model_path=self.llm_path)

    def teardown(self, stage: str) -> None:
        if self.prior is not None:
            self.prior.close()
            self.prior = None

    def acting_agent(self, purpose: Purpose, *, mode: ActingMode = "world_model+prior", temperature: float = 1.0) -> Agent:
        """The agent for ``purpose`` over the current weights (no copies: updates show up at once).

        ``collect``: root noise, the action drawn from the visit counts at ``temperature`` (the
        data module's schedule). ``evaluate``: no noise, the most visited candidate (``temperature``
        is not used). Both search with :meth:`prior_weight`, the weight scheduled for this step,
        so what is evaluated is what collects. Cached prior scores are dropped when the LLM has
        changed since they were computed. The ``collect`` agent reports its prior and search
        seconds to :attr:`stage_timer` (evaluation is timed as a whole)."""
        if purpose not in ("collect", "evaluate"):
            raise PriorZeroInputError(f"acting purpose must be 'collect' or 'evaluate', got {purpose!r}")
        if self.prior is None:
            self.setup("fit")
        if self._prior_cache_updates != self.llm_updates:
            self.prior.clear_cache()
            self._prior_cache_updates = self.llm_updates
        explore = purpose == "collect"
        settings = ActingSettings(
            mode=mode, explore=explore, temperature=temperature if explore else 1.0, prior_weight=self.prior_weight()
        )
        timer = self.stage_timer if explore else None
        return Agent(self.world_model, self.prior, self.prompt_builder, self.mcts_config, settings, timer=timer)

    def prior_weight(self) -> float:
        """Mixture weight of the LLM prior at the current step (the schedule's, or the MCTS config's)."""
        if self.prior_weight_schedule is None:
            return self.mcts_config.prior_weight
        return self.prior_weight_schedule(self.global_step)

    # ------------------------------------------------------------ LLM policy
    def policy_logprobs(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]], *, model: torch.nn.Module | None = None
    ) -> list[torch.Tensor]:
        """The LLM policy: differentiable log-probs normalised over each candidate list, scored
        exactly as the prior scores them (same prompt, same length normalisation, temperature).

        ``model`` scores with another copy of the LLM (PPO's frozen reference) the same way."""
        return self.llm_policy.log_probs(prompts, candidates, model=model)

    def register_llm_objective(self, objective: LLMObjective) -> None:
        """Make ``objective`` known by its name (callbacks do it at fit start), so that batches
        restored from a checkpoint's queue find the objective that applies them."""
        self._llm_objectives[objective.name] = objective

    def enqueue_llm_objective(self, objective: LLMObjective, batch: CandidateBatch) -> None:
        """Schedule one LLM objective minibatch; the next training step applies it."""
        if not self.llm_config.train:
            raise RuntimeError(f"{objective.name} was scheduled but model.llm.train is false: enable it or drop the callback")
        self.register_llm_objective(objective)
        self._llm_queue.append((objective.name, batch))

    @property
    def llm_queue_size(self) -> int:
        return len(self._llm_queue)

    # ------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """The world model's loss plus the LLM's; ``None`` (the step is skipped) when it is NaN or inf.

        ``None`` is Lightning's own "skip this batch" under automatic optimization: no backward,
        the gradients stay cleared, so the optimizer changes no weight and no moment (zeroing the
        gradients instead would still move the weights by AdamW's momentum and weight decay). The
        decision is reduced over ranks, so that all skip together (DDP's backward is collective).
        Its wall time is the ``forward`` stage of :attr:`stage_timer`."""
        with self.stage_timer.stage("forward"):
            return self._training_step(batch)

    def _training_step(self, batch: dict[str, Any]) -> torch.Tensor | None:
        wm_batch: WorldModelBatch = batch["world_model"]
        loss, terms, priorities = self.world_model.loss(wm_batch)
        llm_loss = self._llm_losses(wm_batch)
        if llm_loss is not None:
            loss = loss + llm_loss
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss.detach()).all()), all=True):
            self.nonfinite_losses += 1
            self.consecutive_nonfinite_losses += 1
            rank_zero_warn(f"step {self.global_step}: the loss is {loss.item()}; the step is skipped (no weight changes)")
            return None
        self.consecutive_nonfinite_losses = 0
        # After the check: a NaN loss's priorities would be NaN, and poison the sampler.
        if self._replay is not None and self._replay.config.prioritized:
            self._replay.update_priorities(wm_batch.indices.cpu(), priorities.cpu())
        bs = len(wm_batch.observations)
        self.log_dict({f"world_model/{k}": v.detach() for k, v in terms.items()}, batch_size=bs)
        if "collect" in batch:
            collected = {f"collect/{k}": float(v) for k, v in batch["collect"].items()}
            score = collected.pop("collect/normalized_score", None)
            self.log_dict(collected, batch_size=1)
            if score is not None:  # on the progress bar, which keeps it until the next round's
                self.log("collect/normalized_score", score, prog_bar=True, batch_size=1)
        if self.prior is not None:
            self.log_dict({f"prior/{k}": float(v) for k, v in self.prior.metrics().items()}, batch_size=1)
        for group in self.trainer.optimizers[0].param_groups:
            self.log(f"lr/{group['name']}", group["lr"], batch_size=1)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        return loss

    def _llm_losses(self, wm_batch: WorldModelBatch) -> torch.Tensor | None:
        """Distillation (every step when its weight is > 0) plus one queued objective, if any."""
        if not self.llm_config.train:
            return None
        total: torch.Tensor | None = None
        if self.llm_config.distill_weight > 0:
            n = min(self.llm_config.distill_max_roots, len(wm_batch.root_prompts))
            candidates = [wm_batch.candidates[b][0] for b in range(n)]
            targets = [wm_batch.target_policy[b, 0, : len(c)] for b, c in enumerate(candidates)]
            distill = distillation_loss(self.policy_logprobs(wm_batch.root_prompts[:n], candidates), targets)
            self.log("llm/distill_loss", distill.detach(), batch_size=n)
            total = self.llm_config.distill_weight * distill
        queued = self._next_queued()
        if queued is not None:
            objective, batch = queued
            objective_loss, metrics = objective.loss(self.policy_logprobs, batch)
            self.log_dict({f"llm/{k}": v.detach() if torch.is_tensor(v) else v for k, v in metrics.items()}, batch_size=len(batch))
            total = objective_loss if total is None else total + objective_loss
        if total is not None:
            self.llm_updates += 1
            self.log("llm/updates", float(self.llm_updates), batch_size=1)
        return total

    def _next_queued(self) -> tuple[LLMObjective, CandidateBatch] | None:
        """The oldest queued batch with its objective; batches of an objective no callback
        provides any more (a resume without that callback) are dropped, with a warning once."""
        while self._llm_queue:
            name, batch = self._llm_queue.popleft()
            objective = self._llm_objectives.get(name)
            if objective is None:
                if name not in self._warned_unknown_objectives:
                    self._warned_unknown_objectives.add(name)
                    rank_zero_warn(f"queued {name!r} LLM batches from the checkpoint are dropped: no callback provides {name!r} now")
                continue
            if isinstance(batch, dict):
                batch = objective.batch_type.from_state(batch)
            return objective, batch
        return None

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradient norms per model: the first place to look when a run diverges. The
        ``optimizer`` stage starts after them (they count as logging)."""
        self.log_dict({f"grad_norm/world_model_{k}": v for k, v in grad_norm(self.world_model, 2).items() if k.endswith("total")})
        if self.llm_config.train:
            self.log_dict({f"grad_norm/llm_{k}": v for k, v in grad_norm(self.llm, 2).items() if k.endswith("total")})
        self._optimizer_started = perf_counter()

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Lightning's step, timed from the end of :meth:`on_before_optimizer_step` (clipping and
        ``optimizer.step``) as the ``optimizer`` stage; the closure before it is timed by its parts."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self._optimizer_started is not None:
            self.stage_timer.add("optimizer", perf_counter() - self._optimizer_started)
            self._optimizer_started = None

    # ----------------------------------------------------------- telemetry
    def on_before_backward(self, loss: torch.Tensor) -> None:
        """Start the ``backward`` stage (the hooks bracket the strategy's and precision's backward)."""
        self._backward_started = perf_counter()

    def on_after_backward(self) -> None:
        if self._backward_started is not None:
            self.stage_timer.add("backward", perf_counter() - self._backward_started)
            self._backward_started = None

    def on_train_start(self) -> None:
        """A fresh timing window: set-up and the sanity check are not a training step's."""
        self.stage_timer.reset()
        self._perf_window, self._perf_window_steps = StageTotals(), 0

    def on_validation_start(self) -> None:
        """Start the ``evaluation`` stage: validation runs between training steps and counts in the next."""
        self._validation_started = perf_counter()

    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking and self._validation_started is not None:
            self.stage_timer.add("evaluation", perf_counter() - self._validation_started)
        self._validation_started = None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Close this step's timing (its untimed rest is ``logging_callbacks``); log the window's
        ``perf/`` scalars at the logging cadence, and env steps per second on the progress bar
        every step (the window so far)."""
        step = self.stage_timer.pop(remainder="logging_callbacks")
        self.last_step_totals = step
        self._perf_window.merge(step)
        self._perf_window_steps += 1
        metrics = perf_metrics(self._perf_window, self._perf_window_steps)
        self.log("perf/env_steps_per_s", metrics.pop("env_steps_per_s"), prog_bar=True, batch_size=1)
        connector = getattr(self.trainer, "_logger_connector", None)
        # The check Lightning makes before it writes the step's metrics to the loggers.
        if connector is None or connector.should_update_logs:
            self.log_dict({f"perf/{k}": v for k, v in metrics.items()}, batch_size=1)
            self._perf_window, self._perf_window_steps = StageTotals(), 0

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip each parameter group (world model, LLM) by its own norm, to
        ``trainer.gradient_clip_val``: one norm over both would let a large LLM gradient shrink
        the world model's step, and the reverse. Clipping by value is per element anyway.

        Under DeepSpeed this hook cannot clip (the engine holds the gradients, and Lightning warns
        so at start-up): DeepSpeed clips by its config's ``gradient_clipping``, which Lightning
        sets to ``trainer.gradient_clip_val``, as one global norm over all parameters."""
        if not gradient_clip_val or isinstance(self.trainer.strategy, DeepSpeedStrategy):
            return
        if gradient_clip_algorithm == "value":
            self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm="value")
            return
        for group in optimizer.param_groups:
            torch.nn.utils.clip_grad_norm_(group["params"], gradient_clip_val)

    # ----------------------------------------------------------- evaluation
    def validation_step(self, request: EvaluationRequest, batch_idx: int) -> None:
        """Play the requested greedy episodes with the evaluation agent (world model + prior)."""
        results = play_episodes(
            self.acting_agent("evaluate"), request.game, episodes=request.episodes, seed=self.eval_seed, **request.game_kwargs
        )
        for result in results:
            self.eval_score.update(result.score)
            self.eval_normalized_score.update(result.normalized_score)
            self.eval_episode_length.update(result.length)
        self.log("eval/score", self.eval_score, batch_size=1)
        self.log("eval/normalized_score", self.eval_normalized_score, prog_bar=True, batch_size=1)
        self.log("eval/episode_length", self.eval_episode_length, batch_size=1)

    # ----------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        groups = [{"name": "world_model", "params": list(self.world_model.parameters()), "lr": self.optim_config.world_model_lr}]
        if self.llm_config.train:
            groups.append({"name": "llm", "params": [p for p in self.llm.parameters() if p.requires_grad], "lr": self.optim_config.llm_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.optim_config.weight_decay)
        warmup = self.optim_config.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds the LLM's training state: updates so far, every rank's queued LLM batches, and the
        prompt version their prompts (and the LLM's fine-tuning so far) were rendered with."""
        queue = [(name, batch if isinstance(batch, dict) else batch.to_state()) for name, batch in self._llm_queue]
        checkpoint["priorzero"] = {
            "llm_updates": self.llm_updates,
            "llm_queue": gather_rank_states(queue),
            "prompt_version": PROMPT_VERSION,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores what :meth:`on_save_checkpoint` added; warns when its prompts are of another
        prompt version (a checkpoint without one predates versioning)."""
        state = checkpoint.get("priorzero", {})
        self.llm_updates = int(state.get("llm_updates", 0))
        queue = own_rank_state(state.get("llm_queue", [[]]), self.global_rank, "queued LLM batches") or []
        self._llm_queue = deque((name, batch) for name, batch in queue)
        warn_on_other_prompt_versions(
            [state.get("prompt_version")],
            "the checkpoint's LLM prompts",
            f"its {len(self._llm_queue)} queued LLM batches train the LLM on the old text (as its "
            f"{self.llm_updates} LLM updates so far did), while new prompts are rendered in the new text",
        )
