"""MCTS distillation loss: KL(visit || LLM), by hand."""

import math

import torch

from priorzero_pl.objectives.distillation import distillation_loss


def test_kl_matches_hand_computation() -> None:
    visits = [torch.tensor([0.75, 0.25, 0.0]), torch.tensor([1.0, 0.0])]
    llm = [torch.log(torch.tensor([0.5, 0.25, 0.25])), torch.log(torch.tensor([0.8, 0.2]))]
    first = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.25)
    second = 1.0 * math.log(1.0 / 0.8)
    assert math.isclose(distillation_loss(llm, visits).item(), (first + second) / 2, rel_tol=1e-6)


def test_zero_when_llm_equals_visits_and_gradient_points_to_visits() -> None:
    visits = [torch.tensor([0.6, 0.3, 0.1])]
    logits = torch.zeros(3, requires_grad=True)
    loss = distillation_loss([torch.log_softmax(logits, 0)], visits)
    loss.backward()
    # d KL / d logits = softmax(logits) - visits: descent raises the most-visited candidate
    assert torch.allclose(logits.grad, torch.full((3,), 1 / 3) - visits[0], atol=1e-6)
    assert distillation_loss([torch.log(visits[0])], visits).abs().item() < 1e-6
