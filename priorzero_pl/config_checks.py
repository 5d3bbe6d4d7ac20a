"""Range checks for config values, shared by every config class's ``__post_init__`` / ``__init__``.

Each check names the config key as the user types it (``model.mcts.num_simulations``), the
value and the allowed range, so a bad value is one line that says what to write instead. They
reject what a plain ``value < 0`` lets through: NaN (every comparison with it is false), infinity
(``.inf`` in YAML), and ``true`` / ``false`` where a number belongs (Python's bool is an int, so a
YAML slip would pass).
"""

from __future__ import annotations

import math
import operator
from typing import Callable

from priorzero_pl.errors import PriorZeroInputError

_BOUNDS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "above": (">", operator.gt),
    "at_least": (">=", operator.ge),
    "at_most": ("<=", operator.le),
    "below": ("<", operator.lt),
}


def require_int(key: str, value: object, *, minimum: int) -> None:
    """``value`` must be an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PriorZeroInputError(f"{key} must be an integer >= {minimum}, got {value!r}")


def require_number(key: str, value: object, **bounds: float) -> None:
    """``value`` must be a finite number (not NaN or infinite, not a bool) within ``bounds``.

    ``bounds`` are any of ``above`` / ``below`` (strict) and ``at_least`` / ``at_most`` (inclusive),
    e.g. ``require_number("model.mcts.discount", x, at_least=0, at_most=1)``.
    """
    unknown = set(bounds) - set(_BOUNDS)
    if unknown:
        raise TypeError(f"require_number got unknown bounds {sorted(unknown)}")
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if finite and all(_BOUNDS[name][1](value, bound) for name, bound in bounds.items()):
        return
    wanted = " and ".join(f"{_BOUNDS[name][0]} {bound:g}" for name, bound in bounds.items())
    wanted = f"a finite number {wanted}" if wanted else "a finite number"
    raise PriorZeroInputError(f"{key} must be {wanted}, got {value!r}")
