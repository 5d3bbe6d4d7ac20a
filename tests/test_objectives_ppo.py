"""PPO pieces on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.ppo import PPOBatch, PPOObjective, decoupled_clip_loss, exact_kl, gae, ppo_rows

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


def test_clip_loss_ratio_clipping_and_importance_weights() -> None:
    old = torch.log(torch.tensor([0.5, 0.5, 0.5]))
    behaviour = torch.log(torch.tensor([0.25, 0.5, 1.0]))  # weights pi_old / mu = 2, 1, 0.5
    ratios = torch.tensor([1.5, 0.9, 0.5])
    new = (old + ratios.log()).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, -2.0])
    loss, clipfrac, weights = decoupled_clip_loss(new, old, behaviour, adv, clip=0.2, weight_cap=None)
    torch.testing.assert_close(weights, torch.tensor([2.0, 1.0, 0.5]))
    # per row -w min(r A, clip(r) A): -2 * 1.2; -1 * -0.9; -0.5 * -1.6
    assert loss.item() == pytest.approx((-2.4 + 0.9 + 0.8) / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 3)
    loss.backward()
    # Clipped rows carry no gradient; the unclipped one gets d(-w A r / 3)/d log r = -w A r / 3.
    torch.testing.assert_close(new.grad, torch.tensor([0.0, 0.9 / 3, 0.0]))
    _, _, capped = decoupled_clip_loss(new, old, behaviour, adv, clip=0.2, weight_cap=1.5)
    torch.testing.assert_close(capped, torch.tensor([1.5, 1.0, 0.5]))


def test_exact_kl_and_its_gradient() -> None:
    """KL(pi || ref) over all candidates, exactly; its gradient is the softmax KL's,
    pi * (log pi - log ref - KL), and it depends on the reference (k1's did not)."""
    logits = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    logp = torch.log_softmax(logits, -1)
    ref = torch.log(torch.tensor([0.2, 0.3, 0.5]))
    (kl,) = exact_kl([logp], [ref])
    p = logp.exp().detach()
    assert kl.item() == pytest.approx(float((p * (p.log() - ref)).sum()), abs=1e-6)
    (grad,) = torch.autograd.grad(kl, logits)
    torch.testing.assert_close(grad, p * (p.log() - ref - kl.detach()))
    other = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    (other_grad,) = torch.autograd.grad(exact_kl([torch.log_softmax(logits, -1)], [other])[0], logits)
    assert not torch.allclose(grad, other_grad)
    zero_mass = torch.log(torch.tensor([0.5, 0.5, 0.0]))
    assert exact_kl([zero_mass], [torch.log(torch.tensor([0.25, 0.25, 0.5]))]).item() == pytest.approx(math.log(2))


# ----------------------------------------------------------------------------- the bandit
REWARDS_PER_ARM = torch.tensor([1.0, 0.0, 3.0, -1.0])
MU = torch.tensor([0.1, 0.4, 0.2, 0.3])  # the search's (tempered, noised) visit policy: not the LLM's


def _bandit_rows(old_logits: torch.Tensor, baseline: float) -> list[PPOBatch]:
    """One single-row batch per arm: what the estimator sees when the search draws that arm."""
    old = torch.log_softmax(old_logits, -1)
    return [
        PPOBatch(
            prompts=["p"],
            candidates=[["a", "b", "c", "d"]],
            action_index=torch.tensor([arm]),
            behaviour_logprob=MU[arm].log().reshape(1),
            advantages=(REWARDS_PER_ARM[arm] - baseline).reshape(1),
            returns=REWARDS_PER_ARM[arm].reshape(1),
            old_logprobs=[old],
            ref_logprobs=[old],
        )
        for arm in range(4)
    ]


def _expected_gradient(objective: PPOObjective, theta: torch.Tensor, rows: list[PPOBatch]) -> torch.Tensor:
    """E_{a ~ mu}[grad loss(a)], computed exactly: the sum over arms weighted by mu."""
    total = torch.zeros_like(theta)
    for arm, batch in enumerate(rows):
        logits = theta.clone().requires_grad_(True)
        loss, _ = objective.loss(lambda prompts, candidates: [torch.log_softmax(logits, -1)], batch)
        (grad,) = torch.autograd.grad(loss, logits)
        total += MU[arm] * grad
    return total


@pytest.mark.parametrize("offset", [0.0, 0.05])
def test_estimator_follows_the_policy_gradient_on_a_bandit(offset: float) -> None:
    """Actions drawn from mu (the search), not from the LLM: the expected gradient of the
    estimator is still minus the true policy gradient of pi, grad sum_a pi(a) r(a), at pi_old and
    anywhere inside the clip."""
    old_logits = torch.tensor([0.2, 0.5, -0.3, 0.1])
    theta = old_logits + offset * torch.tensor([1.0, -1.0, 0.5, 0.0])
    objective = PPOObjective(clip=0.2, kl_coef=0.0)
    estimated = _expected_gradient(objective, theta, _bandit_rows(old_logits, baseline=0.7))
    logits = theta.clone().requires_grad_(True)
    (true_gradient,) = torch.autograd.grad((torch.softmax(logits, -1) * REWARDS_PER_ARM).sum(), logits)
    torch.testing.assert_close(estimated, -true_gradient)


def test_capped_weights_follow_the_documented_biased_gradient() -> None:
    """With a cap c the expectation at pi_old is -sum_a min(c mu(a), pi(a)) A(a) grad log pi(a)."""
    old_logits = torch.tensor([0.2, 0.5, -0.3, 0.1])
    objective = PPOObjective(clip=0.2, kl_coef=0.0, importance_weight_cap=1.0)
    estimated = _expected_gradient(objective, old_logits, _bandit_rows(old_logits, baseline=0.7))
    logits = old_logits.clone().requires_grad_(True)
    pi = torch.softmax(old_logits, -1)
    share = torch.minimum(MU, pi)
    surrogate = (share * (REWARDS_PER_ARM - 0.7) * torch.log_softmax(logits, -1)).sum()
    (expected,) = torch.autograd.grad(surrogate, logits)
    torch.testing.assert_close(estimated, -expected)
    assert not torch.allclose(share, pi), "the cap must bind somewhere for this test to mean anything"


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
    old = [logps[0] + torch.tensor([0.0, -0.1, 0.1]), logps[1]]
    old = [torch.log_softmax(lp, -1) for lp in old]
    ref = [torch.log(torch.tensor([0.2, 0.3, 0.5])), torch.log(torch.tensor([0.5, 0.5]))]
    batch = PPOBatch(
        prompts=["p0", "p1"],
        candidates=[["a", "b", "c"], ["d", "e"]],
        action_index=torch.tensor([1, 0]),
        behaviour_logprob=torch.log(torch.tensor([0.6, 0.3])),
        advantages=torch.tensor([1.0, -0.5]),
        returns=torch.tensor([2.0, 0.0]),
        old_logprobs=old,
        ref_logprobs=ref,
    )
    objective = PPOObjective(clip=0.2, kl_coef=0.1, entropy_coef=0.01)
    total, metrics = objective.loss(policy, batch)
    assert set(metrics) == {"ppo_loss", "old_kl", "clipfrac", "ref_kl", "entropy", "importance_weight", "return_mean"}
    logp_new = torch.stack([logps[0][1], logps[1][0]])
    logp_old = torch.stack([old[0][1], old[1][0]])
    ppo, _, weights = decoupled_clip_loss(logp_new, logp_old, batch.behaviour_logprob, batch.advantages, 0.2, None)
    ref_kl = exact_kl(logps, ref).mean()
    entropy = torch.stack([-(lp.exp() * lp).sum() for lp in logps]).mean()
    assert total.item() == pytest.approx((ppo + 0.1 * ref_kl - 0.01 * entropy).item(), abs=1e-6)
    assert metrics["entropy"].item() == pytest.approx(entropy.item(), abs=1e-6)
    assert metrics["old_kl"].item() == pytest.approx(exact_kl(old, logps).mean().item(), abs=1e-6)
    assert metrics["importance_weight"].item() == pytest.approx(weights.mean().item(), abs=1e-6)
    assert metrics["return_mean"].item() == pytest.approx(1.0)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_ppo_rows_discount_with_the_given_gamma() -> None:
    from tests.test_buffer import make_segment

    segment = make_segment(3, terminal=True)  # rewards 1, 2, 3; root values 10, 20, 30
    rows = ppo_rows([segment], gamma=0.5, lam=1.0)
    # lambda 1: returns are discounted returns-to-go: 1 + .5*2 + .25*3, 2 + .5*3, 3
    torch.testing.assert_close(rows.returns, torch.tensor([2.75, 3.5, 3.0]))
    torch.testing.assert_close(rows.behaviour_logprob, torch.tensor([0.0, -1.0, -2.0]))


@pytest.mark.parametrize("kwargs", [{"clip": 0.0}, {"kl_coef": -1.0}, {"entropy_coef": -0.1}, {"importance_weight_cap": 0.0}])
def test_ppo_objective_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(PriorZeroInputError):
        PPOObjective(**kwargs)
