"""How well a prior ranks the walkthrough's action among the candidates, on steps it never trained on.

The prior is scored exactly as the agent's ``hf`` prior scores: :class:`~priorzero_pl.llm.LLMPolicy`
over the step's prompt and candidates. A uniform guess is the baseline: its top-1 is ``1/A`` and its mean
rank ``(A+1)/2`` on a step with ``A`` candidates. Ties (scores within :data:`TIE_TOLERANCE`) count
as the average of the tied places, so that a prior that scores every candidate alike gets the
uniform figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.corpus.records import CorpusStep
from priorzero_pl.llm.policy import LLMPolicy


@dataclass
class RankReport:
    """Ranking of the walkthrough action over ``steps`` scorable steps (all means over steps).

    Attributes:
        steps: steps ranked (those whose walkthrough action is a candidate).
        games: distinct games they come from.
        top1: share of steps where the action scores highest.
        mean_rank: mean 1-based place of the action (1 = best).
        nll: mean negative log-prior of the action, in nats.
        uniform_top1, uniform_mean_rank, uniform_nll: the same figures for a uniform guess.
        mean_candidates: mean number of candidates per step.
    """

    steps: int
    games: int
    top1: float
    mean_rank: float
    nll: float
    uniform_top1: float
    uniform_mean_rank: float
    uniform_nll: float
    mean_candidates: float

    def to_dict(self) -> dict[str, float]:
        """JSON form."""
        return asdict(self)


TIE_TOLERANCE = 1e-5
"""Scores this close (in nats) are tied: float32 sums of equal token log-probs differ in the last bits."""


def action_rank(log_prior: torch.Tensor, target: int) -> tuple[float, float]:
    """``(top-1 credit, 1-based rank)`` of ``target`` under ``[A]`` scores, ties split evenly."""
    gap = log_prior - log_prior[target]
    above = int((gap > TIE_TOLERANCE).sum())
    tied = int((gap.abs() <= TIE_TOLERANCE).sum())  # includes the target itself
    top1 = 1.0 / tied if above == 0 else 0.0
    return top1, above + (tied + 1) / 2


@torch.no_grad()
def rank_walkthrough_actions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    steps: Sequence[CorpusStep],
    *,
    length_normalise: bool,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> RankReport:
    """Score every scorable step's candidates with ``model`` and rank the walkthrough's action.

    ``steps`` carry their prompts, so the prompts scored are those the corpus built (match the
    model's prompt settings to the corpus manifest's ``prompt``). The model is put in eval mode and
    left so.
    """
    scorable = [s for s in steps if s.scorable]
    if not scorable:
        raise ValueError("no scorable steps to rank (every walkthrough action was off the candidate list)")
    model.eval()
    policy = LLMPolicy(model, tokenizer, length_normalise=length_normalise, temperature=temperature)
    top1 = rank = nll = 0.0
    for start in range(0, len(scorable), batch_size):
        batch = scorable[start : start + batch_size]
        log_priors = policy.log_probs([s.prompt for s in batch], [s.candidates for s in batch])
        for log_prior, step in zip(log_priors, batch):
            hit, place = action_rank(log_prior, step.action_index)
            top1, rank, nll = top1 + hit, rank + place, nll - float(log_prior[step.action_index])
    n = len(scorable)
    sizes = torch.tensor([len(s.candidates) for s in scorable], dtype=torch.float64)
    return RankReport(
        steps=n,
        games=len({s.game for s in scorable}),
        top1=top1 / n,
        mean_rank=rank / n,
        nll=nll / n,
        uniform_top1=float((1.0 / sizes).mean()),
        uniform_mean_rank=float(((sizes + 1) / 2).mean()),
        uniform_nll=float(sizes.log().mean()),
        mean_candidates=float(sizes.mean()),
    )
