"""The UniZero-style world model over text: encoder, latent dynamics, prediction heads, loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from priorzero_pl.buffer.batch import WorldModelBatch
from priorzero_pl.mcts.types import ModelOutput
from priorzero_pl.models.config import WorldModelConfig
from priorzero_pl.models.dynamics import LatentDynamics
from priorzero_pl.models.hashed_tokenizer import HashedTokenizer
from priorzero_pl.models.prediction import PredictionHeads
from priorzero_pl.models.pretrained_encoder import PretrainedTextEncoder
from priorzero_pl.models.support import scalar_to_support, support_to_scalar
from priorzero_pl.models.text_encoder import HashedTextEncoder


@dataclass
class CandidateContext:
    """The root's candidate actions, embedded once per search and reused at every node.

    Attributes:
        embeddings: ``[B, A, E]`` candidate embeddings (zeros where padded).
        mask: ``[B, A]`` bool, True on real candidates.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor


class WorldModel(nn.Module):
    """Observation text -> latent; (latent, action text) -> next latent + reward; latent -> value
    and a policy over any candidate set. Implements :class:`~priorzero_pl.mcts.types.SearchModel`.

    Values and rewards are predicted as categorical distributions over the transformed support
    (see :mod:`priorzero_pl.models.support`) and decoded to scalars for the search.
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer: HashedTokenizer | None = None
        """The hashed encoders' tokenizer (its ``num_truncated`` counts cut texts); None with a
        pretrained encoder, which brings its own."""
        self.observation_encoder: nn.Module
        self.action_encoder: nn.Module
        if config.pretrained_encoder_path is not None:
            self.observation_encoder = PretrainedTextEncoder(
                config.pretrained_encoder_path, max_tokens=config.max_observation_tokens, out_dim=config.latent_dim
            )
            self.action_encoder = PretrainedTextEncoder(
                config.pretrained_encoder_path,
                max_tokens=config.max_action_tokens,
                out_dim=config.embed_dim,
                backbone=self.observation_encoder.backbone,
            )
        else:
            self.tokenizer = HashedTokenizer(config.vocab_size)
            embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
            shared = dict(num_layers=config.num_layers, num_heads=config.num_heads, dropout=config.dropout)
            self.observation_encoder = HashedTextEncoder(
                self.tokenizer, embedding, max_tokens=config.max_observation_tokens, out_dim=config.latent_dim, **shared
            )
            self.action_encoder = HashedTextEncoder(
                self.tokenizer, embedding, max_tokens=config.max_action_tokens, out_dim=config.embed_dim, **shared
            )
        self.dynamics = LatentDynamics(
            config.latent_dim,
            config.embed_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            dropout=config.dropout,
            support_size=config.support_size,
        )
        self.prediction = PredictionHeads(config.latent_dim, config.embed_dim, config.support_size)

    @property
    def device(self) -> torch.device:
        """Where the parameters live: inputs and outputs of every call are moved here."""
        return next(self.parameters()).device

    def embed_candidates(self, candidates: Sequence[Sequence[str]], width: int | None = None) -> CandidateContext:
        """Embed ``[B][A_i]`` candidate texts into ``[B, A, E]`` (``A = width`` or the largest set).

        Each distinct string is encoded once per call: the same few actions ("north", "take
        lamp") fill most rows.
        """
        width = max((len(row) for row in candidates), default=0) if width is None else width
        unique = list(dict.fromkeys(text for row in candidates for text in row))
        index_of = {text: i for i, text in enumerate(unique)}
        device = self.device
        padded = [[index_of[text] for text in row] + [-1] * (width - len(row)) for row in candidates]
        index = torch.tensor(padded, dtype=torch.long).reshape(len(candidates), width).to(device)
        mask = index >= 0
        index = index.clamp(min=0)
        if not unique:
            return CandidateContext(torch.zeros(len(candidates), width, self.config.embed_dim, device=device), mask)
        table = self.action_encoder(unique)
        embeddings = table[index] * mask.unsqueeze(-1).to(table.dtype)
        return CandidateContext(embeddings, mask)

    def _output(self, latent: torch.Tensor, reward: torch.Tensor, context: CandidateContext) -> ModelOutput:
        value_logits, policy_logits = self.prediction(latent, context.embeddings, context.mask)
        return ModelOutput(
            latent=latent,
            value=support_to_scalar(value_logits, self.config.support_size),
            reward=reward,
            policy_logits=policy_logits,
        )

    @torch.no_grad()
    def initial_inference(
        self, observations: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> tuple[ModelOutput, CandidateContext]:
        """Search roots: ``[B]`` observations with ``[B][A_i]`` candidates -> outputs over ``[B, A]``
        and the candidate context every later ``recurrent_inference`` of this search reuses.

        Runs without gradients (search only) in whatever train/eval mode the module is in.
        """
        if len(observations) != len(candidates):
            raise ValueError(f"{len(observations)} observations but {len(candidates)} candidate lists")
        context = self.embed_candidates(candidates)
        latent = self.observation_encoder(observations)
        return self._output(latent, torch.zeros(latent.shape[0], device=latent.device), context), context

    @torch.no_grad()
    def recurrent_inference(
        self, latent: torch.Tensor, actions: torch.Tensor, context: CandidateContext
    ) -> ModelOutput:
        """``latent`` ``[B, D]`` and root-candidate indices ``actions`` ``[B]`` -> the child's output;
        ``reward`` is the decoded reward of this transition, the policy is over the root's candidates."""
        actions = actions.to(context.embeddings.device).long()
        action_embedding = context.embeddings[torch.arange(actions.shape[0], device=actions.device), actions]
        next_latent, reward_logits = self.dynamics(latent, action_embedding)
        return self._output(next_latent, support_to_scalar(reward_logits, self.config.support_size), context)

    def loss(self, batch: WorldModelBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """MuZero's unrolled loss with EfficientZero's latent consistency, over ``K`` steps.

        From the encoder's latent of observation ``t``, the dynamics unroll the replayed actions;
        at every step ``k`` the value and policy heads are fit to the n-step value and the visit
        policy of ``t + k``, the reward head to ``r_{t+k}``, and the predicted latent of ``t + k + 1``
        is pulled (negative cosine) towards the encoder's latent of that observation, which gets no
        gradient. The batch's masks say which targets are known (past a terminal end, value and
        reward are trained to 0; past a truncation nothing is trained).

        As in MuZero's pseudocode, the gradient is halved at the dynamics' input after every
        unrolled step (``scale_gradient(hidden_state, 0.5)`` after each ``recurrent_inference``),
        so that step ``k``'s predictions reach the root latent with weight ``0.5^(k-1)`` (``k >= 1``)
        and long unrolls do not dominate the encoder; and the root's terms weigh 1, each unrolled
        step's ``1/K``. Each term is then a mean over the batch of the importance-weighted, masked
        sum over steps.

        Returns:
            The weighted total; the detached terms under ``value_loss``, ``reward_loss``,
            ``policy_loss``, ``consistency_loss``, ``total``; and ``[B]`` replay priorities
            ``|predicted root value - value target|`` (MuZero's), computed from this same pass.
        """
        device = self.device
        batch = batch.to(device)
        size, steps = batch.policy_mask.shape
        unroll = steps - 1
        width = batch.target_policy.shape[-1]
        support = self.config.support_size

        latent = self.observation_encoder([row[0] for row in batch.observations])
        with torch.no_grad():
            later = [row[k] for row in batch.observations for k in range(1, steps)]
            target_latents = self.observation_encoder(later).view(size, unroll, -1) if unroll else None
        context = self.embed_candidates([step for row in batch.candidates for step in row], width)
        candidates = context.embeddings.view(size, steps, width, -1)
        candidate_mask = context.mask.view(size, steps, width)
        rows = torch.arange(size, device=device)

        value_terms, policy_terms, reward_terms, consistency_terms = [], [], [], []
        for k in range(steps):
            value_logits, policy_logits = self.prediction(latent, candidates[:, k], candidate_mask[:, k])
            value_target = scalar_to_support(batch.target_value[:, k], support)
            value_terms.append(_soft_cross_entropy(value_logits, value_target))
            if k == 0:
                priorities = (support_to_scalar(value_logits.detach().float(), support) - batch.target_value[:, 0]).abs()
            log_policy = torch.log_softmax(policy_logits, dim=-1).masked_fill(~candidate_mask[:, k], 0.0)
            policy_terms.append(-(batch.target_policy[:, k] * log_policy).sum(-1))
            if k == unroll:
                break
            dynamics_input = latent if k == 0 else scale_gradient(latent, 0.5)
            latent, reward_logits = self.dynamics(dynamics_input, candidates[rows, k, batch.actions[:, k]])
            reward_target = scalar_to_support(batch.target_reward[:, k], support)
            reward_terms.append(_soft_cross_entropy(reward_logits, reward_target))
            consistency_terms.append(-F.cosine_similarity(latent, target_latents[:, k], dim=-1))

        root_and_unrolled = torch.full((steps,), 1.0 / max(unroll, 1), device=device)
        root_and_unrolled[0] = 1.0
        unrolled = root_and_unrolled[1:]
        consistency_mask = batch.policy_mask[:, :unroll] & batch.observation_mask[:, 1:]
        weights = batch.weights
        terms = {
            "value_loss": _weighted_sum(torch.stack(value_terms, 1), batch.value_mask, root_and_unrolled, weights),
            "policy_loss": _weighted_sum(torch.stack(policy_terms, 1), batch.policy_mask, root_and_unrolled, weights),
            "reward_loss": _weighted_sum(_stack(reward_terms, size, device), batch.reward_mask, unrolled, weights),
            "consistency_loss": _weighted_sum(_stack(consistency_terms, size, device), consistency_mask, unrolled, weights),
        }
        config = self.config
        total = (
            config.value_loss_weight * terms["value_loss"]
            + config.policy_loss_weight * terms["policy_loss"]
            + config.reward_loss_weight * terms["reward_loss"]
            + config.consistency_loss_weight * terms["consistency_loss"]
        )
        metrics = {name: value.detach() for name, value in terms.items()}
        metrics["total"] = total.detach()
        return total, metrics, priorities


def scale_gradient(tensor: torch.Tensor, scale: float) -> torch.Tensor:
    """MuZero's ``scale_gradient``: the same value, ``scale`` times the gradient."""
    return tensor * scale + tensor.detach() * (1.0 - scale)


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[B, C]`` logits against ``[B, C]`` target distributions -> ``[B]``."""
    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1)


def _stack(terms: list[torch.Tensor], size: int, device: torch.device) -> torch.Tensor:
    """``K`` tensors ``[B]`` -> ``[B, K]``; ``[B, 0]`` when nothing was unrolled."""
    return torch.stack(terms, 1) if terms else torch.zeros(size, 0, device=device)


def _weighted_sum(values: torch.Tensor, mask: torch.Tensor, step_weights: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``values`` ``[B, N]`` summed over the True entries of ``mask`` ``[B, N]`` with ``step_weights``
    ``[N]``, times the importance ``weights`` ``[B]``, averaged over the batch."""
    selected = values.float() * mask.to(torch.float32) * step_weights.unsqueeze(0) * weights.float().unsqueeze(1)
    return selected.sum() / values.shape[0]
