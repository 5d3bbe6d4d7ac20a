"""Replay: episode alignment, n-step targets, windows past the end, eviction, checkpoints, priorities."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from priorzero_pl.buffer import GameSegment, ReplayBuffer, ReplayConfig, n_step_value_targets
from priorzero_pl.errors import PriorZeroInputError


def make_segment(length: int, *, game: str = "g", terminal: bool = True, final: bool = True) -> GameSegment:
    """Step ``t``: observation ``"<game> obs t"``, ``2 + t % 3`` candidates ``"<game> a t.i"``, visit
    policy one-hot on action ``t % 2``, reward ``t + 1``, root value ``10 (t + 1)``."""
    segment = GameSegment(game=game, terminal=terminal)
    for t in range(length):
        count = 2 + t % 3
        policy = np.zeros(count)
        policy[t % 2] = 1.0
        segment.append(
            observation=f"{game} obs {t}",
            candidates=[f"{game} a {t}.{i}" for i in range(count)],
            prompt=f"{game} prompt {t}",
            action=t % 2,
            reward=float(t + 1),
            visit_policy=policy,
            prior_logprobs=np.log(np.full(count, 1.0 / count)),
            root_value=10.0 * (t + 1),
            behaviour_logprob=-float(t),
        )
    segment.final_observation = f"{game} obs {length}" if final else None
    return segment


def test_segment_validate_reports_misalignment() -> None:
    segment = make_segment(3)
    segment.validate()
    assert len(segment) == 3 and segment.episode_return == 6.0
    segment.rewards.append(1.0)
    with pytest.raises(PriorZeroInputError, match="rewards has 4 steps"):
        segment.validate()
    segment = make_segment(3)
    segment.visit_policies[1] = np.ones(7, dtype=np.float32)
    with pytest.raises(PriorZeroInputError, match="step 1: visit_policies"):
        segment.validate()
    segment = make_segment(3)
    segment.actions[2] = 9
    with pytest.raises(PriorZeroInputError, match="action 9"):
        segment.validate()


def test_n_step_targets_by_hand() -> None:
    rewards, values = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0]
    terminal = n_step_value_targets(rewards, values, terminal=True, td_steps=2, discount=0.5)
    # z0 = 1 + .5*2 + .25*v2; z1 = 2 + .5*3 (nothing after the end); z2 = 3.
    np.testing.assert_allclose(terminal, [9.5, 3.5, 3.0])
    truncated = n_step_value_targets(rewards, values, terminal=False, td_steps=2, discount=0.5)
    # Past the end the horizon shortens to bootstrap from v2: z1 = 2 + .5*v2; z2 = v2.
    np.testing.assert_allclose(truncated, [9.5, 17.0, 30.0])
    one_step = n_step_value_targets(rewards, values, terminal=True, td_steps=1, discount=1.0)
    np.testing.assert_allclose(one_step, [21.0, 32.0, 3.0])


def test_sampled_windows_are_aligned_with_their_episode() -> None:
    buffer = ReplayBuffer(1000, unroll_steps=3, td_steps=2, discount=0.5, seed=1)
    segments = {name: make_segment(length, game=name) for name, length in (("x", 6), ("y", 4))}
    for segment in segments.values():
        buffer.add(segment)
    targets = {
        name: n_step_value_targets(s.rewards, s.root_values, terminal=True, td_steps=2, discount=0.5)
        for name, s in segments.items()
    }
    batch = buffer.sample(64)
    assert batch.actions.shape == (64, 3) and batch.target_value.shape == (64, 4)
    assert batch.target_policy.shape == (64, 4, 4) and batch.candidate_mask.shape == (64, 4, 4)
    for b in range(64):
        name, _, start = batch.observations[b][0].split()
        segment, t = segments[name], int(start)
        assert batch.root_prompts[b] == f"{name} prompt {t}"
        for k in range(4):
            position = t + k
            if position >= len(segment):
                break
            assert batch.observations[b][k] == segment.observations[position]
            assert batch.candidates[b][k] == segment.candidates[position]
            count = len(segment.candidates[position])
            assert batch.candidate_mask[b, k].tolist() == [i < count for i in range(4)]
            np.testing.assert_array_equal(batch.target_policy[b, k, :count].numpy(), segment.visit_policies[position])
            assert batch.target_value[b, k].item() == pytest.approx(targets[name][position])
            if k < 3:
                assert batch.actions[b, k].item() == segment.actions[position]
                assert batch.target_reward[b, k].item() == segment.rewards[position]
    assert (batch.weights == 1).all()


def test_window_past_a_terminal_end_is_absorbing() -> None:
    """MuZero's absorbing state: past a game-ending action, value and reward targets are 0 and
    trained, the policy is not, and the actions are random candidates (every action absorbs)."""
    buffer = ReplayBuffer(100, unroll_steps=3, seed=0)
    buffer.add(make_segment(2, terminal=True, final=True))
    batch = buffer.sample(64)
    rows = [b for b, obs in enumerate(batch.observations) if obs[0] == "g obs 1"]
    row = rows[0]
    assert batch.observations[row] == ["g obs 1", "g obs 2", "g obs 2", "g obs 2"]
    assert batch.policy_mask[row].tolist() == [True, False, False, False]
    assert batch.value_mask[row].tolist() == [True, True, True, True]
    assert batch.reward_mask[row].tolist() == [True, True, True]
    assert batch.observation_mask[row].tolist() == [True, True, False, False]
    assert batch.candidates[row][1:] == [["g a 1.0", "g a 1.1", "g a 1.2"]] * 3
    assert batch.actions[row, 0].item() == 1
    assert batch.target_reward[row].tolist() == [2.0, 0.0, 0.0]
    assert batch.target_value[row].tolist() == [2.0, 0.0, 0.0, 0.0]
    assert batch.target_policy[row, 1:].sum().item() == 0.0
    absorbing_actions = {a for b in rows for a in batch.actions[b, 1:].tolist()}
    assert absorbing_actions == {0, 1, 2}, "past the end every candidate is an absorbing action"


def test_window_past_a_truncated_end_is_masked() -> None:
    buffer = ReplayBuffer(100, unroll_steps=3, seed=0)
    buffer.add(make_segment(2, terminal=False, final=True))
    batch = buffer.sample(32)
    row = int(np.argmax([obs[0] == "g obs 1" for obs in batch.observations]))
    for mask in (batch.policy_mask, batch.value_mask):
        assert mask[row].tolist() == [True, False, False, False]
    assert batch.reward_mask[row].tolist() == [True, False, False]
    assert batch.observation_mask[row].tolist() == [True, True, False, False]
    assert batch.actions[row].tolist() == [1, 0, 0]
    assert batch.target_reward[row].tolist() == [2.0, 0.0, 0.0]
    # Truncated: the last step bootstraps from its own root value (20), nothing past it is known.
    assert batch.target_value[row].tolist() == [20.0, 0.0, 0.0, 0.0]

    unfinished = ReplayBuffer(100, unroll_steps=2, seed=0)
    unfinished.add(make_segment(1, terminal=False, final=False))
    batch = unfinished.sample(1)
    assert batch.observations[0] == ["g obs 0"] * 3
    assert batch.observation_mask[0].tolist() == [True, False, False]
    assert batch.value_mask[0].tolist() == [True, False, False]
    assert batch.target_value[0].tolist() == [10.0, 0.0, 0.0]


def test_capacity_evicts_oldest_whole_segments() -> None:
    buffer = ReplayBuffer(10, unroll_steps=1, seed=0)
    for name, length in (("a", 4), ("b", 4), ("c", 4)):
        buffer.add(make_segment(length, game=name))
    assert (buffer.num_steps, buffer.num_segments, buffer.num_added_steps, buffer.num_added_segments) == (8, 2, 12, 3)
    assert [s.game for s in buffer.recent_segments(5)] == ["b", "c"]
    assert [s.game for s in buffer.recent_segments(1)] == ["c"]
    batch = buffer.sample(50)
    assert {obs[0].split()[0] for obs in batch.observations} == {"b", "c"}
    # Replay ids keep counting across eviction: "b obs t" is id 4 + t.
    for obs, index in zip(batch.observations, batch.indices.tolist()):
        name, _, t = obs[0].split()
        assert index == {"b": 4, "c": 8}[name] + int(t)
    buffer.add(make_segment(15, game="d"))
    assert buffer.num_segments == 1 and buffer.num_steps == 15
    buffer.update_priorities(torch.tensor([0, 27]), torch.tensor([5.0, 7.0]))  # id 0 is gone: ignored


def _save_and_load(state: dict, *, weights_only: bool) -> dict:
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=weights_only)


@pytest.mark.parametrize("weights_only", [False, True])
def test_state_dict_round_trip_restores_samples(weights_only: bool) -> None:
    buffer = ReplayBuffer(12, unroll_steps=2, prioritized=True, seed=3)
    for name, length in (("a", 5), ("b", 6), ("c", 5)):
        buffer.add(make_segment(length, game=name))
    buffer.recent_segments(1)[0].prompt_version = "priorzero-prompt-v0"
    buffer.sample(4)
    batch = buffer.sample(8)
    buffer.update_priorities(batch.indices, torch.arange(8, dtype=torch.float32) + 1.0)
    state = _save_and_load(buffer.state_dict(), weights_only=weights_only)
    expected = buffer.sample(16)

    restored = ReplayBuffer(12, unroll_steps=2, prioritized=True, seed=99)
    restored.load_state_dict(state)
    for counter in ("num_steps", "num_segments", "num_added_steps", "num_added_segments"):
        assert getattr(restored, counter) == getattr(buffer, counter), counter
    actual = restored.sample(16)
    assert actual.observations == expected.observations and actual.candidates == expected.candidates
    assert actual.root_prompts == expected.root_prompts
    tensors = ("actions", "target_reward", "target_value", "target_policy", "candidate_mask", "policy_mask")
    for name in (*tensors, "value_mask", "reward_mask", "observation_mask", "weights", "indices"):
        torch.testing.assert_close(getattr(actual, name), getattr(expected, name), rtol=0, atol=0)
    restored_policy, original_policy = (b.recent_segments(1)[0].visit_policies[2] for b in (restored, buffer))
    assert [s.prompt_version for s in restored.recent_segments(2)] == [None, "priorzero-prompt-v0"], "recorded or not"
    np.testing.assert_array_equal(restored_policy, original_policy)


def test_prioritized_sampling_and_weights() -> None:
    buffer = ReplayBuffer(100, unroll_steps=0, prioritized=True, priority_alpha=1.0, priority_beta=0.5, seed=0)
    buffer.add(make_segment(4))
    buffer.update_priorities([0, 1, 2, 3], [1.0, 1.0, 1.0, 7.0])
    batch = buffer.sample(4000)
    share = (batch.indices == 3).float().mean().item()
    assert share == pytest.approx(0.7, abs=0.03)
    # P = (.1, .1, .1, .7): w_i = (P_i / P_min)^-beta, the rarest position has weight 1.
    weights = {int(i): float(w) for i, w in zip(batch.indices, batch.weights)}
    assert weights[0] == pytest.approx(1.0) and weights[3] == pytest.approx(7.0**-0.5)
    # New steps enter with the largest priority so far.
    buffer.add(make_segment(1, game="new"))
    assert (buffer.sample(4000).indices == 4).float().mean().item() == pytest.approx(7 / 17, abs=0.03)


def test_config_and_input_errors() -> None:
    with pytest.raises(PriorZeroInputError, match="discount"):
        ReplayConfig(discount=0.0)
    with pytest.raises(PriorZeroInputError, match="capacity_steps"):
        ReplayBuffer(0)
    buffer = ReplayBuffer(10)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(2)
    with pytest.raises(ValueError, match="no steps"):
        buffer.add(GameSegment(game="empty"))
    built = ReplayBuffer.from_config(ReplayConfig(capacity_steps=7), seed=5)
    assert (built.config.capacity_steps, built.seed) == (7, 5)
