"""Behaviour of the batched search on hand-written toy world models, and its agreement with the
plain per-node MuZero reference (tests/references/mcts.py)."""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
import pytest
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig, ModelOutput, run_search
from tests.references import mcts as reference


_PRIME = 2_147_483_647


class HashWorld:
    """A deterministic random world: the latent is an integer state id (``[B, 1]`` int64), and
    reward, value and logits are integer hashes of it, so a row's output never depends on what
    else is in the batch (exact agreement between batched, one-root and per-node searches).
    It also fails loudly if the search ever asks about a padded candidate."""

    def __init__(self, salt: int, reward_scale: float = 1.0, value_scale: float = 1.0, logit_scale: float = 2.0):
        self.salt = salt
        self.reward_scale = reward_scale
        self.value_scale = value_scale
        self.logit_scale = logit_scale

    def initial_inference(self, observations: Sequence[str], candidates: Sequence[Sequence[str]]):
        states = torch.tensor([[zlib.crc32(f"{self.salt}:{o}".encode()) % _PRIME] for o in observations])
        counts = torch.tensor([len(c) for c in candidates])
        width = int(counts.max())
        return self._output(states, width, zero_reward=True), (counts, width)

    def recurrent_inference(self, latent: torch.Tensor, actions: torch.Tensor, context) -> ModelOutput:
        counts, width = context
        assert (actions < counts).all() and (actions >= 0).all(), "search chose a padded candidate"
        states = (latent * 1_000_003 + actions[:, None] + 1 + self.salt) % _PRIME
        return self._output(states, width, zero_reward=False)

    def _output(self, states: torch.Tensor, width: int, zero_reward: bool) -> ModelOutput:
        s = states[:, 0]
        value = ((s * 2_654_435_761) % 10_007).double() / 10_007 - 0.5
        reward = ((s * 40_503 + 17) % 10_009).double() / 10_009
        logits = ((s[:, None] * 69_069 + torch.arange(width) * 1_103_515_245) % 1_009).double() / 1_009 - 0.5
        return ModelOutput(
            latent=states,
            value=value * self.value_scale,
            reward=torch.zeros_like(reward) if zero_reward else reward * self.reward_scale,
            policy_logits=logits * self.logit_scale,
        )


class BranchWorld:
    """Candidate ``good`` at the root pays 1, everything else 0; values 0, uniform policy.
    Latent ``[B, 2]``: (first action taken + 1, depth)."""

    def __init__(self, good: int):
        self.good = good

    def initial_inference(self, observations, candidates):
        width = max(len(c) for c in candidates)
        batch = len(observations)
        return self._output(torch.zeros(batch, 2, dtype=torch.long), torch.zeros(batch), width), width

    def recurrent_inference(self, latent, actions, width):
        at_root = latent[:, 1] == 0
        branch = torch.where(at_root, actions + 1, latent[:, 0])
        reward = (at_root & (actions == self.good)).double()
        return self._output(torch.stack([branch, latent[:, 1] + 1], dim=1), reward, width)

    def _output(self, latent, reward, width):
        batch = latent.shape[0]
        return ModelOutput(latent, value=torch.zeros(batch), reward=reward, policy_logits=torch.zeros(batch, width))


