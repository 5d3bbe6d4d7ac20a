"""Where an external prior enters the search: the policy a node explores with, made from the world
model's own policy and the prior's log-probs over the same candidates (in this project the LLM's;
the search only sees a distribution per root).

All arrays are ``[B, A]`` with ``-inf`` log-probs (0 probabilities) on padded candidates.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts.config import PRIOR_MODES


def masked_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[B, A]`` logits -> log-probs normalised over the valid candidates only, so padding
    never takes probability mass; ``-inf`` on padding. Every row needs one finite valid logit."""
    log_policy = np.empty(logits.shape)
    _masked_log_softmax_rows(_as_float64(logits), np.ascontiguousarray(mask, dtype=np.bool_), log_policy)
    return log_policy


def normalised_prior(
    prior_log_probs: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    mask: np.ndarray,
) -> np.ndarray:
    """The caller's prior log-probs (one 1-D ``[A_i]`` per root, or padded ``[B, >=A]``) as ``[B, A]``
    float64 log-probs renormalised over the valid candidates, so that scores normalised over a
    different set (or not at all) still give a distribution over exactly these candidates."""
    num_roots, width = mask.shape
    num_candidates = mask.sum(axis=1)
    if isinstance(prior_log_probs, (np.ndarray, torch.Tensor)) and prior_log_probs.ndim == 2:
        padded = _as_float64(prior_log_probs)
        if padded.shape[0] != num_roots or padded.shape[1] < width:
            raise PriorZeroInputError(
                f"padded prior log-probs have shape {tuple(padded.shape)}; expected [{num_roots}, >={width}]"
            )
        padded = padded[:, :width]
    else:
        if len(prior_log_probs) != num_roots:
            raise PriorZeroInputError(f"got prior log-probs for {len(prior_log_probs)} roots; the search has {num_roots}")
        padded = np.full((num_roots, width), -np.inf)
        for i, row in enumerate(prior_log_probs):
            values = _as_float64(row)
            if values.shape != (num_candidates[i],):
                raise PriorZeroInputError(
                    f"prior log-probs of root {i} have shape {tuple(values.shape)}; "
                    f"root {i} has {num_candidates[i]} candidates"
                )
            padded[i, : num_candidates[i]] = values
    valid = np.where(mask, padded, -np.inf)
    if np.isnan(valid).any() or np.isposinf(valid).any():
        raise PriorZeroInputError("prior log-probs contain NaN or +inf on a valid candidate")
    dead = ~np.isfinite(valid).any(axis=1)
    if dead.any():
        raise PriorZeroInputError(
            f"prior gives probability 0 to every candidate of roots {np.flatnonzero(dead).tolist()}"
        )
    return masked_log_softmax(padded, mask)


def inject_prior(
    world_model_log_policy: np.ndarray,
    prior_log_policy: np.ndarray,
    mode: str,
    weight: float,
    temperature: float,
) -> np.ndarray:
    """The policy a node explores with (``[B, A]`` probabilities, 0 on padding).

    ``replace`` trusts the prior alone; ``mixture`` (``w * prior + (1 - w) * WM``) keeps every
    candidate either side likes; ``product`` (``softmax((log prior + log WM) / T)``) keeps only what
    both like, ``T > 1`` flattening it back; ``none`` ignores the prior (ablations, evaluation).
    """
    policy = np.empty(world_model_log_policy.shape)
    _inject_prior_rows(
        _as_float64(world_model_log_policy), _as_float64(prior_log_policy), _mode_code(mode), float(weight),
        float(temperature), policy,
    )
    return policy


def node_policies(
    logits: np.ndarray,
    mask: np.ndarray,
    prior_log_policy: np.ndarray | None,
    depth: np.ndarray,
    prior_depth: int,
    mode: str,
    weight: float,
    temperature: float,
    policy: np.ndarray,
) -> None:
    """The policies of one simulation's new nodes, written into ``policy`` ``[B, A]`` (a view
    of the tree's rows, so no temporary per node): the world model's softmax of ``logits``
    ``[B, A]`` float64, with the prior's ``prior_log_policy`` ``[B, A]`` (None: no prior) injected
    as ``inject_prior`` does where ``depth`` ``[B]`` is at most ``prior_depth``."""
    if prior_log_policy is None:
        # Mode none never reads the prior's row; the kernel only needs an array of the right type.
        prior_log_policy, mode = logits, "none"
    _node_policies(
        logits, mask, prior_log_policy, depth, int(prior_depth), _mode_code(mode), float(weight), float(temperature),
        policy,
    )


