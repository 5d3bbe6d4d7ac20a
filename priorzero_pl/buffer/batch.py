"""The world model's training batch: ``B`` unrolls of ``K`` steps sampled from replay."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class WorldModelBatch:
    """``B`` windows of ``K + 1`` consecutive steps, each starting at a sampled position ``t``.

    Step ``k`` of row ``b`` describes position ``t + k`` of its episode (``T`` steps). Positions
    ``t + k < T`` are real. Position ``T`` is the observation after the last action (the segment's
    ``final_observation``); beyond it the observation repeats and the candidates repeat the last
    real step's (so that an action index still names a string). What happens past ``T`` depends
    on how the episode ended:

    * **terminal** (the game ended it): MuZero's absorbing state. Value and reward targets are 0
      and trained (``value_mask``, ``reward_mask``), so the model learns that nothing follows a
      game-ending action; the policy target is masked; actions are drawn at random from the
      repeated candidates, so that every action is absorbing.
    * **truncated** (a step limit or a crash): nothing is known past ``T``; every target there is
      masked and actions are 0.

    ``A`` is the largest candidate set in the batch.

    Attributes:
        observations: ``[B][K + 1]`` observation texts.
        candidates: ``[B][K + 1][A_var]`` candidate action texts at each step.
        actions: ``[B, K]`` long, index into ``candidates[b][k]`` of the action taken at step ``k``.
        target_reward: ``[B, K]`` reward received after ``actions[:, k]`` (0 past a terminal end).
        target_value: ``[B, K + 1]`` n-step bootstrapped value target of each step (0 past a
            terminal end).
        target_policy: ``[B, K + 1, A]`` raw MCTS visit fractions over each step's candidates
            (0 padded, and 0 past the end).
        candidate_mask: ``[B, K + 1, A]`` bool, True where ``candidates[b][k]`` has an entry.
        policy_mask: ``[B, K + 1]`` bool, True on real steps (``t + k < T``): the policy target,
            and the latent transition out of step ``k``, are trained only there.
        value_mask: ``[B, K + 1]`` bool, True where the value target is known: real steps, and
            every step past a terminal end.
        reward_mask: ``[B, K]`` bool, True where the reward of the transition out of step ``k``
            is known: from real steps, and from every step past a terminal end.
        observation_mask: ``[B, K + 1]`` bool, True where the observation is real (steps before
            ``T``, and ``T`` itself when the episode recorded its final observation): the latent
            consistency target of step ``k`` needs it.
        weights: ``[B]`` importance-sampling weights (all 1 without prioritised replay).
        indices: ``[B]`` long, replay ids of the sampled positions, for ``update_priorities``.
        root_prompts: ``[B]`` the prompt the LLM prior saw at step 0 (for LLM distillation).
    """

    observations: list[list[str]]
    candidates: list[list[list[str]]]
    actions: torch.Tensor
    target_reward: torch.Tensor
    target_value: torch.Tensor
    target_policy: torch.Tensor
    candidate_mask: torch.Tensor
    policy_mask: torch.Tensor
    value_mask: torch.Tensor
    reward_mask: torch.Tensor
    observation_mask: torch.Tensor
    weights: torch.Tensor
    indices: torch.Tensor
    root_prompts: list[str]

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