def _texts(counts: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    observations = [f"room {i}" for i in range(len(counts))]
    candidates = [[f"action {i}.{a}" for a in range(n)] for i, n in enumerate(counts)]
    return observations, candidates


def test_visits_concentrate_on_the_rewarding_branch():
    observations, candidates = _texts([5, 5])
    out = run_search(BranchWorld(good=3), observations, candidates, None, MCTSConfig(num_simulations=40),
                     np.random.default_rng(0), add_noise=False, greedy=True)
    assert (out.action == 3).all()
    assert (out.visit_counts[:, 3] > 0.5 * 40).all()
    np.testing.assert_allclose(out.q_values[:, 3], 1.0)


def test_flat_world_with_uniform_prior_spreads_visits_evenly():
    observations, candidates = _texts([4, 7])
    out = run_search(BranchWorld(good=-1), observations, candidates, None, MCTSConfig(num_simulations=28),
                     np.random.default_rng(0), add_noise=False)
    np.testing.assert_array_equal(out.visit_counts[0, :4], 7)
    np.testing.assert_array_equal(out.visit_counts[1], 4)


def test_padded_candidates_are_never_visited_or_sampled():
    observations, candidates = _texts([2, 6, 1])
    out = run_search(HashWorld(salt=3), observations, candidates, None, MCTSConfig(num_simulations=30),
                     np.random.default_rng(1), add_noise=True)
    assert (out.visit_counts[~out.mask] == 0).all()
    assert (out.visit_policy[~out.mask] == 0).all() and (out.root_prior[~out.mask] == 0).all()
    assert (out.action < out.mask.sum(axis=1)).all()
    assert out.visit_counts.sum(axis=1).tolist() == [30, 30, 30]
    assert out.visit_counts[2, 0] == 30


def test_replace_with_one_hot_prior_takes_that_candidate_in_one_simulation():
    observations, candidates = _texts([4])
    llm = [np.array([-np.inf, -np.inf, 0.0, -np.inf])]
    config = MCTSConfig(num_simulations=1, prior_mode="replace")
    out = run_search(HashWorld(salt=0, logit_scale=20.0), observations, candidates, llm, config,
                     np.random.default_rng(0), add_noise=False, greedy=True)
    assert out.world_model_policy[0].argmax() != 2  # the world model alone would go elsewhere
    assert out.visit_counts.tolist() == [[0, 0, 1, 0]]
    assert out.action.tolist() == [2]
    np.testing.assert_array_equal(out.root_prior, [[0.0, 0.0, 1.0, 0.0]])


@pytest.mark.parametrize("temperature", [0.0, 0.25, 1.0])
def test_visit_policy_is_the_raw_visit_fractions_whatever_the_action_temperature(temperature: float):
    """The temperature shapes only the distribution the action is drawn from, never the target."""
    observations, candidates = _texts([3, 5])
    out = run_search(HashWorld(salt=5), observations, candidates, None, MCTSConfig(num_simulations=20),
                     np.random.default_rng(0), action_temperature=temperature)
    np.testing.assert_allclose(out.visit_policy, out.visit_counts / 20)
    if temperature == 0:
        top = out.visit_counts == out.visit_counts.max(axis=1, keepdims=True)
        np.testing.assert_allclose(out.action_policy, top / top.sum(axis=1, keepdims=True))
    else:
        sharpened = out.visit_counts.astype(float) ** (1 / temperature)
        np.testing.assert_allclose(out.action_policy, sharpened / sharpened.sum(axis=1, keepdims=True))
    assert (out.action_policy[np.arange(2), out.action] > 0).all()
    expected = 0.5 * np.abs(out.visit_policy - out.world_model_policy).sum(axis=1)
    np.testing.assert_allclose(out.prior_tv, expected)


def test_greedy_takes_the_most_visited_with_probability_one():
    observations, candidates = _texts([3, 5])
    out = run_search(HashWorld(salt=5), observations, candidates, None, MCTSConfig(num_simulations=20),
                     np.random.default_rng(0), add_noise=False, greedy=True)
    assert (out.visit_counts[np.arange(2), out.action] == out.visit_counts.max(axis=1)).all()
    np.testing.assert_array_equal(out.action_policy, np.eye(5)[out.action])


def test_ties_are_broken_at_random_and_reproducibly():
    """A flat world under a uniform prior: every pUCT score ties. The one simulation's child and
    the greedy pick among equally visited children are spread over the candidates, not always
    candidate 0, and the same seed gives the same choice."""
    observations, candidates = _texts([5])
    config = MCTSConfig(num_simulations=1)

    def first_visited(seed: int) -> int:
        out = run_search(BranchWorld(good=-1), observations, candidates, None, config,
                         np.random.default_rng(seed), add_noise=False, greedy=True)
        assert out.visit_counts.sum() == 1 and out.action[0] == out.visit_counts[0].argmax()
        return int(out.action[0])

    chosen = [first_visited(seed) for seed in range(40)]
    assert set(chosen) == set(range(5))
    assert chosen == [first_visited(seed) for seed in range(40)]

    two = MCTSConfig(num_simulations=2)
    picks = set()
    for seed in range(40):
        out = run_search(BranchWorld(good=-1), observations, candidates, None, two,
                         np.random.default_rng(seed), add_noise=False, greedy=True)
        visited = np.flatnonzero(out.visit_counts[0])
        assert len(visited) == 2 and out.action[0] in visited
        picks.add(int(out.action[0] == visited.max()))
    assert picks == {0, 1}, "the greedy pick among tied children is not always the lower index"


@pytest.mark.parametrize("mode", ["replace", "mixture", "product", "none"])
def test_root_prior_follows_the_injection_mode(mode: str):
    counts = [3, 5]
    observations, candidates = _texts(counts)
    llm = _llm_log_prior(counts, seed=4)
    config = MCTSConfig(num_simulations=3, prior_mode=mode, prior_weight=0.9, prior_temperature=2.0)
    out = run_search(HashWorld(salt=2), observations, candidates, llm, config, np.random.default_rng(0),
                     add_noise=False, prior_weight=0.3)
    for i, n in enumerate(counts):
        llm_p, wm_p = np.exp(llm[i]), out.world_model_policy[i, :n]
        expected = {
            "replace": llm_p,
            "mixture": 0.3 * llm_p + 0.7 * wm_p,  # the call's weight overrides the config's
            "product": np.sqrt(llm_p * wm_p) / np.sqrt(llm_p * wm_p).sum(),
            "none": wm_p,
        }[mode]
        np.testing.assert_allclose(out.root_prior[i, :n], expected)
        assert out.root_prior[i, n:].sum() == 0


def test_root_noise_mixes_dirichlet_into_the_prior():
    observations, candidates = _texts([4, 2])
    config = MCTSConfig(num_simulations=2, root_exploration_fraction=0.25)
    out = run_search(HashWorld(salt=1), observations, candidates, None, config, np.random.default_rng(5))
    draws = np.random.default_rng(5)
    for i, n in enumerate([4, 2]):
        noise = draws.dirichlet(np.full(n, 0.3))
        draws.random()
        draws.integers(2**64 - 1, dtype=np.uint64, endpoint=True)
        np.testing.assert_allclose(out.root_prior[i, :n], 0.75 * out.world_model_policy[i, :n] + 0.25 * noise)


def _llm_log_prior(counts: Sequence[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.log(rng.dirichlet(np.ones(n))) for n in counts]


@pytest.mark.parametrize("greedy", [False, True])
def test_batched_search_equals_one_root_searches_in_order(greedy: bool):
    counts = [3, 7, 1, 5, 4]
    observations, candidates = _texts(counts)
    llm = _llm_log_prior(counts, seed=9)
    config = MCTSConfig(num_simulations=25, prior_depth=1)
    model = HashWorld(salt=11)
    batched = run_search(model, observations, candidates, llm, config, np.random.default_rng(42), greedy=greedy)
    rng = np.random.default_rng(42)
    for i, n in enumerate(counts):
        single = run_search(model, observations[i : i + 1], candidates[i : i + 1], llm[i : i + 1], config, rng,
                            greedy=greedy)
        for field in ("visit_counts", "visit_policy", "action_policy", "q_values", "root_prior", "world_model_policy"):
            np.testing.assert_allclose(getattr(batched, field)[i, :n], getattr(single, field)[0], err_msg=field)
            assert (getattr(batched, field)[i, n:] == 0).all(), field
        for field in ("action", "max_depth", "root_value", "prior_tv"):
            np.testing.assert_allclose(getattr(batched, field)[i], getattr(single, field)[0], err_msg=field)


def _mixture_hook(llm_log: np.ndarray, weight: float, depth: int):
    """The reference's prior injection, in plain Python: w * LLM + (1 - w) * WM down to ``depth``."""
    exps = [math.exp(x) for x in llm_log.tolist()]
    llm = [e / sum(exps) for e in exps]

    def hook(node_depth: int, policy: list[float]) -> list[float]:
        if node_depth > depth:
            return policy
        return [weight * p_llm + (1 - weight) * p for p_llm, p in zip(llm, policy)]

    return hook


def _max_depth(node) -> int:
    visited = [child for child in node.children.values() if child.visit_count > 0]
    return max((1 + _max_depth(child) for child in visited), default=0)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("with_llm", [False, True])
def test_agrees_with_per_node_reference(seed: int, with_llm: bool):
    data = np.random.default_rng(100 + seed)
    counts = data.integers(1, 9, size=4).tolist()
    observations, candidates = _texts(counts)
    model = HashWorld(salt=seed, reward_scale=float(data.uniform(0, 2)), value_scale=float(data.uniform(0, 2)))
    config = MCTSConfig(num_simulations=int(data.integers(10, 80)), discount=float(data.uniform(0.8, 1.0)),
                        prior_weight=float(data.uniform()), prior_depth=int(data.integers(0, 3)))
    llm = _llm_log_prior(counts, seed) if with_llm else None
    out = run_search(model, observations, candidates, llm, config, np.random.default_rng(seed))

    # The documented draw order: per root, its Dirichlet noise, its action uniform, its tie seed.
    draws = np.random.default_rng(seed)
    for i, n in enumerate(counts):
        noise = draws.dirichlet(np.full(n, config.dirichlet_alpha)).tolist()
        draws.random()
        tie_seed = int(draws.integers(2**64 - 1, dtype=np.uint64, endpoint=True))
        hook = _mixture_hook(llm[i], config.prior_weight, config.prior_depth) if with_llm else None
        root = reference.reference_search(model, observations[i], candidates[i], config, noise, hook, tie_seed)
        visits = [root.children[a].visit_count for a in range(n)]
        assert out.visit_counts[i, :n].tolist() == visits, (i, counts, config)
        assert out.max_depth[i] == _max_depth(root)
        assert out.root_value[i] == pytest.approx(root.value(), abs=1e-12)
        q = [c.reward + config.discount * c.value() if c.visit_count else 0.0 for c in root.children.values()]
        np.testing.assert_allclose(out.q_values[i, :n], q, atol=1e-12)


def test_bad_inputs_are_rejected_with_clear_errors():
    observations, candidates = _texts([2, 3])
    config = MCTSConfig(num_simulations=2)
    model = HashWorld(salt=0)
    rng = np.random.default_rng(0)
    with pytest.raises(PriorZeroInputError, match="no candidate"):
        run_search(model, observations, [["a"], []], None, config, rng)
    with pytest.raises(PriorZeroInputError, match="candidate lists"):
        run_search(model, observations, candidates[:1], None, config, rng)
    with pytest.raises(PriorZeroInputError, match="root 1 has 3 candidates"):
        run_search(model, observations, candidates, [np.zeros(2), np.zeros(2)], config, rng)
    with pytest.raises(PriorZeroInputError, match="prior_weight"):
        run_search(model, observations, candidates, None, config, rng, prior_weight=1.5)
    with pytest.raises(PriorZeroInputError, match="policy_logits of shapes"):
        run_search(_TooWide(salt=0), observations, candidates, None, config, rng)


class _TooWide(HashWorld):
    """Scores one candidate too many (a model that padded to its own width)."""

    def _output(self, states: torch.Tensor, width: int, zero_reward: bool) -> ModelOutput:
        return super()._output(states, width + 1, zero_reward)


def test_root_preparation_is_apart_from_the_tree_search() -> None:
    """prepare_root builds the policy the roots explore with; search_tree follows whatever Root it
    is given: a root policy with all mass on one candidate gets every visit when values are flat."""
    from priorzero_pl.mcts.root import candidate_mask, prepare_root
    from priorzero_pl.mcts.search import search_tree

    config = MCTSConfig(num_simulations=12, prior_mode="replace")
    observations, candidates = ["a", "b"], [["x", "y", "z"], ["u", "v"]]
    mask = candidate_mask(observations, candidates)
    prior = [np.log(np.array([0.2, 0.3, 0.5])), np.log(np.array([0.9, 0.1]))]
    with torch.no_grad():
        root = prepare_root(HashWorld(salt=1), observations, candidates, mask, prior, config, 1.0, noise=None)
        np.testing.assert_allclose(root.policy[0], [0.2, 0.3, 0.5])
        np.testing.assert_allclose(root.policy[1], [0.9, 0.1, 0.0])
        assert root.prior_log_policy is not None and np.isneginf(root.prior_log_policy[1, 2])

        root.policy = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        flat = HashWorld(salt=1, reward_scale=0.0, value_scale=0.0)
        root.value, root.reward = np.zeros(2), np.zeros(2)
        config = MCTSConfig(num_simulations=12, prior_mode="none")
        tree = search_tree(flat, root, config, 1.0, tie_seed=np.zeros(2, dtype=np.uint64))
    children = tree.children[tree.block(0)]
    visits = np.where(children >= 0, tree.visits[np.where(children >= 0, children, 0)], 0)
    assert visits.tolist() == [[0, 0, 12], [12, 0, 0]]
