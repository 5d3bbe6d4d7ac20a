"""What a caller asks the prior for."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.errors import PriorZeroInputError


@dataclass
class PriorRequest:
    """One game state to score.

    Attributes:
        prompt: the text built by ``PromptBuilder`` (history, observation, candidates).
        candidates: the state's valid actions; the answer is ``[len(candidates)]`` log-probs in
            this order.
        state_hash: the game's world-state hash, part of the cache key so that equal prompts from
            different states (truncated history) never share a stale entry; empty when unknown.
    """

    prompt: str
    candidates: list[str]
    state_hash: str = ""

    def __post_init__(self) -> None:
        if not self.candidates:
            raise PriorZeroInputError(
                "PriorRequest.candidates is empty: a state needs at least one action (the env's default actions)"
            )

    def cache_key(self) -> tuple[str, tuple[str, ...], str]:
        """``(state hash, candidates, prompt)``: everything the answer depends on."""
        return (self.state_hash, tuple(self.candidates), self.prompt)
