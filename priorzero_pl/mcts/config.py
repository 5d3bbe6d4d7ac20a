"""How one search is run: the MuZero constants, root exploration, and how the LLM prior enters."""

from __future__ import annotations

from dataclasses import dataclass

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
        _require_int(self.num_simulations, "num_simulations", minimum=1)
        _require_int(self.prior_depth, "prior_depth", minimum=0)
        if not self.pb_c_base > 0:
            raise PriorZeroInputError(f"mcts.pb_c_base must be > 0, got {self.pb_c_base}")
        if not self.pb_c_init >= 0:
            raise PriorZeroInputError(f"mcts.pb_c_init must be >= 0, got {self.pb_c_init}")
        if not 0 <= self.discount <= 1:
            raise PriorZeroInputError(f"mcts.discount must be in [0, 1], got {self.discount}")
        if not self.dirichlet_alpha > 0:
            raise PriorZeroInputError(f"mcts.dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        if not 0 <= self.root_exploration_fraction <= 1:
            raise PriorZeroInputError(
                f"mcts.root_exploration_fraction must be in [0, 1], got {self.root_exploration_fraction}"
            )
        if self.prior_mode not in PRIOR_MODES:
            raise PriorZeroInputError(f"mcts.prior_mode must be one of {PRIOR_MODES}, got {self.prior_mode!r}")
        if not 0 <= self.prior_weight <= 1:
            raise PriorZeroInputError(f"mcts.prior_weight must be in [0, 1], got {self.prior_weight}")
        if not self.prior_temperature > 0:
            raise PriorZeroInputError(f"mcts.prior_temperature must be > 0, got {self.prior_temperature}")


def _require_int(value: object, name: str, *, minimum: int) -> None:
    """bool is an int to Python, but ``num_simulations: true`` in a YAML file is a typo."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PriorZeroInputError(f"mcts.{name} must be an integer >= {minimum}, got {value!r}")
