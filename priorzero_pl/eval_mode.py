"""Eval mode for a while, then every submodule's own mode back."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) without autograd, for acting or scoring mid-training.

    Modes are restored submodule by submodule, not with ``train(True)``: a trainer may keep parts
    (a frozen base, a reference head) in eval mode on purpose while the rest trains.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
