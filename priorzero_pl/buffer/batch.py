"""The world model's training batch: ``B`` unrolls of ``K`` steps sampled from replay."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class WorldModelBatch:
    """``B`` windows of ``K + 1`` consecutive steps, each starting at a sampled position ``t``.

    Step ``k`` of row ``b`` describes position ``t + k`` of its episode (``T`` steps). Positions
    ``t + k < T`` are real (``step_mask``). Position ``T`` is the observation after the last action
    (the segment's ``final_observation``); beyond it the observation repeats, the candidates repeat
    the last real step's (so that action 0 still names a string), actions are 0 and every target
    is 0. ``A`` is the largest candidate set in the batch.

    Attributes:
        observations: ``[B][K + 1]`` observation texts.
        candidates: ``[B][K + 1][A_var]`` candidate action texts at each step.
        actions: ``[B, K]`` long, index into ``candidates[b][k]`` of the action taken at step ``k``.
        target_reward: ``[B, K]`` reward received after ``actions[:, k]``.
        target_value: ``[B, K + 1]`` n-step bootstrapped value target of each step.
        target_policy: ``[B, K + 1, A]`` MCTS visit policy over each step's candidates (0 padded).
        candidate_mask: ``[B, K + 1, A]`` bool, True where ``candidates[b][k]`` has an entry.
        step_mask: ``[B, K + 1]`` bool, True on real steps (``t + k < T``): value, policy and the
            reward and transition out of step ``k`` are trained only there.
        observation_mask: ``[B, K + 1]`` bool, True where the observation is real (steps before
            ``T``, and ``T`` itself when the episode recorded its final observation): the latent
            consistency target of step ``k`` needs it.
        weights: ``[B]`` importance-sampling weights (all 1 without prioritised replay).
        indices: ``[B]`` long, replay ids of the sampled positions, for ``update_priorities``.
        root_prompts: ``[B]`` the prompt the LLM prior saw at step 0 (for LLM distillation).
        root_prior_logprobs: ``[B, A]`` the LLM log-prior over step 0's candidates (0 where
            ``candidate_mask[:, 0]`` is False).
        root_behaviour_logprobs: ``[B]`` log-prob of ``actions[:, 0]`` under the prior at collection.
    """

    observations: list[list[str]]
    candidates: list[list[list[str]]]
    actions: torch.Tensor
    target_reward: torch.Tensor
    target_value: torch.Tensor
    target_policy: torch.Tensor
    candidate_mask: torch.Tensor
    step_mask: torch.Tensor
    observation_mask: torch.Tensor
    weights: torch.Tensor
    indices: torch.Tensor
    root_prompts: list[str]
    root_prior_logprobs: torch.Tensor | None = None
    root_behaviour_logprobs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def unroll_steps(self) -> int:
        """``K``."""
        return self.actions.shape[1]

    def to(self, device: torch.device | str) -> WorldModelBatch:
        """A copy with every tensor on ``device`` (text fields are shared, not copied)."""
        moved = {
            field.name: value.to(device)
            for field in fields(self)
            if isinstance(value := getattr(self, field.name), torch.Tensor)
        }
        return replace(self, **moved)
