"""Prior pretraining: a causal LM trained on a walkthrough corpus to rank the walkthrough's action
first among the candidates, with the same differentiable scoring the agent's prior uses, and the
held-out measurements of a prior (ranking on unseen games, prior-only play against random)."""

from priorzero_pl.pretraining.config import PretrainConfig
from priorzero_pl.pretraining.heldout import RankReport, action_rank, rank_walkthrough_actions
from priorzero_pl.pretraining.prior_play import PlayReport, compare_prior_with_random, play_prior_only, play_random

__all__ = [
    "PlayReport",
    "PretrainConfig",
    "RankReport",
    "action_rank",
    "compare_prior_with_random",
    "play_prior_only",
    "play_random",
    "rank_walkthrough_actions",
]
