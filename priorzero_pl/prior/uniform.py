"""The ``uniform`` prior: the last resort that can never fail."""

from __future__ import annotations

import math
from typing import Sequence

import torch


class UniformPrior:
    """Equal log-probability ``-log A`` for each of ``A`` candidates.

    Ends every fallback chain: with it the search degrades to plain MuZero-style search over the
    world model's own policy instead of stopping the run.
    """

    name = "uniform"

    def score(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """``[A_i]`` float32 CPU tensors filled with ``-log A_i``."""
        return [torch.full((len(cands),), -math.log(len(cands))) if cands else torch.empty(0) for cands in candidates]

    def close(self) -> None:
        """Nothing to release."""
