"""The world model: tokenizer, inference shapes and masking, the unrolled loss."""

from __future__ import annotations

import pytest
import torch

from priorzero_pl.buffer import WorldModelBatch
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.models import HashedTokenizer, WorldModel, WorldModelConfig
from priorzero_pl.models.support import scalar_to_support

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
    step_mask[0, 2] = False  # the first row's episode is truncated after one transition
    return WorldModelBatch(
        observations=observations,
        candidates=candidates,
        actions=actions,
        target_reward=target_reward,
        target_value=target_value,
        target_policy=target_policy,
        candidate_mask=candidate_mask,
        policy_mask=step_mask,
        value_mask=step_mask.clone(),
        reward_mask=step_mask[:, :unroll].clone(),
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
    assert not batch.policy_mask.all()
    total, metrics, _ = WorldModel(WorldModelConfig(**SMALL)).loss(batch)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_gradient_reaching_the_root_latent_is_muzero_s(k: int) -> None:
    """Step ``k``'s value loss reaches the encoder's latent with weight ``c_k * 0.5^(k-1)``
    (``k >= 1``; ``c_0 = 1``, ``c_k = 1/K``): MuZero halves the gradient at the dynamics' input
    after every unrolled step and weighs each unrolled step ``1/K``. Compared against the same
    chain computed by hand without any scaling."""
    torch.manual_seed(0)
    config = WorldModelConfig(**SMALL, value_loss_weight=1.0, reward_loss_weight=0.0, policy_loss_weight=0.0,
                              consistency_loss_weight=0.0)
    model = WorldModel(config)
    batch = _synthetic_batch(size=4, unroll=3)
    batch.value_mask[:] = False
    batch.value_mask[:, k] = True
    captured = {}

    def keep_root_latent(module, inputs, output):
        if output.requires_grad and "root" not in captured:
            captured["root"] = output
            output.register_hook(lambda grad: captured.__setitem__("grad", grad))

    handle = model.observation_encoder.register_forward_hook(keep_root_latent)
    total, _, _ = model.loss(batch)
    total.backward()
    handle.remove()

    root = model.observation_encoder([row[0] for row in batch.observations]).detach().requires_grad_(True)
    context = model.embed_candidates([step for row in batch.candidates for step in row], 3)
    embeddings, mask = context.embeddings.view(4, 4, 3, -1), context.mask.view(4, 4, 3)
    latent = root
    for j in range(k):
        latent, _ = model.dynamics(latent, embeddings[torch.arange(4), j, batch.actions[:, j]])
    value_logits, _ = model.prediction(latent, embeddings[:, k], mask[:, k])
    target = scalar_to_support(batch.target_value[:, k], config.support_size)
    plain = -(target * torch.log_softmax(value_logits, -1)).sum(-1).mean()
    (expected,) = torch.autograd.grad(plain, root)
    step_weight = 1.0 if k == 0 else 1.0 / 3
    scale = step_weight * (0.5 ** (k - 1) if k >= 1 else 1.0)
    torch.testing.assert_close(captured["grad"], scale * expected, rtol=1e-4, atol=1e-7)


def test_every_loss_term_weighs_the_root_1_and_each_unrolled_step_1_over_k() -> None:
    """Value, policy, reward and consistency terms each weigh the root 1 and every unrolled step
    ``1/K`` (MuZero), summed over known steps and averaged over the batch: each term compared
    with the same chain computed by hand, its per-step losses weighted explicitly."""
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**SMALL))
    unroll, size = 3, 4
    batch = _synthetic_batch(size=size, unroll=unroll)
    batch.policy_mask[1, 3] = False
    batch.value_mask[2, 1] = False
    batch.reward_mask[3, 2] = False
    batch.observation_mask[0, 2] = False
    _, metrics, _ = model.loss(batch)

    with torch.no_grad():
        context = model.embed_candidates([step for row in batch.candidates for step in row], 3)
        embeddings, mask = context.embeddings.view(size, unroll + 1, 3, -1), context.mask.view(size, unroll + 1, 3)
        latent = model.observation_encoder([row[0] for row in batch.observations])
        support = model.config.support_size
        value, policy, reward, consistency = [], [], [], []
        for k in range(unroll + 1):
            value_logits, policy_logits = model.prediction(latent, embeddings[:, k], mask[:, k])
            target = scalar_to_support(batch.target_value[:, k], support)
            value.append(-(target * torch.log_softmax(value_logits.float(), -1)).sum(-1))
            log_policy = torch.log_softmax(policy_logits, -1).masked_fill(~mask[:, k], 0.0)
            policy.append(-(batch.target_policy[:, k] * log_policy).sum(-1))
            if k == unroll:
                break
            latent, reward_logits = model.dynamics(latent, embeddings[torch.arange(size), k, batch.actions[:, k]])
            target = scalar_to_support(batch.target_reward[:, k], support)
            reward.append(-(target * torch.log_softmax(reward_logits.float(), -1)).sum(-1))
            following = model.observation_encoder([row[k + 1] for row in batch.observations])
            consistency.append(-torch.nn.functional.cosine_similarity(latent, following, dim=-1))

    def weighted(terms, known, step_weights):
        return sum(w * (t * m.float()).sum() for t, m, w in zip(terms, known.T, step_weights)) / size

    root_and_unrolled = [1.0] + [1.0 / unroll] * unroll
    consistency_mask = batch.policy_mask[:, :unroll] & batch.observation_mask[:, 1:]
    expected = {
        "value_loss": weighted(value, batch.value_mask, root_and_unrolled),
        "policy_loss": weighted(policy, batch.policy_mask, root_and_unrolled),
        "reward_loss": weighted(reward, batch.reward_mask, root_and_unrolled[1:]),
        "consistency_loss": weighted(consistency, consistency_mask, root_and_unrolled[1:]),
    }
    for name, want in expected.items():
        torch.testing.assert_close(metrics[name], want.float(), rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def test_value_after_a_game_ending_action_is_trained_to_zero() -> None:
    """Past a terminal end the state is absorbing: the model learns value 0 there, instead of
    extrapolating the root's value into states the search will expand."""
    from priorzero_pl.buffer import GameSegment, ReplayBuffer

    torch.manual_seed(0)
    buffer = ReplayBuffer(100, unroll_steps=2, td_steps=3, seed=0)
    for observation, action in (("the dragon sleeps on gold", 0), ("a troll guards the bridge", 1)):
        segment = GameSegment(game="g", terminal=True, final_observation="you have won")
        segment.append(
            observation=observation, candidates=["slay it", "sneak past"], prompt="", action=action, reward=3.0,
            visit_policy=[0.5, 0.5], prior_logprobs=[-0.7, -0.7], root_value=3.0, behaviour_logprob=-0.7,
        )
        buffer.add(segment)
    model = WorldModel(WorldModelConfig(latent_dim=16, embed_dim=16, vocab_size=128, num_heads=2, max_observation_tokens=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        total, _, _ = model.loss(buffer.sample(8))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    model.eval()
    root, context = model.initial_inference(["the dragon sleeps on gold"], [["slay it", "sneak past"]])
    after = model.recurrent_inference(root.latent, torch.tensor([0]), context)
    assert root.value.item() == pytest.approx(3.0, abs=0.5)
    assert after.value.abs().item() < 0.3
    assert model.recurrent_inference(after.latent, torch.tensor([1]), context).value.abs().item() < 0.3
