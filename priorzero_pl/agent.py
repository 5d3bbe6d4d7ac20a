"""Acting: one decision for each of a batch of games, from the LLM prior and a search in the world model.

Collection and evaluation both act through :class:`Agent`, so that what is evaluated is exactly
what collects the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from priorzero_pl.envs.step import StepRecord
from priorzero_pl.mcts import MCTSConfig, run_search
from priorzero_pl.mcts.types import SearchModel
from priorzero_pl.prior import FallbackPrior, HistoryStep, PriorRequest, PromptBuilder

ActingMode = Literal["world_model", "world_model+prior", "prior"]
"""``world_model``: search without the LLM prior; ``world_model+prior``: search with the prior
injected as configured (the training agent); ``prior``: the LLM prior alone, no search."""


@dataclass
class Decision:
    """What the agent decided for one game, with everything the replay buffer keeps.

    Attributes:
        action_index: index of the chosen action in the step's candidates.
        action: the chosen action text.
        prompt: the prompt the LLM prior scored.
        prior_logprobs: ``[A]`` LLM log-prior over the candidates (uniform when no prior ran).
        visit_policy: ``[A]`` the search's visit policy (the prior itself in ``prior`` mode).
        root_value: value of the root after search (0 in ``prior`` mode).
        behaviour_logprob: log-prob of the chosen action under the LLM prior (PPO's old log-prob).
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
    """

    def __init__(
        self,
        world_model: SearchModel,
        prior: FallbackPrior | None,
        prompt_builder: PromptBuilder,
        mcts: MCTSConfig,
    ) -> None:
        self.world_model = world_model
        self.prior = prior
        self.prompt_builder = prompt_builder
        self.mcts = mcts

    def act(
        self,
        records: Sequence[StepRecord],
        histories: Sequence[Sequence[HistoryStep]],
        rng: np.random.Generator,
        *,
        mode: ActingMode = "world_model+prior",
        explore: bool = True,
        temperature: float | None = None,
        prior_weight: float | None = None,
    ) -> list[Decision]:
        """Decide one action per game. ``explore`` adds root noise and samples from the visit
        policy; without it the search is noise-free and the action is the argmax."""
        candidates = [list(r.candidates) for r in records]
        prompts = [self.prompt_builder.build(h, r.observation, r.candidates) for r, h in zip(records, histories)]
        log_priors = self._prior(prompts, candidates, records)

        if mode == "prior":
            return [self._prior_decision(p, c, lp, rng, explore, temperature) for p, c, lp in zip(prompts, candidates, log_priors)]

        output = run_search(
            self.world_model,
            [r.observation for r in records],
            candidates,
            log_priors if mode == "world_model+prior" else None,
            self.mcts,
            rng,
            add_noise=explore,
            greedy=not explore,
            prior_weight=prior_weight,
            visit_temperature=temperature,
        )
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
                    behaviour_logprob=float(log_prior[a]),
                    search_depth=int(output.max_depth[i]),
                    prior_tv=float(output.prior_tv[i]),
                )
            )
        return decisions

    def _prior(self, prompts: list[str], candidates: list[list[str]], records: Sequence[StepRecord]) -> list[np.ndarray]:
        if self.prior is None:
            return [np.full(len(c), -np.log(len(c)), dtype=np.float32) for c in candidates]
        requests = [PriorRequest(prompt=p, candidates=c, state_hash=r.state_hash) for p, c, r in zip(prompts, candidates, records)]
        return [lp.detach().float().cpu().numpy() for lp in self.prior.score(requests)]

    @staticmethod
    def _prior_decision(
        prompt: str,
        candidates: list[str],
        log_prior: np.ndarray,
        rng: np.random.Generator,
        explore: bool,
        temperature: float | None,
    ) -> Decision:
        probs = torch.softmax(torch.as_tensor(log_prior, dtype=torch.float64) / (temperature or 1.0), dim=0).numpy()
        a = int(rng.choice(len(candidates), p=probs / probs.sum())) if explore else int(np.argmax(log_prior))
        return Decision(
            action_index=a,
            action=candidates[a],
            prompt=prompt,
            prior_logprobs=log_prior,
            visit_policy=probs.astype(np.float32),
            root_value=0.0,
            behaviour_logprob=float(log_prior[a]),
        )
