"""The one acting path: agent settings, the episode loop, episodes in progress saved and replayed."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from priorzero_pl.agent import ActingSettings, Agent
from priorzero_pl.envs import StepRecord
from priorzero_pl.episodes import RandomAgent, play_episodes, play_random_episodes
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig
from priorzero_pl.prior import PROMPT_VERSION, PromptBuilder
from priorzero_pl.rollout import Rollout
from tests.test_mcts_search import HashWorld


class ScriptedGames:
    """``n`` deterministic games stepped together (the ``Games`` protocol, like ``EnvPool``).

    A state is the list of actions since the reset; game ``i`` ends after ``3 + i`` actions, and
    action ``b`` pays 1. ``noisy`` games answer differently on every reset (not deterministic)."""

    def __init__(self, n: int, noisy: frozenset[int] = frozenset()) -> None:
        self.paths: list[list[str]] = [[] for _ in range(n)]
        self.resets = [0] * n
        self.noisy = noisy

    @property
    def num_envs(self) -> int:
        return len(self.paths)

    def _record(self, i: int, reward: float = 0.0) -> StepRecord:
        path = self.paths[i]
        salt = f" (reset {self.resets[i]})" if i in self.noisy else ""
        observation = f"game {i} after {'/'.join(path) or 'nothing'}{salt}"
        done = len(path) >= 3 + i
        return StepRecord(
            observation=observation,
            candidates=[] if done else ["a", "b", "c"][: 2 + len(path) % 2],
            reward=reward,
            score=float(path.count("b")),
            max_score=9.0,
            done=done,
            state_hash=f"{zlib.crc32(observation.encode()):08x}",
        )

    def reset(self, indices=None):
        chosen = range(self.num_envs) if indices is None else indices
        records = []
        for i in chosen:
            self.paths[i] = []
            self.resets[i] += 1
            records.append(self._record(i))
        return records

    def step(self, actions):
        records = []
        for i, action in enumerate(actions):
            assert not self._record(i).done, f"game {i} stepped after its episode ended"
            self.paths[i].append(action)
            records.append(self._record(i, reward=float(action == "b")))
        return records


class NoTemplate:
    chat_template = None


def search_agent(settings: ActingSettings) -> Agent:
    return Agent(HashWorld(salt=4), None, PromptBuilder(NoTemplate(), history_len=2), MCTSConfig(num_simulations=12), settings)


def test_collected_visit_policies_are_untempered_and_behaviour_is_the_sampling_distribution() -> None:
    """At action temperature 0.25 the stored policy target is still counts / N; the stored
    behaviour log-prob is that of the tempered, noised distribution the action was drawn from."""
    rollout = Rollout(ScriptedGames(3), game="scripted", restart=True)
    agent = search_agent(ActingSettings(explore=True, temperature=0.25))
    finished = []
    rng = np.random.default_rng(0)
    while len(finished) < 4:
        finished += [segment for _, segment in rollout.step(agent, rng).finished]
    for segment in finished:
        for policy, action, behaviour in zip(segment.visit_policies, segment.actions, segment.behaviour_logprobs):
            counts = np.rint(policy * 12)
            np.testing.assert_allclose(policy, counts / 12, atol=1e-6)
            tempered = counts**4 / (counts**4).sum()
            assert behaviour == pytest.approx(np.log(tempered[action]), abs=1e-5)


def test_greedy_agent_stores_probability_one_and_prior_mode_stores_the_raw_prior() -> None:
    records = ScriptedGames(2).reset()
    greedy = search_agent(ActingSettings(explore=False)).act(records, [[], []], np.random.default_rng(0))
    assert [d.behaviour_logprob for d in greedy] == [0.0, 0.0]
    sampled = search_agent(ActingSettings(mode="prior", explore=True, temperature=0.5))
    sampled._prior = lambda prompts, candidates, records: [np.log(np.array([0.75, 0.25])) for _ in prompts]
    decisions = sampled.act(records, [[], []], np.random.default_rng(1))
    for decision in decisions:
        np.testing.assert_allclose(decision.visit_policy, [0.75, 0.25], rtol=1e-6)
        tempered = np.array([0.75**2, 0.25**2]) / (0.75**2 + 0.25**2)
        assert decision.behaviour_logprob == pytest.approx(np.log(tempered[decision.action_index]))


def test_greedy_prior_agent_breaks_ties_at_random_and_reproducibly() -> None:
    """Acting greedily on the prior alone, a tie between the best candidates goes to either at
    random (seeded), never always to the first one the game lists, and never to a worse one."""
    games = ScriptedGames(2)
    games.reset()
    records = games.step(["a", "a"])
    assert all(len(r.candidates) == 3 for r in records)
    greedy = search_agent(ActingSettings(mode="prior", explore=False))
    greedy._prior = lambda prompts, candidates, records: [np.log(np.array([0.2, 0.4, 0.4])) for _ in prompts]

    def picks(seed: int) -> list[int]:
        decisions = greedy.act(records, [[], []], np.random.default_rng(seed))
        assert [d.behaviour_logprob for d in decisions] == [0.0, 0.0]
        return [d.action_index for d in decisions]

    chosen = [picks(seed) for seed in range(20)]
    assert {a for pair in chosen for a in pair} == {1, 2}
    assert chosen == [picks(seed) for seed in range(20)]


def test_bad_acting_settings_are_input_errors() -> None:
    for bad in (dict(mode="llm"), dict(temperature=-1.0), dict(prior_weight=1.5)):
        with pytest.raises(PriorZeroInputError):
            ActingSettings(**bad)


def _play(rollout: Rollout, steps: int, rng: np.random.Generator) -> list[tuple[int, list[int], list[float]]]:
    out = []
    for _ in range(steps):
        for index, segment in rollout.step(RandomAgent(), rng).finished:
            out.append((index, list(segment.actions), list(segment.rewards)))
    return out


def test_episodes_in_progress_are_saved_and_replayed_exactly() -> None:
    """Stopped mid-episode (episodes of different lengths in every game), saved, restored into
    fresh games: the continuation is the same as never stopping."""
    rng = np.random.default_rng(3)
    original = Rollout(ScriptedGames(3), game="scripted", restart=True)
    _play(original, 7, rng)
    state, rng_state = original.state_dict(), rng.bit_generator.state
    assert len({len(s["observations"]) for s in state["segments"]}) > 1, "the test needs unequal lengths"
    assert {s["prompt_version"] for s in state["segments"]} == {PROMPT_VERSION}, "a resume checks it"
    continued = _play(original, 12, rng)

    fresh_games = ScriptedGames(3)
    restored = Rollout(fresh_games, game="scripted", restart=True)
    assert restored.restore(state) == []
    assert {s["prompt_version"] for s in restored.state_dict()["segments"]} == {PROMPT_VERSION}
    rng.bit_generator.state = rng_state
    assert _play(restored, 12, rng) == continued
    assert continued, "some episodes must end after the restore for the comparison to mean anything"


def test_a_game_that_does_not_replay_starts_afresh_with_a_warning() -> None:
    rng = np.random.default_rng(3)
    original = Rollout(ScriptedGames(3), game="scripted", restart=True)
    _play(original, 2, rng)
    restored = Rollout(ScriptedGames(3, noisy=frozenset({1})), game="scripted", restart=True)
    with pytest.warns(UserWarning, match=r"games \[1\] did not replay"):
        assert restored.restore(original.state_dict()) == [1]
    assert restored.state_dict()["segments"][1]["observations"] == []
    assert len(restored.state_dict()["segments"][0]["observations"]) == 2


def test_play_episodes_is_a_function_of_agent_and_game(tw_game_path: Path) -> None:
    first = play_random_episodes(tw_game_path, episodes=3, seed=5, max_steps=4)
    again = play_episodes(RandomAgent(), tw_game_path, episodes=3, seed=5, max_steps=4)
    assert [(r.score, r.length, [s.action for s in r.transcript]) for r in first] == [
        (r.score, r.length, [s.action for s in r.transcript]) for r in again
    ]
    assert all(1 <= r.length <= 4 and r.max_score > 0 for r in first)
    step = first[0].transcript[0]
    assert step.action in step.candidates and sum(step.visits) == pytest.approx(1.0, abs=1e-3)
