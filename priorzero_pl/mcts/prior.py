"""Where the LLM prior enters the search: the policy a node explores with, made from the world
model's own policy and the LLM's log-probs over the same candidates.

All arrays are ``[B, A]`` with ``-inf`` log-probs (0 probabilities) on padded candidates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from priorzero_pl.errors import PriorZeroInputError


def masked_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[B, A]`` logits -> log-probs normalised over the valid candidates only, so padding
    never takes probability mass; ``-inf`` on padding. Every row needs one finite valid logit."""
    masked = np.where(mask, logits, -np.inf)
    shifted = masked - masked.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def llm_log_prior_array(
    llm_log_prior: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    mask: np.ndarray,
) -> np.ndarray:
    """The caller's LLM log-probs (one 1-D ``[A_i]`` per root, or padded ``[B, >=A]``) as ``[B, A]``
    float64 log-probs renormalised over the valid candidates, so that scores normalised over a
    different set (or not at all) still give a distribution over exactly these candidates."""
    num_roots, width = mask.shape
    num_candidates = mask.sum(axis=1)
    if isinstance(llm_log_prior, (np.ndarray, torch.Tensor)) and llm_log_prior.ndim == 2:
        padded = _as_float64(llm_log_prior)
        if padded.shape[0] != num_roots or padded.shape[1] < width:
            raise PriorZeroInputError(
                f"padded LLM log-prior has shape {tuple(padded.shape)}; expected [{num_roots}, >={width}]"
            )
        padded = padded[:, :width]
    else:
        if len(llm_log_prior) != num_roots:
            raise PriorZeroInputError(f"got LLM log-priors for {len(llm_log_prior)} roots; the search has {num_roots}")
        padded = np.full((num_roots, width), -np.inf)
        for i, row in enumerate(llm_log_prior):
            values = _as_float64(row)
            if values.shape != (num_candidates[i],):
                raise PriorZeroInputError(
                    f"LLM log-prior of root {i} has shape {tuple(values.shape)}; root {i} has {num_candidates[i]} candidates"
                )
            padded[i, : num_candidates[i]] = values
    valid = np.where(mask, padded, -np.inf)
    if np.isnan(valid).any() or np.isposinf(valid).any():
        raise PriorZeroInputError("LLM log-prior contains NaN or +inf on a valid candidate")
    dead = ~np.isfinite(valid).any(axis=1)
    if dead.any():
        raise PriorZeroInputError(
            f"LLM log-prior gives probability 0 to every candidate of roots {np.flatnonzero(dead).tolist()}"
        )
    return masked_log_softmax(padded, mask)


def inject_prior(
    world_model_log_policy: np.ndarray,
    llm_log_policy: np.ndarray,
    mode: str,
    weight: float,
    temperature: float,
) -> np.ndarray:
    """The policy a node explores with (``[B, A]`` probabilities, 0 on padding).

    ``replace`` trusts the LLM alone; ``mixture`` (``w * LLM + (1 - w) * WM``) keeps every
    candidate either side likes; ``product`` (``softmax((log LLM + log WM) / T)``) keeps only what
    both like, ``T > 1`` flattening it back; ``none`` ignores the LLM (ablations, evaluation).
    """
    if mode == "none":
        return np.exp(world_model_log_policy)
    if mode == "replace":
        return np.exp(llm_log_policy)
    if mode == "mixture":
        return weight * np.exp(llm_log_policy) + (1.0 - weight) * np.exp(world_model_log_policy)
    if mode == "product":
        joint = (llm_log_policy + world_model_log_policy) / temperature
        shifted = joint - joint.max(axis=-1, keepdims=True)
        unnormalised = np.exp(shifted)
        return unnormalised / unnormalised.sum(axis=-1, keepdims=True)
    raise PriorZeroInputError(f"unknown prior mode {mode!r}")


def _as_float64(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)