def _mode_code(mode: str) -> int:
    """The kernels' integer for a prior mode (its index in ``PRIOR_MODES``)."""
    if mode not in PRIOR_MODES:
        raise PriorZeroInputError(f"unknown prior mode {mode!r}")
    return PRIOR_MODES.index(mode)


@numba.njit(cache=True)
def _node_policies(
    logits: np.ndarray,
    mask: np.ndarray,
    prior_log: np.ndarray,
    depth: np.ndarray,
    prior_depth: int,
    mode: int,
    weight: float,
    temperature: float,
    policy: np.ndarray,
) -> None:
    world_model_log = np.empty(logits.shape[1])
    for row in range(logits.shape[0]):
        _log_softmax_row(logits[row], mask[row], world_model_log)
        row_mode = mode if depth[row] <= prior_depth else _NONE
        _inject_row(world_model_log, prior_log[row], row_mode, weight, temperature, policy[row])


@numba.njit(cache=True)
def _masked_log_softmax_rows(logits: np.ndarray, mask: np.ndarray, log_policy: np.ndarray) -> None:
    for row in range(logits.shape[0]):
        _log_softmax_row(logits[row], mask[row], log_policy[row])


@numba.njit(cache=True)
def _inject_prior_rows(
    world_model_log: np.ndarray, prior_log: np.ndarray, mode: int, weight: float, temperature: float, policy: np.ndarray
) -> None:
    for row in range(world_model_log.shape[0]):
        _inject_row(world_model_log[row], prior_log[row], mode, weight, temperature, policy[row])


# The row kernels below are the one implementation of the prior math, for the root
# (``masked_log_softmax``, ``inject_prior``) and every deeper node (``node_policies``) alike.
# Every kernel that calls them stays in this file: numba's cache notices edits only to the file
# of the function it compiled, so a caller elsewhere would keep running a stale copy.

_REPLACE, _MIXTURE, _PRODUCT, _NONE = (PRIOR_MODES.index(m) for m in ("replace", "mixture", "product", "none"))


@numba.njit(cache=True)
def _log_softmax_row(logits: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    """``[A]`` logits -> ``[A]`` log-probs over the ``mask``ed entries, ``-inf`` elsewhere."""
    top = -np.inf
    for a in range(logits.shape[0]):
        if mask[a] and logits[a] > top:
            top = logits[a]
    total = 0.0
    for a in range(logits.shape[0]):
        if mask[a]:
            total += np.exp(logits[a] - top)
    log_total = np.log(total)
    for a in range(logits.shape[0]):
        out[a] = logits[a] - top - log_total if mask[a] else -np.inf


@numba.njit(cache=True)
def _inject_row(
    world_model_log: np.ndarray, prior_log: np.ndarray, mode: int, weight: float, temperature: float, out: np.ndarray
) -> None:
    """One node's ``[A]`` policy from its two ``[A]`` log-policies (see ``inject_prior``)."""
    width = world_model_log.shape[0]
    if mode == _PRODUCT:
        top = -np.inf
        for a in range(width):
            out[a] = (prior_log[a] + world_model_log[a]) / temperature
            top = max(top, out[a])
        total = 0.0
        for a in range(width):
            out[a] = np.exp(out[a] - top)
            total += out[a]
        for a in range(width):
            out[a] /= total
        return
    for a in range(width):
        if mode == _REPLACE:
            out[a] = np.exp(prior_log[a])
        elif mode == _MIXTURE:
            out[a] = weight * np.exp(prior_log[a]) + (1.0 - weight) * np.exp(world_model_log[a])
        else:
            out[a] = np.exp(world_model_log[a])


def _as_float64(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """C-contiguous float64 numpy: one dtype and layout for the kernels, so that each compiles once."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.ascontiguousarray(values, dtype=np.float64)
