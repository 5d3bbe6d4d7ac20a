"""The world model: tokenizer, inference shapes and masking, the unrolled loss."""

from __future__ import annotations

import pytest
import torch

from priorzero_pl.buffer import WorldModelBatch
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.models import HashedTokenizer, WorldModel, WorldModelConfig

SMALL = dict(latent_dim=32, embed_dim=32, vocab_size=512, num_heads=2, max_observation_tokens=32)


def test_tokenizer_is_deterministic_and_truncates() -> None:
    tokenizer = HashedTokenizer(vocab_size=100, cache_size=2)
    ids, mask = tokenizer(["Open the mailbox.", "", "a b c d e f"], max_tokens=4)
    assert ids.shape == (3, 5)
    assert mask.tolist()[1] == [True, False, False, False, False]
    assert ids[0, 1:4].tolist() == list(HashedTokenizer(vocab_size=100).token_ids("OPEN the MAILBOX")[:3])
    assert tokenizer.num_truncated == 1
    # Fixed values: CRC32 is the same in every process (Python's hash() is salted per process).
    assert HashedTokenizer(vocab_size=4096).token_ids("go north") == (836, 2426)
    assert len(tokenizer._cache) == 2


def test_config_rejects_bad_values() -> None:
    with pytest.raises(PriorZeroInputError, match="num_heads"):
        WorldModelConfig(embed_dim=30, num_heads=4)
    with pytest.raises(PriorZeroInputError, match="dropout"):
        WorldModelConfig(dropout=1.0)


def test_inference_shapes_and_masking_with_ragged_candidates() -> None:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**SMALL))
    candidates = [["north", "south", "open mailbox"], ["take lamp"], ["west", "east"]]
    output, context = model.initial_inference(["West of House.", "Dark room.", "Forest."], candidates)
    assert output.latent.shape == (3, 32) and output.value.shape == (3,) and output.reward.shape == (3,)
    assert output.policy_logits.shape == (3, 3)
    assert context.mask.tolist() == [[True, True, True], [True, False, False], [True, True, False]]
    assert (output.policy_logits[~context.mask] < -1e30).all() and torch.isfinite(output.policy_logits).all()
    assert (output.reward == 0).all()
    probs = torch.softmax(output.policy_logits, -1)
    assert probs[1, 0].item() == pytest.approx(1.0)

    child = model.recurrent_inference(output.latent, torch.tensor([2, 0, 1]), context)
    assert child.latent.shape == (3, 32) and child.value.shape == (3,) and child.reward.shape == (3,)
    assert child.policy_logits.shape == (3, 3)
    assert (child.policy_logits[~context.mask] < -1e30).all()
    assert not child.latent.requires_grad
    # Candidate order does not change a candidate's score: scores are per candidate text.
    swapped, _ = model.initial_inference(["West of House."], [["open mailbox", "north", "south"]])
    torch.testing.assert_close(swapped.policy_logits[0], output.policy_logits[0, [2, 0, 1]], rtol=1e-4, atol=1e-5)


def _synthetic_batch(size: int = 6, unroll: int = 2) -> WorldModelBatch:
    """Rooms with a right action (visit policy 0.9 on it), reward 1 for it, value ~ reward."""
    rooms = ["kitchen with a knife", "garden with a gate", "cellar with a lamp", "attic with a box"]
    moves = ["take knife", "open gate", "take lamp", "open box", "wait"]
    observations, candidates = [], []
    actions = torch.zeros(size, unroll, dtype=torch.long)
    target_policy = torch.zeros(size, unroll + 1, 3)
    target_reward = torch.zeros(size, unroll)
    target_value = torch.zeros(size, unroll + 1)
    candidate_mask = torch.zeros(size, unroll + 1, 3, dtype=torch.bool)
    for b in range(size):
        row_obs, row_cands = [], []
        for k in range(unroll + 1):
            room = (b + k) % len(rooms)
            cands = [moves[room], "wait"] + (["look"] if (b + k) % 2 else [])
            row_obs.append(rooms[room])
            row_cands.append(cands)
            candidate_mask[b, k, : len(cands)] = True
            target_policy[b, k, 0] = 0.9
            target_policy[b, k, 1] = 0.1
            target_value[b, k] = 3.0 * (room + 1)
            if k < unroll:
                actions[b, k] = b % 2
                target_reward[b, k] = 2.0 if b % 2 == 0 else 0.0
        observations.append(row_obs)
        candidates.append(row_cands)
    step_mask = torch.ones(size, unroll + 1, dtype=torch.bool)
    step_mask[0, 2] = False  # the first row's episode ends after one transition
    return WorldModelBatch(
        observations=observations,
        candidates=candidates,
        actions=actions,
        target_reward=target_reward,
        target_value=target_value,
        target_policy=target_policy,
        candidate_mask=candidate_mask,
        step_mask=step_mask,
        observation_mask=step_mask.clone(),
        weights=torch.ones(size),
        indices=torch.arange(size),
        root_prompts=[""] * size,
    )


def test_loss_terms_and_gradients_reach_every_part() -> None:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**SMALL))
    total, metrics, _ = model.loss(_synthetic_batch())
    assert set(metrics) == {"value_loss", "reward_loss", "policy_loss", "consistency_loss", "total"}
    assert all(torch.isfinite(value) for value in metrics.values())
    total.backward()
    for part in ("observation_encoder", "action_encoder", "dynamics", "prediction"):
        grads = [p.grad for name, p in model.named_parameters() if name.startswith(part) and p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part
    assert model.observation_encoder.embedding.weight.grad.abs().sum() > 0


def test_masked_steps_do_not_change_the_loss() -> None:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**SMALL))
    batch = _synthetic_batch()
    _, before, _ = model.loss(batch)
    batch.target_value[0, 2] = 100.0
    batch.target_policy[0, 2] = torch.tensor([0.0, 0.0, 1.0])
    _, after, _ = model.loss(batch)
    for key in before:
        torch.testing.assert_close(before[key], after[key])


def test_loss_falls_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**SMALL))
    batch = _synthetic_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        total, metrics, _ = model.loss(batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        first = metrics if first is None else first
    _, last, _ = model.loss(batch)
    # The total can go negative (the consistency term is a negative cosine), so compare the drop.
    assert first["total"] - last["total"] > 2.0
    for key in ("value_loss", "reward_loss", "policy_loss"):
        assert last[key] < 0.5 * first[key], key


def test_loss_on_a_replay_sample_with_windows_past_the_end() -> None:
    from tests.test_buffer import make_segment

    from priorzero_pl.buffer import ReplayBuffer

    torch.manual_seed(0)
    buffer = ReplayBuffer(100, unroll_steps=3, seed=0)
    buffer.add(make_segment(3, game="a"))
    buffer.add(make_segment(2, game="b", terminal=False, final=False))
    batch = buffer.sample(8)
    assert not batch.step_mask.all()
    total, metrics, _ = WorldModel(WorldModelConfig(**SMALL)).loss(batch)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in metrics.values())
