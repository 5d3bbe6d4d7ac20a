"""TextGame's candidate policy on a scripted backend: cache, audit, and the fallback of a cut-short search."""

from __future__ import annotations

from pathlib import Path

import pytest

from priorzero_pl.envs import TextGame, text_game
from priorzero_pl.envs.backend import BackendObservation, ValidActions
from priorzero_pl.errors import PriorZeroInputError


class ScriptedBackend:
    """States are labels; each has a room, a world hash, a cache key and scripted search answers.

    ``answers[state]`` is a list of ValidActions returned by successive searches of that state
    (the last one repeats); ``valid[state]`` is what ``check_actions`` accepts there.
    """

    name = "scripted"
    max_score = 0.0

    def __init__(self, answers: dict[str, list[ValidActions]], valid: dict[str, set[str]], room: dict[str, str],
                 key: dict[str, str] | None = None, world: dict[str, str] | None = None) -> None:
        self.answers, self.valid, self.room = answers, valid, room
        self.key, self.world = key or {}, world or {}
        self.state = "start"
        self.searches: list[str] = []
        self.checked: list[list[str]] = []

    def reset(self) -> BackendObservation:
        self.state = "start"
        return BackendObservation("start", 0.0, 0, False, False)

    def step(self, action: str) -> BackendObservation:
        self.state = action  # the action names the next state
        return BackendObservation(action, 0.0, 0, False, False)

    def state_hash(self) -> str:
        return self.world.get(self.state, self.state)

    def cache_key(self) -> str:
        return self.key.get(self.state, self.state)

    def location(self) -> str:
        return self.room[self.state]

    def valid_actions(self, timeout: float) -> ValidActions:
        self.searches.append(self.state)
        queue = self.answers[self.state]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def check_actions(self, actions: list[str]) -> list[str]:
        self.checked.append(list(actions))
        return [action for action in actions if action in self.valid.get(self.state, set())]

    def walkthrough(self) -> None:
        return None

    def close(self) -> None:
        pass


def _game(monkeypatch: pytest.MonkeyPatch, folder: Path, backend: ScriptedBackend, **options: object) -> TextGame:
    monkeypatch.setattr(text_game, "_open_backend", lambda *args: backend)
    return TextGame(folder / "zork1.z5", **options)


def test_cut_short_search_serves_its_finds_plus_the_rooms_last_list_still_valid(
    monkeypatch: pytest.MonkeyPatch, shared_games_dir: Path
) -> None:
    backend = ScriptedBackend(
        answers={
            "start": [ValidActions(["north", "take lamp", "open door"], True)],
            "hall": [ValidActions(["wait"], False), ValidActions(["wait", "unlock door"], True)],
        },
        valid={"hall": {"north", "open door"}},
        room={"start": "r1", "hall": "r1"},
    )
    with _game(monkeypatch, shared_games_dir, backend) as game:
        assert game.reset().candidates_source == "search"
        first = game.step("hall")
        assert first.candidates == ["north", "open door", "wait"]
        assert first.candidates_source == "partial" and first.candidates_fallback
        assert backend.checked == [["north", "open door", "take lamp"]]
        game.reset()
        second = game.step("hall")  # the search went on and finished on this visit
        assert second.candidates == ["unlock door", "wait"] and second.candidates_source == "search"
        assert not second.candidates_fallback
        game.reset()
        assert game.step("hall").candidates_source == "cache"


def test_same_world_state_is_preferred_to_same_room_and_defaults_come_last(
    monkeypatch: pytest.MonkeyPatch, shared_games_dir: Path
) -> None:
    backend = ScriptedBackend(
        answers={
            "start": [ValidActions(["a"], True)],
            "twin": [ValidActions(["b"], True)],
            "late": [ValidActions([], False)],
            "far": [ValidActions([], False)],
        },
        valid={"late": {"a", "b"}},
        room={"start": "r1", "twin": "r2", "late": "r1", "far": "r9"},
        world={"twin": "w", "late": "w"},  # "late" looks like "twin" but stands in the room of "start"
    )
    defaults = ("look", "wait")
    with _game(monkeypatch, shared_games_dir, backend, default_actions=defaults) as game:
        game.reset()
        game.step("twin")
        late = game.step("late")
        assert late.candidates == ["b"] and late.candidates_source == "partial"
        far = game.step("far")
        assert far.candidates == list(defaults) and far.candidates_source == "default" and far.candidates_fallback


def test_cache_audit_catches_an_aliased_key(monkeypatch: pytest.MonkeyPatch, shared_games_dir: Path) -> None:
    def aliased() -> ScriptedBackend:
        # Two desert squares under one key, as inhumane's states were under the world hash.
        return ScriptedBackend(
            answers={"start": [ValidActions(["go"], True)], "sand": [ValidActions(["north"], True)],
                     "dune": [ValidActions(["dig", "north"], True)]},
            valid={}, room={"start": "r", "sand": "r", "dune": "r"}, key={"sand": "k", "dune": "k"},
        )

    with _game(monkeypatch, shared_games_dir, aliased(), cache_audit_rate=0.0) as game:
        game.reset(), game.step("sand")
        unaudited = game.step("dune")
        assert unaudited.candidates == ["north"] and not unaudited.cache_audited  # the wrong list, unnoticed
    with _game(monkeypatch, shared_games_dir, aliased(), cache_audit_rate=1.0) as game:
        game.reset(), game.step("sand")
        audited = game.step("dune")
        assert audited.cache_audited and audited.cache_disagreed and audited.candidates == ["dig", "north"]
        assert (game.cache_audits, game.cache_disagreements) == (1, 1)
        game.reset()
        again = game.step("sand")  # the fresh list replaced the cached one; sand's own list disagrees again
        assert again.cache_disagreed and again.candidates == ["north"] and game.cache_disagreements == 2


def test_audit_of_a_sound_key_finds_nothing(monkeypatch: pytest.MonkeyPatch, shared_games_dir: Path) -> None:
    backend = ScriptedBackend(answers={"start": [ValidActions(["go"], True)]}, valid={}, room={"start": "r"})
    with _game(monkeypatch, shared_games_dir, backend, cache_audit_rate=1.0) as game:
        records = [game.reset() for _ in range(3)]
    assert [r.candidates_source for r in records] == ["search", "cache", "cache"]
    assert [r.cache_audited for r in records] == [False, True, True] and not any(r.cache_disagreed for r in records)
    assert backend.searches == ["start"] * 3


@pytest.mark.parametrize(("option", "message"), [
    ({"cache_audit_rate": 1.5}, "cache_audit_rate=1.5"),
    ({"valid_action_workers": 0}, "valid_action_workers=0"),
])
def test_bad_search_options_are_rejected(shared_games_dir: Path, option: dict, message: str) -> None:
    with pytest.raises(PriorZeroInputError, match=message):
        TextGame("zork1", games_dir=shared_games_dir, **option)


def test_a_partial_list_stands_in_where_no_search_has_finished(monkeypatch: pytest.MonkeyPatch, shared_games_dir: Path) -> None:
    backend = ScriptedBackend(
        answers={"start": [ValidActions(["a", "b"], False)], "next": [ValidActions([], False)]},
        valid={"next": {"b"}},
        room={"start": "r", "next": "r"},
    )
    with _game(monkeypatch, shared_games_dir, backend) as game:
        assert game.reset().candidates_source == "partial"
        record = game.step("next")
    assert record.candidates == ["b"] and record.candidates_source == "partial"
