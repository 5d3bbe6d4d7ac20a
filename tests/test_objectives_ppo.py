"""PPO pieces on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.ppo import PPOBatch, PPOObjective, gae, kl_penalty, ppo_clip_loss

REWARDS = torch.tensor([1.0, 0.0, 2.0])
VALUES = torch.tensor([0.5, 1.0, 0.5])


def test_gae_terminal_ignores_next_value() -> None:
    # gamma 0.9, lambda 0.8 -> gamma * lambda = 0.72
    # t=2: delta = 2 - 0.5 = 1.5                      A = 1.5
    # t=1: delta = 0 + 0.9 * 0.5 - 1.0 = -0.55        A = -0.55 + 0.72 * 1.5 = 0.53
    # t=0: delta = 1 + 0.9 * 1.0 - 0.5 = 1.4          A = 1.4 + 0.72 * 0.53 = 1.7816
    adv, ret = gae(REWARDS, VALUES, next_value=123.0, terminal=True, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, torch.tensor([1.7816, 0.53, 1.5]))
    torch.testing.assert_close(ret, adv + VALUES)


def test_gae_bootstraps_a_truncated_segment() -> None:
    # t=2: delta = 2 + 0.9 * 1.0 - 0.5 = 2.4           A = 2.4
    # t=1: A = -0.55 + 0.72 * 2.4 = 1.178
    # t=0: A = 1.4 + 0.72 * 1.178 = 2.24816
    adv, _ = gae(REWARDS, VALUES, next_value=1.0, terminal=False, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, torch.tensor([2.24816, 1.178, 2.4]))


def test_gae_limits() -> None:
    """lambda = 1: returns are the discounted Monte-Carlo returns; lambda = 0: one-step TD errors."""
    _, ret = gae(REWARDS, VALUES, next_value=0.0, terminal=True, gamma=0.9, lam=1.0)
    torch.testing.assert_close(ret, torch.tensor([1 + 0.81 * 2, 0.9 * 2, 2.0]))
    adv, _ = gae(REWARDS, VALUES, next_value=0.0, terminal=True, gamma=0.9, lam=0.0)
    torch.testing.assert_close(adv, torch.tensor([1.4, -0.55, 1.5]))


def test_ppo_clip_loss_ratio_clipping_and_diagnostics() -> None:
    old = torch.log(torch.tensor([0.5, 0.5, 0.5]))
    ratios = torch.tensor([1.5, 0.9, 0.5])
    new = (old + ratios.log()).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, -2.0])
    loss, clipfrac, approx_kl = ppo_clip_loss(new, old, adv, clip=0.2)
    # per row max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2; max(0.9, 0.9) = 0.9; max(1.0, 1.6) = 1.6
    assert loss.item() == pytest.approx((-1.2 + 0.9 + 1.6) / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 3)
    expected_kl = sum((r - 1) - math.log(r) for r in (1.5, 0.9, 0.5)) / 3
    assert approx_kl.item() == pytest.approx(expected_kl, abs=1e-6)
    loss.backward()
    # Clipped rows carry no gradient; the unclipped one gets d(-A r / 3)/d log r = -A r / 3.
    torch.testing.assert_close(new.grad, torch.tensor([0.0, 0.9 / 3, 0.0]))


def test_kl_penalty_k1_and_k3() -> None:
    logp = torch.log(torch.tensor([0.5, 0.3]))
    ref = torch.log(torch.tensor([0.25, 0.3]))
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), torch.tensor([math.log(2), 0.0]))
    # k3 = exp(ref - logp) - (ref - logp) - 1 = 0.5 + log 2 - 1
    torch.testing.assert_close(kl_penalty(logp, ref, "k3"), torch.tensor([0.5 + math.log(2) - 1, 0.0]))
    assert (kl_penalty(ref, logp, "k3") >= 0).all()
    with pytest.raises(PriorZeroInputError):
        kl_penalty(logp, ref, "k2")  # type: ignore[arg-type]


class TablePolicy(torch.nn.Module):
    """A policy whose logits per row are parameters: row ``i`` of a batch uses ``logits[i]``."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.logits = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(row)) for row in logits])

    def forward(self, prompts: list[str], candidates: list[list[str]]) -> list[torch.Tensor]:
        return [torch.log_softmax(self.logits[i][: len(c)], dim=-1) for i, c in enumerate(candidates)]


def test_ppo_objective_combines_terms() -> None:
    policy = TablePolicy([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    with torch.no_grad():
        logps = policy(["p0", "p1"], [["a", "b", "c"], ["d", "e"]])
    batch = PPOBatch(
        prompts=["p0", "p1"],
        candidates=[["a", "b", "c"], ["d", "e"]],
        action_index=torch.tensor([1, 0]),
        old_logprob=torch.tensor([logps[0][1].item() - 0.1, logps[1][0].item()]),
        advantages=torch.tensor([1.0, -0.5]),
        returns=torch.tensor([2.0, 0.0]),
        ref_logprob=torch.tensor([logps[0][1].item() - 0.3, logps[1][0].item() + 0.2]),
    )
    objective = PPOObjective(clip=0.2, kl_coef=0.1, kl_kind="k3", entropy_coef=0.01)
    total, metrics = objective.loss(policy, batch)
    assert set(metrics) == {"ppo_loss", "approx_kl", "clipfrac", "ref_kl", "entropy", "return_mean"}
    logp_new = torch.stack([logps[0][1], logps[1][0]])
    ppo, _, _ = ppo_clip_loss(logp_new, batch.old_logprob, batch.advantages, 0.2)
    ref_kl = kl_penalty(logp_new, batch.ref_logprob, "k3").mean()
    entropy = torch.stack([-(lp.exp() * lp).sum() for lp in logps]).mean()
    assert total.item() == pytest.approx((ppo + 0.1 * ref_kl - 0.01 * entropy).item(), abs=1e-6)
    assert metrics["entropy"].item() == pytest.approx(entropy.item(), abs=1e-6)
    assert metrics["return_mean"].item() == pytest.approx(1.0)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


@pytest.mark.parametrize("kwargs", [{"clip": 0.0}, {"kl_coef": -1.0}, {"entropy_coef": -0.1}, {"kl_kind": "k2"}])
def test_ppo_objective_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(PriorZeroInputError):
        PPOObjective(**kwargs)
