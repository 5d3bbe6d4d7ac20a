"""One played episode, as the replay buffer stores it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np

from priorzero_pl.errors import PriorZeroInputError

_STEP_FIELDS = (
    "observations",
    "candidates",
    "prompts",
    "actions",
    "rewards",
    "visit_policies",
    "prior_logprobs",
    "root_values",
    "behaviour_logprobs",
)


@dataclass
class GameSegment:
    """An episode (or the part of one collected so far), step-aligned.

    The one index alignment: **index ``t`` of every per-step list describes the decision taken
    at observation ``t``**. ``observations[t]`` was seen with ``candidates[t]`` (and the LLM got
    ``prompts[t]``); the search over it gave ``visit_policies[t]`` and ``root_values[t]``; the
    prior over ``candidates[t]`` was ``prior_logprobs[t]``; the agent drew
    ``candidates[t][actions[t]]`` from a distribution that gave it log-probability
    ``behaviour_logprobs[t]`` and then received ``rewards[t]`` and saw ``observations[t + 1]`` (or
    ``final_observation`` when ``t = T - 1``).

    ``terminal`` means the game itself ended the episode (nothing follows the end: value 0);
    otherwise (truncated by a step limit or a crash, or still running) the value after the end is
    unknown and value targets bootstrap.

    Attributes:
        observations: ``[T]`` observation texts.
        candidates: ``[T][A_t]`` candidate actions (the game's valid actions) at each step.
        prompts: ``[T]`` prompt the LLM prior scored ``candidates[t]`` with.
        actions: ``[T]`` index into ``candidates[t]`` of the action taken.
        rewards: ``[T]`` reward received after ``actions[t]``.
        visit_policies: ``[T]`` float32 arrays ``[A_t]``: the search's raw visit fractions (the
            LLM prior itself when the agent acted on the prior alone).
        prior_logprobs: ``[T]`` float32 arrays ``[A_t]``: LLM log-prior over ``candidates[t]``.
        root_values: ``[T]`` search value of observation ``t``.
        behaviour_logprobs: ``[T]`` log-prob of ``actions[t]`` under the distribution it was
            actually drawn from (the tempered visit counts of the noised search, or the tempered
            prior); 0 for a greedy choice.
    """

    game: str = ""
    observations: list[str] = field(default_factory=list)
    candidates: list[list[str]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    visit_policies: list[np.ndarray] = field(default_factory=list)
    prior_logprobs: list[np.ndarray] = field(default_factory=list)
    root_values: list[float] = field(default_factory=list)
    behaviour_logprobs: list[float] = field(default_factory=list)
    terminal: bool = False
    final_observation: str | None = None
    """The observation after the last action (the consistency target of the last transition)."""
    final_score: float = 0.0
    max_score: float = 0.0
    prompt_version: str | None = None
    """The ``PROMPT_VERSION`` (:mod:`priorzero_pl.prior.prompt`) that rendered ``prompts``, set by
    the rollout that plays the episode: prompts are replayed for LLM training, so a resume must be
    able to tell prompts of another version. None: not recorded (built by hand, or saved before
    versions were stored). An episode resumed across a version change keeps its saved version,
    because its first prompts are in the old text."""

    def append(
        self,
        *,
        observation: str,
        candidates: Sequence[str],
        prompt: str,
        action: int,
        reward: float,
        visit_policy: Sequence[float] | np.ndarray,
        prior_logprobs: Sequence[float] | np.ndarray,
        root_value: float,
        behaviour_logprob: float,
    ) -> None:
        """Record one step: the observation, the decision taken there and the reward it earned."""
        self.observations.append(observation)
        self.candidates.append(list(candidates))
        self.prompts.append(prompt)
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        self.visit_policies.append(np.asarray(visit_policy, dtype=np.float32))
        self.prior_logprobs.append(np.asarray(prior_logprobs, dtype=np.float32))
        self.root_values.append(float(root_value))
        self.behaviour_logprobs.append(float(behaviour_logprob))

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of the rewards."""
        return float(sum(self.rewards))

    def validate(self) -> None:
        """Raise :class:`PriorZeroInputError` unless every per-step list is aligned with the rest."""
        length = len(self)
        for name in _STEP_FIELDS:
            if len(getattr(self, name)) != length:
                raise PriorZeroInputError(
                    f"GameSegment({self.game!r}): {name} has {len(getattr(self, name))} steps, "
                    f"observations have {length}"
                )
        for t in range(length):
            count = len(self.candidates[t])
            if count == 0:
                raise PriorZeroInputError(f"GameSegment({self.game!r}) step {t}: no candidate actions")
            for name in ("visit_policies", "prior_logprobs"):
                if getattr(self, name)[t].shape != (count,):
                    raise PriorZeroInputError(
                        f"GameSegment({self.game!r}) step {t}: {name} has shape {getattr(self, name)[t].shape}, "
                        f"candidates[{t}] has {count} entries"
                    )
            if not 0 <= self.actions[t] < count:
                raise PriorZeroInputError(
                    f"GameSegment({self.game!r}) step {t}: action {self.actions[t]} outside its {count} candidates"
                )

    def to_state(self) -> dict[str, Any]:
        """Plain python (lists, floats, strings) for checkpoints: loads even with ``weights_only``."""
        state: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("visit_policies", "prior_logprobs"):
                value = [array.tolist() for array in value]
            elif isinstance(value, list):
                value = list(value)  # a copy: an episode in progress keeps growing after its state is taken
            state[f.name] = value
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GameSegment:
        """Inverse of :meth:`to_state` (float32 arrays round-trip exactly through python floats)."""
        values = dict(state)
        for name in ("visit_policies", "prior_logprobs"):
            values[name] = [np.asarray(row, dtype=np.float32) for row in values[name]]
        return cls(**values)
