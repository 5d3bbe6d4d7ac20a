"""Categorical value/reward targets, as in MuZero (Appendix F).

Returns in text games range from 0 to hundreds and a regression head on them is dominated by the
rare large values. MuZero squashes scalars with the invertible ``h(x) = sign(x)(sqrt(|x|+1)-1) +
eps*x`` and predicts a categorical distribution over the integers ``-S..S`` of the squashed value;
a target becomes the "two-hot" distribution on its two neighbouring integers. With ``S = 10`` the
support covers scalars up to ``|h^-1(10)| ~ 120``; larger ones are clipped to the edge bin.
"""

from __future__ import annotations

import torch

VALUE_TRANSFORM_EPS = 0.001
"""MuZero's ``eps``: the linear term keeps ``h`` invertible with a Lipschitz inverse."""


def value_transform(x: torch.Tensor, eps: float = VALUE_TRANSFORM_EPS) -> torch.Tensor:
    """``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x``, elementwise, any shape."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0) + eps * x


def inverse_value_transform(y: torch.Tensor, eps: float = VALUE_TRANSFORM_EPS) -> torch.Tensor:
    """Closed-form ``h^-1(y)`` (the positive root of the quadratic in ``sqrt(|x| + 1)``)."""
    root = (torch.sqrt(1.0 + 4.0 * eps * (y.abs() + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return torch.sign(y) * (root.square() - 1.0)


def scalar_to_support(x: torch.Tensor, support_size: int) -> torch.Tensor:
    """Two-hot target distribution of ``h(x)`` over the bins ``-S..S``.

    Args:
        x: ``[...]`` raw scalars (rewards or value targets).
        support_size: ``S``; the support has ``2S + 1`` bins.

    Returns:
        ``[..., 2S + 1]`` probabilities: ``h(x)`` clipped to ``[-S, S]`` and split between its
        floor and ceiling bins so that the distribution's mean is exactly ``h(x)``.
    """
    y = value_transform(x.float()).clamp(-support_size, support_size)
    low = y.floor()
    upper_weight = y - low
    low_index = (low + support_size).long()
    high_index = (low_index + 1).clamp(max=2 * support_size)
    probs = torch.zeros(*x.shape, 2 * support_size + 1, dtype=torch.float32, device=x.device)
    probs.scatter_add_(-1, low_index.unsqueeze(-1), (1.0 - upper_weight).unsqueeze(-1))
    probs.scatter_add_(-1, high_index.unsqueeze(-1), upper_weight.unsqueeze(-1))
    return probs


def support_to_scalar(logits: torch.Tensor, support_size: int) -> torch.Tensor:
    """Decode categorical logits ``[..., 2S + 1]`` to scalars ``[...]``: ``h^-1(E[bin])``."""
    if logits.shape[-1] != 2 * support_size + 1:
        raise ValueError(
            f"logits have {logits.shape[-1]} bins, support_size={support_size} needs {2 * support_size + 1}"
        )
    bins = torch.arange(-support_size, support_size + 1, dtype=torch.float32, device=logits.device)
    expected = (torch.softmax(logits.float(), dim=-1) * bins).sum(-1)
    return inverse_value_transform(expected)
