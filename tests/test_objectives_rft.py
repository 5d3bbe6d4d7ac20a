"""RFT: which episodes are kept, which rows they give, and the two losses."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from priorzero_pl.buffer.game_segment import GameSegment
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.objectives.rft import RFTObjective, rft_batch, select_top_episodes


def episode(name: str, rewards: list[float], actions: list[int] | None = None) -> GameSegment:
    segment = GameSegment(game=name)
    for t, reward in enumerate(rewards):
        candidates = ["go north", "open door", "take lamp"]
        segment.append(
            observation=f"{name} obs {t}",
            candidates=candidates,
            prompt=f"{name} prompt {t}",
            action=(actions or [t % 3] * len(rewards))[t],
            reward=reward,
            visit_policy=[1 / 3] * 3,
            prior_logprobs=[-1.0986] * 3,
            root_value=0.0,
            behaviour_logprob=-1.0986,
        )
    return segment


RETURNS = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 5.0, "e": 0.0, "f": 2.0, "g": -1.0, "h": 4.0}
SEGMENTS = [episode(name, [ret, 0.0]) for name, ret in RETURNS.items()]


def names(segments: list[GameSegment]) -> list[str]:
    return [s.game for s in segments]


def test_select_top_fraction_keeps_the_best_first_ties_in_order() -> None:
    assert names(select_top_episodes(SEGMENTS, top_fraction=0.25)) == ["b", "d"]
    # ceil(0.3 * 8) = 3
    assert names(select_top_episodes(SEGMENTS, top_fraction=0.3)) == ["b", "d", "h"]
    assert names(select_top_episodes(SEGMENTS[:1], top_fraction=0.01)) == ["a"]


def test_select_top_k_min_return_and_all() -> None:
    assert names(select_top_episodes(SEGMENTS, top_k=3)) == ["b", "d", "h"]
    assert names(select_top_episodes(SEGMENTS, top_k=4, min_return=4.5)) == ["b", "d"]
    assert names(select_top_episodes(SEGMENTS, min_return=3.0)) == ["b", "d", "h", "c"]
    assert len(select_top_episodes(SEGMENTS)) == len(SEGMENTS)
    assert select_top_episodes([], top_fraction=0.5) == []


@pytest.mark.parametrize(
    "kwargs", [{"top_k": 2, "top_fraction": 0.5}, {"top_k": 0}, {"top_fraction": 0.0}, {"top_fraction": 1.5}]
)
def test_select_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(PriorZeroInputError):
        select_top_episodes(SEGMENTS, **kwargs)


def test_rft_batch_has_one_row_per_step() -> None:
    batch = rft_batch([episode("x", [1.0, 0.0], actions=[2, 1]), episode("y", [3.0], actions=[0])])
    assert batch.prompts == ["x prompt 0", "x prompt 1", "y prompt 0"]
    assert batch.candidates[0] == ["go north", "open door", "take lamp"]
    assert batch.action_index.tolist() == [2, 1, 0]
    assert batch.action_index.dtype == torch.long


def test_minibatches_split_one_seeded_shuffle_and_stop_at_count() -> None:
    batch = rft_batch([episode("x", [0.0] * 5, actions=[0, 1, 2, 0, 1])])
    chunks = list(batch.minibatches(2, 2, np.random.default_rng(7)))
    order = np.random.default_rng(7).permutation(5).tolist()
    assert [c.prompts for c in chunks] == [[f"x prompt {i}" for i in order[:2]], [f"x prompt {i}" for i in order[2:4]]]
    assert [c.action_index.tolist() for c in chunks] == [[i % 3 for i in order[:2]], [i % 3 for i in order[2:4]]]
    everything = list(batch.minibatches(2, 3, np.random.default_rng(7)))
    assert [len(c) for c in everything] == [2, 2, 1]


def test_candidates_loss_is_the_nll_of_the_chosen_candidate() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], requires_grad=True)

    def policy(prompts: list[str], candidates: list[list[str]]) -> list[torch.Tensor]:
        return list(torch.log_softmax(logits, dim=-1))

    batch = rft_batch([episode("x", [1.0, 0.0], actions=[2, 0])])
    loss, metrics = RFTObjective("candidates").loss(policy, batch)
    expected = -(torch.log_softmax(logits[0], -1)[2] + torch.log(torch.tensor(1 / 3))) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert metrics["rft_loss"].item() == pytest.approx(loss.item())
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_tokens_loss_scores_only_the_chosen_action_text() -> None:
    calls = []

    def sequence_logprobs(prompts: list[str], texts: list[list[str]]) -> list[torch.Tensor]:
        calls.append((list(prompts), [list(t) for t in texts]))
        return [torch.tensor([-1.0]), torch.tensor([-3.0])]

    def policy(prompts: list[str], candidates: list[list[str]]) -> list[torch.Tensor]:
        raise AssertionError("the token loss does not use the candidate-normalised policy")

    batch = rft_batch([episode("x", [1.0, 0.0], actions=[2, 1])])
    loss, metrics = RFTObjective("tokens", sequence_logprobs).loss(policy, batch)
    assert calls == [(["x prompt 0", "x prompt 1"], [["take lamp"], ["open door"]])]
    assert loss.item() == pytest.approx(2.0)
    assert metrics["rft_loss"].item() == pytest.approx(2.0)


def test_tokens_loss_trains_a_real_lm(tiny_lm_path: Path) -> None:
    """One SGD step on the token loss makes the chosen action's text more likely."""
    from priorzero_pl.llm.loading import load_llm
    from priorzero_pl.llm.candidate_scoring import candidate_logprobs

    torch.manual_seed(0)
    llm, tokenizer = load_llm(str(tiny_lm_path))
    objective = RFTObjective("tokens", functools.partial(candidate_logprobs, llm, tokenizer, length_normalise=True))
    batch = rft_batch([episode("x", [1.0], actions=[1])])
    optimizer = torch.optim.SGD(llm.parameters(), lr=0.1)
    before, _ = objective.loss(lambda p, c: [], batch)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after, _ = objective.loss(lambda p, c: [], batch)
    assert after.item() < before.item()


def test_objective_rejects_bad_arguments() -> None:
    with pytest.raises(PriorZeroInputError):
        RFTObjective("tokens")
    with pytest.raises(PriorZeroInputError):
        RFTObjective("sequence")  # type: ignore[arg-type]
