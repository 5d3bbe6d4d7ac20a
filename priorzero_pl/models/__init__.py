"""The learned world model the search plans in: text encoders, latent dynamics, prediction heads."""

from priorzero_pl.models.config import WorldModelConfig
from priorzero_pl.models.hashed_tokenizer import HashedTokenizer
from priorzero_pl.models.support import inverse_value_transform, scalar_to_support, support_to_scalar, value_transform
from priorzero_pl.models.world_model import CandidateContext, WorldModel

__all__ = [
    "CandidateContext",
    "HashedTokenizer",
    "WorldModel",
    "WorldModelConfig",
    "inverse_value_transform",
    "scalar_to_support",
    "support_to_scalar",
    "value_transform",
]
