"""Prior injection math, the weight schedule, the visit policy and the config's validation, on
small arrays worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig, PriorWeightSchedule
from priorzero_pl.mcts.prior_injection import inject_prior, masked_log_softmax, normalised_prior
from priorzero_pl.mcts.randomness import draw_root_randomness
from priorzero_pl.mcts.visit_policy import action_distribution, most_visited, sample_action, total_variation, visit_fractions

MASK = np.array([[True, True, True], [True, True, False]])
with np.errstate(divide="ignore"):  # log(0) = -inf is how padding looks in log space
    WM = np.log(np.array([[0.5, 0.25, 0.25], [0.8, 0.2, 0.0]]))
    LLM = np.log(np.array([[0.1, 0.1, 0.8], [0.5, 0.5, 0.0]]))


def test_masked_log_softmax_normalises_over_valid_candidates_only():
    logits = np.array([[0.0, np.log(3.0), 100.0]])
    probs = np.exp(masked_log_softmax(logits, np.array([[True, True, False]])))
    np.testing.assert_allclose(probs, [[0.25, 0.75, 0.0]])


def test_mixture_is_the_weighted_average():
    out = inject_prior(WM, LLM, "mixture", 0.25, 1.0)
    np.testing.assert_allclose(out, [[0.4, 0.2125, 0.3875], [0.725, 0.275, 0.0]])


def test_product_is_the_tempered_normalised_product():
    out = inject_prior(WM, LLM, "product", 0.5, 1.0)
    # [0.05, 0.025, 0.2] / 0.275 and [0.4, 0.1] / 0.5
    np.testing.assert_allclose(out, [[0.05 / 0.275, 0.025 / 0.275, 0.2 / 0.275], [0.8, 0.2, 0.0]])
    flat = inject_prior(WM, LLM, "product", 0.5, 2.0)
    expected = np.sqrt([0.05, 0.025, 0.2])
    np.testing.assert_allclose(flat[0], expected / expected.sum())


def test_replace_and_none_pick_one_side():
    np.testing.assert_allclose(inject_prior(WM, LLM, "replace", 0.5, 1.0), np.exp(LLM))
    np.testing.assert_allclose(inject_prior(WM, LLM, "none", 0.5, 1.0), np.exp(WM))


def test_normalised_prior_accepts_lists_tensors_and_padded_arrays_and_renormalises():
    expected = np.array([[0.25, 0.25, 0.5], [0.5, 0.5, 0.0]])
    as_list = [np.log([1.0, 1.0, 2.0]), torch.tensor([0.0, 0.0])]
    np.testing.assert_allclose(np.exp(normalised_prior(as_list, MASK)), expected)
    padded = torch.tensor([[0.0, 0.0, np.log(2.0), 7.0], [3.0, 3.0, 99.0, 99.0]])
    np.testing.assert_allclose(np.exp(normalised_prior(padded, MASK)), expected)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([np.zeros(3)], "for 1 roots"),
        ([np.zeros(3), np.zeros(3)], "root 1 has 2 candidates"),
        (np.zeros((2, 2)), "expected \\[2, >=3\\]"),
        ([np.zeros(3), np.array([np.nan, 0.0])], "NaN"),
        ([np.zeros(3), np.full(2, -np.inf)], "every candidate of roots \\[1\\]"),
    ],
)
def test_normalised_prior_rejects_bad_shapes_and_values(bad, message):
    with pytest.raises(PriorZeroInputError, match=message):
        normalised_prior(bad, MASK)


def test_visit_fractions_and_action_temperatures():
    counts = np.array([[6, 3, 1, 0], [2, 2, 0, 0]])
    np.testing.assert_allclose(visit_fractions(counts), [[0.6, 0.3, 0.1, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(action_distribution(counts, 1.0), visit_fractions(counts))
    np.testing.assert_allclose(action_distribution(counts, 0.5)[0], np.array([36, 9, 1, 0]) / 46)
    np.testing.assert_array_equal(action_distribution(counts, 0.0), [[1, 0, 0, 0], [0.5, 0.5, 0, 0]])
    assert np.isfinite(action_distribution(np.array([[1000, 999, 0]]), 1e-3)).all()


def test_sample_action_follows_the_cdf_and_skips_empty_candidates():
    policy = np.array([[0.0, 0.5, 0.0, 0.5, 0.0]] * 4)
    uniforms = np.array([0.0, 0.49, 0.5, np.nextafter(1.0, 0.0)])
    assert sample_action(policy, uniforms).tolist() == [1, 1, 3, 3]


def test_most_visited_breaks_ties_by_seed_and_never_picks_padding():
    counts = np.array([[0, 2, 0, 2, 0]])
    mask = np.array([[True, True, True, True, False]])
    picks = {int(most_visited(counts, mask, np.array([seed], dtype=np.uint64))[0]) for seed in range(30)}
    assert picks == {1, 3}
    assert most_visited(np.array([[3, 2, 0]]), np.ones((1, 3), bool), np.array([7], dtype=np.uint64)).tolist() == [0]


def test_total_variation():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.25]])
    np.testing.assert_allclose(total_variation(p, q), [1.0, 0.25])


def test_root_noise_is_drawn_per_root_over_valid_candidates():
    draws = draw_root_randomness(np.random.default_rng(3), np.array([3, 1, 2]), 3, 0.3, sample_action=True)
    assert (draws.noise[1, 1:] == 0).all() and (draws.noise[2, 2:] == 0).all()
    np.testing.assert_allclose(draws.noise.sum(axis=1), 1.0)
    rng = np.random.default_rng(3)
    for i, n in enumerate([3, 1, 2]):
        np.testing.assert_array_equal(draws.noise[i, :n], rng.dirichlet(np.full(n, 0.3)))
        assert draws.action_uniform[i] == rng.random()
        assert draws.tie_seed[i] == rng.integers(2**64 - 1, dtype=np.uint64, endpoint=True)
    off = draw_root_randomness(np.random.default_rng(3), np.array([3]), 3, None, sample_action=False)
    assert off.noise is None and off.action_uniform is None and off.tie_seed.dtype == np.uint64


def test_schedule_linear_and_constant():
    ramp = PriorWeightSchedule(start=1.0, end=0.2, steps=4, kind="linear")
    assert [ramp(s) for s in (0, 2, 4, 100)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert PriorWeightSchedule(start=0.3).__call__(1000) == 0.3
    for bad in (dict(kind="cosine"), dict(start=1.5), dict(steps=0), dict(steps=True)):
        with pytest.raises(PriorZeroInputError):
            PriorWeightSchedule(**bad)
    with pytest.raises(PriorZeroInputError):
        ramp(-1)


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_simulations", 0),
        ("num_simulations", True),
        ("num_simulations", 2.0),
        ("pb_c_base", 0.0),
        ("pb_c_init", -1.0),
        ("discount", 1.1),
        ("dirichlet_alpha", 0.0),
        ("root_exploration_fraction", -0.1),
        ("prior_mode", "llm"),
        ("prior_weight", 2.0),
        ("prior_temperature", 0.0),
        ("prior_depth", -1),
        ("discount", float("nan")),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(PriorZeroInputError, match=field):
        MCTSConfig(**{field: value})


def test_config_defaults_are_muzero_s():
    config = MCTSConfig()
    assert (config.pb_c_init, config.pb_c_base, config.num_simulations) == (1.25, 19652, 50)
