"""Acting: one decision for each of a batch of games, from the LLM prior and a search in the world model.

An :class:`Agent` carries every setting that decides how it acts (:class:`ActingSettings`), so
that collection, evaluation, transcripts and the demo act through the same object and differ
only in the settings it was built with (``PriorZeroModule.acting_agent(purpose)`` builds it).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from time import perf_counter
from typing import Literal, Sequence

import numpy as np
import torch

from priorzero_pl.envs.step import StepRecord
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig, run_search
from priorzero_pl.mcts.types import SearchModel
from priorzero_pl.prior import FallbackPrior, HistoryStep, PriorRequest, PromptBuilder
from priorzero_pl.stage_timer import StageTimer, TimedSearchModel

ActingMode = Literal["world_model", "world_model+prior", "prior"]
"""``world_model``: search without the LLM prior; ``world_model+prior``: search with the prior
injected as configured (the training agent); ``prior``: the LLM prior alone, no search."""

ACTING_MODES: tuple[str, ...] = ("world_model", "world_model+prior", "prior")


@dataclass(frozen=True)
class ActingSettings:
    """How an agent acts, apart from its weights.

    Attributes:
        mode: what decides (see :data:`ActingMode`).
        explore: Dirichlet noise at the root and the action sampled from the tempered visit
            counts (the tempered prior in ``prior`` mode); False: a noise-free search and the most
            visited candidate (the prior's argmax), ties broken at random.
        temperature: the action is drawn from ``N^(1/T)`` (``p^(1/T)``); 0 is uniform over the
            most visited. Used only with ``explore``. It never changes the stored visit policy.
        prior_weight: ``mixture`` weight of the LLM prior (a schedule's value at this step);
            None: the MCTS config's.
    """

    mode: ActingMode = "world_model+prior"
    explore: bool = False
    temperature: float = 1.0
    prior_weight: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ACTING_MODES:
            raise PriorZeroInputError(f"acting mode must be one of {list(ACTING_MODES)}, got {self.mode!r}")
        if not self.temperature >= 0:
            raise PriorZeroInputError(f"acting temperature must be >= 0 (0 = most visited), got {self.temperature}")
        if self.prior_weight is not None and not 0 <= self.prior_weight <= 1:
            raise PriorZeroInputError(f"acting prior_weight must be in [0, 1], got {self.prior_weight}")


@dataclass
class Decision:
    """What the agent decided for one game, with everything the replay buffer keeps.

    Attributes:
        action_index: index of the chosen action in the step's candidates.
        action: the chosen action text.
        prompt: the prompt the LLM prior scored.
        prior_logprobs: ``[A]`` LLM log-prior over the candidates (uniform when no prior ran).
        visit_policy: ``[A]`` the search's raw visit fractions (the prior itself in ``prior`` mode).
        root_value: value of the root after search (0 in ``prior`` mode).
        behaviour_logprob: log-prob of the chosen action under the distribution it was drawn
            from (tempered visit counts of the noised search, or the tempered prior; 0 when greedy).
        search_depth: deepest node the search reached.
        prior_tv: total-variation distance between visit policy and world-model policy.
    """

    action_index: int
    action: str
    prompt: str
    prior_logprobs: np.ndarray
    visit_policy: np.ndarray
    root_value: float
    behaviour_logprob: float
    search_depth: int = 0
    prior_tv: float = 0.0


class Agent:
    """Scores the candidates with the prior, searches the world model, picks actions.

    Args:
        world_model: the model searched over (``SearchModel``).
        prior: the LLM prior (``None`` acts as a uniform prior).
        prompt_builder: turns history + observation + candidates into the prior's prompt.
        mcts: search settings.
        settings: how it acts (mode, exploration, temperature, prior weight).
        timer: where the seconds of prior scoring (``prior``, items: candidates scored) and search
            (``search_model``: the world model's calls; ``search_tree``: the rest of the search,
            items: simulations) go; None times nothing. The collecting agent gets the module's.
    """

    def __init__(
        self,
        world_model: SearchModel,
        prior: FallbackPrior | None,
        prompt_builder: PromptBuilder,
        mcts: MCTSConfig,
        settings: ActingSettings = ActingSettings(),
        timer: StageTimer | None = None,
    ) -> None:
        self.world_model = world_model
        self.prior = prior
        self.prompt_builder = prompt_builder
        self.mcts = mcts
        self.settings = settings
        self.timer = timer

    def act(
        self, records: Sequence[StepRecord], histories: Sequence[Sequence[HistoryStep]], rng: np.random.Generator
    ) -> list[Decision]:
        """Decide one action per game; ``rng`` is the only source of randomness."""
        settings = self.settings
        candidates = [list(r.candidates) for r in records]
        prompts = [self.prompt_builder.build(h, r.observation, r.candidates) for r, h in zip(records, histories)]
        log_priors = self._prior(prompts, candidates, records)

        if settings.mode == "prior":
            return [self._prior_decision(p, c, lp, rng) for p, c, lp in zip(prompts, candidates, log_priors)]

        timer = self.timer
        model = self.world_model if timer is None else TimedSearchModel(self.world_model)
        started = perf_counter()
        output = run_search(
            model,
            [r.observation for r in records],
            candidates,
            log_priors if settings.mode == "world_model+prior" else None,
            self.mcts,
            rng,
            add_noise=settings.explore,
            greedy=not settings.explore,
            prior_weight=settings.prior_weight,
            action_temperature=settings.temperature,
        )
        if timer is not None:
            # The model's calls and the tree work (selection, backup, noise) as two disjoint stages.
            model_seconds = model.seconds  # type: ignore[union-attr]
            timer.add("search_model", model_seconds, calls=model.calls)  # type: ignore[union-attr]
            timer.add("search_tree", perf_counter() - started - model_seconds, items=len(records) * self.mcts.num_simulations)
        decisions = []
        for i, (prompt, cands, log_prior) in enumerate(zip(prompts, candidates, log_priors)):
            a = int(output.action[i])
            decisions.append(
                Decision(
                    action_index=a,
                    action=cands[a],
                    prompt=prompt,
                    prior_logprobs=log_prior,
                    visit_policy=output.visit_policy[i, : len(cands)].astype(np.float32),
                    root_value=float(output.root_value[i]),
                    behaviour_logprob=float(np.log(output.action_policy[i, a])),
                    search_depth=int(output.max_depth[i]),
                    prior_tv=float(output.prior_tv[i]),
                )
            )
        return decisions

    def _prior(self, prompts: list[str], candidates: list[list[str]], records: Sequence[StepRecord]) -> list[np.ndarray]:
        if self.prior is None:
            return [np.full(len(c), -np.log(len(c)), dtype=np.float32) for c in candidates]
        requests = [PriorRequest(prompt=p, candidates=c, state_hash=r.state_hash) for p, c, r in zip(prompts, candidates, records)]
        timing = nullcontext() if self.timer is None else self.timer.stage("prior", items=sum(len(c) for c in candidates))
        with timing:
            return [lp.detach().float().cpu().numpy() for lp in self.prior.score(requests)]

    def _prior_decision(
        self, prompt: str, candidates: list[str], log_prior: np.ndarray, rng: np.random.Generator
    ) -> Decision:
        """The prior alone: the action drawn from ``p^(1/T)``, or its argmax (ties at random)."""
        log_prior64 = torch.as_tensor(log_prior, dtype=torch.float64)
        prior = torch.softmax(log_prior64, dim=0).numpy()
        if self.settings.explore:
            top = log_prior64 == log_prior64.max()
            temperature = self.settings.temperature
            behaviour = (top / top.sum()).numpy() if temperature == 0 else torch.softmax(log_prior64 / temperature, 0).numpy()
            a = int(rng.choice(len(candidates), p=behaviour / behaviour.sum()))
            behaviour_logprob = float(np.log(behaviour[a]))
        else:
            a = int(rng.choice(np.flatnonzero(log_prior == log_prior.max())))
            behaviour_logprob = 0.0
        return Decision(
            action_index=a,
            action=candidates[a],
            prompt=prompt,
            prior_logprobs=log_prior,
            visit_policy=prior.astype(np.float32),
            root_value=0.0,
            behaviour_logprob=behaviour_logprob,
        )
