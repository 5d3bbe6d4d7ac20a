"""How one search is run: the MuZero constants, root exploration, and how the LLM prior enters."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.config_checks import require_int, require_number
from priorzero_pl.errors import PriorZeroInputError

PRIOR_MODES = ("replace", "mixture", "product", "none")


@dataclass
class MCTSConfig:
    """Search settings; the defaults are the MuZero paper's where it has one."""

    num_simulations: int = 50
    """Model calls per search (one batched call per simulation, whatever the number of roots)."""
    pb_c_base: float = 19652
    """c2 of pUCT: how slowly the exploration weight grows with the parent's visits."""
    pb_c_init: float = 1.25
    """c1 of pUCT: the exploration weight of a little-visited parent."""
    discount: float = 0.997
    """Discount of rewards and values in the backup and in Q."""
    dirichlet_alpha: float = 0.3
    """Concentration of the root's Dirichlet noise (drawn over the valid candidates only)."""
    root_exploration_fraction: float = 0.25
    """Weight of the noise in the root prior when noise is on (training); 0 disables it."""
    prior_mode: str = "mixture"
    """How the LLM prior enters the root policy: ``replace`` (LLM alone), ``mixture``
    (``w * LLM + (1 - w) * world model``), ``product`` (normalised product, tempered), or ``none``
    (world model only, for ablations)."""
    prior_weight: float = 0.5
    """``w`` of ``mixture``; ``run_search(prior_weight=...)`` overrides it for schedules."""
    prior_temperature: float = 1.0
    """Temperature of ``product``: the root prior is ``softmax((log LLM + log WM) / T)``."""
    prior_depth: int = 0
    """Deepest node whose policy gets the LLM prior too (0 = the root only). Deeper nodes reuse
    the root's LLM log-probs: the candidates are the same texts and the LLM is only asked once."""

    def __post_init__(self) -> None:
        key = "model.mcts."
        require_int(key + "num_simulations", self.num_simulations, minimum=1)
        require_int(key + "prior_depth", self.prior_depth, minimum=0)
        require_number(key + "pb_c_base", self.pb_c_base, above=0)
        require_number(key + "pb_c_init", self.pb_c_init, at_least=0)
        require_number(key + "discount", self.discount, at_least=0, at_most=1)
        require_number(key + "dirichlet_alpha", self.dirichlet_alpha, above=0)
        require_number(key + "root_exploration_fraction", self.root_exploration_fraction, at_least=0, at_most=1)
        if self.prior_mode not in PRIOR_MODES:
            raise PriorZeroInputError(f"{key}prior_mode must be one of {list(PRIOR_MODES)}, got {self.prior_mode!r}")
        require_number(key + "prior_weight", self.prior_weight, at_least=0, at_most=1)
        require_number(key + "prior_temperature", self.prior_temperature, above=0)
