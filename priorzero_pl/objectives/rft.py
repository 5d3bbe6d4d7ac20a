"""Rejection-sampling fine-tuning (RFT): imitate the agent's own best episodes.

Rank recent episodes by return, keep the top ones, and fine-tune the LLM on their
``(prompt, chosen action)`` pairs. Two losses:

- ``tokens`` (default): the plain language-model loss on the action's tokens given the prompt,
  i.e. "fine-tune on the pairs, loss on the action tokens only". It raises the probability of
  the text itself, so it also shapes how the LLM scores actions it has never seen as candidates.
- ``candidates``: the negative log-likelihood of the chosen action among the step's candidates
  under the candidate-normalised policy. It only moves mass between the offered candidates, the
  same space the prior and PPO act in.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol, Sequence

import torch

from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.objective import CandidateBatch, CandidateLogProbs

RFTLoss = Literal["tokens", "candidates"]


class SequenceLogProbs(Protocol):
    """Raw, *not* candidate-normalised scores: prompts ``[N]`` and texts ``[N][A_i]`` to ``[A_i]``
    differentiable log-probs of each text's tokens after its prompt (mean per token), e.g.
    ``functools.partial(llm_policy.scores, length_normalise=True)`` (see ``priorzero_pl.llm.LLMPolicy``)."""

    def __call__(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...


def select_top_episodes(
    segments: Sequence[GameSegment],
    top_k: int | None = None,
    top_fraction: float | None = None,
    min_return: float | None = None,
) -> list[GameSegment]:
    """The best episodes by ``episode_return``, best first (ties keep their order).

    At most one of ``top_k`` / ``top_fraction`` may be given (neither: all episodes);
    ``top_fraction`` keeps ``ceil(fraction * len(segments))`` so a non-empty input keeps at least
    one. ``min_return`` then drops kept episodes whose return is below it, so a round of equally
    bad episodes teaches nothing.
    """
    if top_k is not None and top_fraction is not None:
        raise PriorZeroInputError("give top_k or top_fraction, not both")
    if top_k is not None and top_k < 1:
        raise PriorZeroInputError(f"top_k must be >= 1, got {top_k}")
    if top_fraction is not None and not 0 < top_fraction <= 1:
        raise PriorZeroInputError(f"top_fraction must be in (0, 1], got {top_fraction}")
    ranked = sorted(segments, key=lambda s: s.episode_return, reverse=True)
    if top_k is not None:
        ranked = ranked[:top_k]
    elif top_fraction is not None:
        ranked = ranked[: math.ceil(top_fraction * len(ranked))]
    if min_return is not None:
        ranked = [s for s in ranked if s.episode_return >= min_return]
    return ranked


def rft_batch(segments: Sequence[GameSegment]) -> CandidateBatch:
    """Every step of ``segments`` as one row: the prompt, its candidates and the action taken."""
    prompts: list[str] = []
    candidates: list[list[str]] = []
    actions: list[int] = []
    for segment in segments:
        prompts.extend(segment.prompts)
        candidates.extend(list(c) for c in segment.candidates)
        actions.extend(segment.actions)
    return CandidateBatch(prompts=prompts, candidates=candidates, action_index=torch.tensor(actions, dtype=torch.long))


class RFTObjective:
    """Negative log-likelihood of the chosen actions (metric ``rft_loss``).

    Args:
        loss: ``tokens`` (LM loss on the action's tokens; needs ``sequence_logprobs``) or
            ``candidates`` (NLL among the candidates under the ``policy`` passed to :meth:`loss`).
        sequence_logprobs: the raw scorer for ``tokens``; the policy interface normalises over
            candidates and cannot give it, so the caller binds the LLM and tokenizer here.
    """

    name = "rft"
    batch_type = CandidateBatch

    def __init__(self, loss: RFTLoss = "tokens", sequence_logprobs: SequenceLogProbs | None = None) -> None:
        if loss not in ("tokens", "candidates"):
            raise PriorZeroInputError(f"rft loss must be 'tokens' or 'candidates', got {loss!r}")
        if loss == "tokens" and sequence_logprobs is None:
            raise PriorZeroInputError("rft loss 'tokens' needs sequence_logprobs (the LLM's raw token scorer)")
        self.kind: RFTLoss = loss
        self.sequence_logprobs = sequence_logprobs

    def loss(self, policy: CandidateLogProbs, batch: CandidateBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.kind == "tokens":
            chosen = [[c[int(a)]] for c, a in zip(batch.candidates, batch.action_index)]
            logps = self.sequence_logprobs(batch.prompts, chosen)
            nll = -torch.stack([lp[0] for lp in logps]).mean()
        else:
            logps = policy(batch.prompts, batch.candidates)
            nll = -torch.stack([lp[int(a)] for lp, a in zip(logps, batch.action_index)]).mean()
        return nll, {"rft_loss": nll.detach()}
