"""The walkthrough corpus: which games, kept apart from evaluation games, recorded as the agent sees them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from transformers import AutoTokenizer

from priorzero_pl.cli import main
from priorzero_pl.corpus import (
    TRAIN_SEED_START,
    CorpusManifest,
    CorpusPlan,
    GameSpec,
    assert_not_in_corpus,
    build_corpus,
    read_records,
    verify_records,
)
from priorzero_pl.corpus.build import DEFAULT_HISTORY_LEN, DEFAULT_MAX_OBSERVATION_CHARS, DEFAULT_NOISE, DEFAULT_NOISY_EPISODES, DEFAULT_NOTES
from priorzero_pl.corpus.noisy_expert import READ_RECIPE, expert_command, play_noisy_expert
from priorzero_pl.corpus.manifest import assert_disjoint
from priorzero_pl.corpus.plan import COOKING_GO
from priorzero_pl.corpus.walkthrough import play_walkthrough, without_detours
from priorzero_pl.envs import TextGame
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior import HistoryStep, PromptBuilder

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug.yaml"


def test_plan_is_deterministic_and_a_smaller_plan_is_a_prefix() -> None:
    big = CorpusPlan(num_games=30).games()
    assert big == CorpusPlan(num_games=30).games()
    assert CorpusPlan(num_games=7).games() == big[:7]
    assert [g.seed for g in big] == list(range(TRAIN_SEED_START, TRAIN_SEED_START + 30))
    assert {g.family for g in big} == {"tw-cooking", "tw-simple", "tw-coin_collector", "tw-treasure_hunter"}
    for game in big:
        assert game.split == "train"
        if game.family == "tw-cooking":
            assert 1 <= game.options["take"] <= game.options["recipe"] <= 3
            assert game.options["go"] in COOKING_GO


def test_test_plan_uses_the_test_split_and_low_seeds() -> None:
    games = CorpusPlan(split="test", num_games=20).games()
    assert all(g.split == "test" and g.seed < TRAIN_SEED_START for g in games)
    cooking = next(g for g in games if g.family == "tw-cooking")
    assert cooking.tw_make_options()["split"] == "test"
    simple = GameSpec("tw-simple", seed=5, split="test")
    assert simple.tw_make_options() == {"test": True}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GameSpec("tw-cooking", seed=5, split="train"), "outside the train split's seeds"),
        (lambda: GameSpec("tw-cooking", seed=TRAIN_SEED_START, split="test"), "outside the test split's seeds"),
        (lambda: GameSpec("tw-cooking", seed=5, split="test", options={"split": "train"}), "set split= instead"),
        (lambda: GameSpec("zork", seed=5, split="test"), "not a corpus family"),
        (lambda: CorpusPlan(split="test", num_games=3, seed_start=TRAIN_SEED_START - 2), "outside the test split's seeds"),
        (lambda: CorpusPlan(family_weights={"tw-maze": 1.0}), "unknown"),
        (lambda: CorpusPlan(cooking_options={"recipes": 2}), "cooking options"),
        (lambda: CorpusPlan(num_games=0), "num_games"),
    ],
)
def test_bad_requests_are_refused(make, message: str) -> None:
    with pytest.raises(PriorZeroInputError, match=message):
        make()


def test_game_key_ignores_spelling() -> None:
    a = GameSpec("tw-cooking", seed=7, split="test", options={"recipe": 1, "take": 1, "go": 1, "open": False})
    b = GameSpec("tw-cooking", seed=7, split="test", options={"go": "1", "take": 1, "recipe": 1})
    assert a.key() == b.key()
    assert a.key() != GameSpec("tw-cooking", seed=8, split="test", options=a.options).key()
    assert a.key() != GameSpec("tw-cooking", seed=7, split="test", options={**a.options, "open": True}).key()


def test_cli_rejects_a_train_corpus_on_test_seeds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["corpus", "--out", str(tmp_path), "--games", "2", "--seed-start", "10"])
    assert exit_info.value.code == 2
    assert "outside the train split's seeds" in capsys.readouterr().err


def test_records_are_what_the_agent_sees(tiny_corpus: Path, tiny_lm_path: Path) -> None:
    """Candidates are TextGame's, and each prompt is the one the agent's PromptBuilder builds."""
    manifest = CorpusManifest.load(tiny_corpus)
    steps = list(read_records(tiny_corpus / "records.jsonl"))
    assert manifest.num_records == len(steps) > 0
    builder = PromptBuilder(
        AutoTokenizer.from_pretrained(tiny_lm_path),
        history_len=manifest.prompt.history_len,
        max_observation_chars=manifest.prompt.max_observation_chars,
        notes=manifest.prompt.notes,
    )
    for entry in manifest.built_games():
        game_steps = [s for s in steps if s.game == entry.id and s.episode == 0]
        assert entry.won and entry.steps == len(game_steps) and entry.score == entry.max_score > 0
        assert all(s.played is None for s in game_steps)
        with TextGame(tiny_corpus / "games" / f"{entry.id}.z8") as game:
            record = game.reset()
            history: list[HistoryStep] = []
            for step in game_steps:
                assert step.observation == record.observation and step.candidates == record.candidates
                assert step.prompt == builder.build(history, step.observation, step.candidates)
                assert len(step.history) == min(step.step, manifest.prompt.history_len)
                following = game.step(step.action)
                history.append(HistoryStep(record.observation, step.action, following.reward))
                record = following
                assert step.reward == record.reward
                if step.scorable:
                    assert step.candidates[step.action_index] == step.action


def test_without_detours_drops_only_a_put_down_undone_by_the_next_command() -> None:
    commands = ["take knife", "chop carrot with knife", "drop knife", "take knife", "slice potato with knife", "drop knife", "prepare meal"]
    assert without_detours(commands) == ["take knife", "chop carrot with knife", "slice potato with knife", "drop knife", "prepare meal"]
    assert without_detours(["drop knife", "take apple", "take knife"]) == ["drop knife", "take apple", "take knife"]
    assert without_detours(["drop knife", "take knife", "drop knife", "take knife"]) == []


def test_the_recorded_walkthrough_keeps_the_knife_and_still_wins(tmp_path: Path, tiny_lm_path: Path) -> None:
    """A two-cut recipe's walkthrough puts the knife down and picks it up between the cuts; the
    corpus records it without that detour, and the shorter walkthrough wins."""
    spec = GameSpec("tw-cooking", seed=TRAIN_SEED_START + 500, split="train", options={"recipe": 2, "take": 2, "go": 1, "cut": True})
    game_file = spec.make(tmp_path)
    with TextGame(game_file) as game:
        full = game.walkthrough()
    assert without_detours(full) != full
    builder = PromptBuilder(AutoTokenizer.from_pretrained(tiny_lm_path), history_len=2, max_observation_chars=256)
    played = play_walkthrough(game_file, game_file.stem, builder)
    assert played.won and [s.action for s in played.steps] == without_detours(full)


def test_noisy_expert_states_are_replayable_and_labelled_by_a_reading_expert(tiny_corpus: Path, tiny_lm_path: Path) -> None:
    """Each noisy step is the state the played commands lead to. Its label is the walkthrough's
    command while every command so far was the walkthrough's; after a deviation it is
    ``examine cookbook`` until the cookbook was read (the winning plan, which reads the hidden
    recipe, never contains it), then the winning plan's next command; from the state after a random
    move, the expert's labels still win."""
    manifest = CorpusManifest.load(tiny_corpus)
    entry = manifest.built_games()[0]
    game_file = tiny_corpus / "games" / f"{entry.id}.z8"
    builder = PromptBuilder(AutoTokenizer.from_pretrained(tiny_lm_path), history_len=1, max_observation_chars=256, notes=2)
    steps = play_noisy_expert(game_file, entry.id, builder, episode=1, noise=0.5, rng=np.random.default_rng(0), max_steps=40)
    # The recipe read early is kept as a note once it leaves the 1-step window.
    assert any(note[0] == READ_RECIPE and "Recipe" in note[1] for s in steps for note in s.notes)
    deviations = [i for i, s in enumerate(steps) if s.played is not None]
    assert deviations and all(s.episode == 1 for s in steps)
    with TextGame(game_file, max_steps=200, track_winning_plan=True) as game:
        walkthrough = without_detours(game.walkthrough())
        record = game.reset()
        assert READ_RECIPE not in game.winning_plan() and READ_RECIPE in walkthrough
        read = False
        history: list[HistoryStep] = []
        for step in steps:
            assert (step.observation, step.candidates) == (record.observation, record.candidates)
            if step.step <= deviations[0]:
                assert step.action == walkthrough[step.step]
            elif not read and READ_RECIPE in step.candidates:
                assert step.action == READ_RECIPE
            else:
                assert step.action == game.winning_plan()[0]
            assert step.played != step.action
            assert step.prompt == builder.build(history, step.observation, step.candidates)
            assert step.note_list() == builder.visible(history)[0]
            read = read or (step.played or step.action) == READ_RECIPE
            following = game.step(step.played or step.action)
            assert step.reward == following.reward
            history.append(HistoryStep(record.observation, step.played or step.action, following.reward))
            record = following
        assert record.done or game.winning_plan() is None or len(steps) == 40

        clean = play_noisy_expert(game_file, entry.id, builder, episode=1, noise=0.0, rng=np.random.default_rng(0), max_steps=40)
        assert [s.action for s in clean] == walkthrough and all(s.played is None for s in clean)

        record = game.reset()
        played = [step.played or step.action for step in steps[: deviations[0] + 1]]
        for command in played:
            record = game.step(command)
        while not record.done:
            command = expert_command(None, game.winning_plan(), record.candidates, played)
            played.append(command)
            record = game.step(command)
        assert record.won


def test_noisy_expert_reads_the_cookbook_before_acting_on_the_recipe(tiny_corpus: Path, tiny_lm_path: Path) -> None:
    """Off the walkthrough's path, no noisy label names an ingredient-fetching move while the
    cookbook is in reach and unread: across every game and several noisy episodes the expert's
    first off-path label with the cookbook in reach is always ``examine cookbook``."""
    manifest = CorpusManifest.load(tiny_corpus)
    builder = PromptBuilder(AutoTokenizer.from_pretrained(tiny_lm_path), history_len=2, max_observation_chars=256)
    checked = 0
    for entry in manifest.built_games():
        game_file = tiny_corpus / "games" / f"{entry.id}.z8"
        for episode in range(1, 4):
            steps = play_noisy_expert(
                game_file, entry.id, builder, episode=episode, noise=0.6, rng=np.random.default_rng(episode), max_steps=30
            )
            deviated = read = False
            for step in steps:
                if deviated and not read and READ_RECIPE in step.candidates:
                    assert step.action == READ_RECIPE, (entry.id, episode, step.step, step.action)
                    checked += 1
                read = read or (step.played or step.action) == READ_RECIPE
                deviated = deviated or step.played is not None
    assert checked > 0


def test_noisy_episodes_add_new_states_only(tiny_corpus: Path) -> None:
    manifest = CorpusManifest.load(tiny_corpus)
    steps = list(read_records(tiny_corpus / "records.jsonl"))
    assert manifest.noisy_episodes == DEFAULT_NOISY_EPISODES and manifest.noise == DEFAULT_NOISE
    assert sum(g.noisy_steps for g in manifest.built_games()) > 0
    for entry in manifest.built_games():
        game_steps = [s for s in steps if s.game == entry.id]
        assert len(game_steps) == entry.steps + entry.noisy_steps
        assert len({(s.prompt, s.action) for s in game_steps}) == len(game_steps)
        assert {s.episode for s in game_steps} <= set(range(DEFAULT_NOISY_EPISODES + 1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda out, plan: build_corpus(out, plan, noisy_episodes=-1, progress=False), "noisy_episodes=-1"),
        (lambda out, plan: build_corpus(out, plan, noise=1.0, progress=False), "noise=1.0"),
    ],
)
def test_bad_noise_settings_are_refused(call, message: str, tmp_path: Path) -> None:
    plan = CorpusPlan(split="train", num_games=1, family_weights={"tw-cooking": 1.0})
    with pytest.raises(PriorZeroInputError, match=message):
        call(tmp_path, plan)
    assert not (tmp_path / "records.jsonl").exists()


def test_manifest_lists_every_game_and_hashes_the_records(tiny_corpus: Path, tmp_path: Path) -> None:
    manifest = CorpusManifest.load(tiny_corpus)
    assert manifest.split == "train" and (manifest.seed_start, manifest.seed_end) == (TRAIN_SEED_START, TRAIN_SEED_START + 2)
    assert [GameSpec.from_dict(g.spec).seed for g in manifest.games] == [TRAIN_SEED_START + i for i in range(3)]
    assert all(g.spec["family"] == "tw-cooking" and g.spec["split"] == "train" and g.uuid for g in manifest.games)
    assert manifest.prompt.history_len == DEFAULT_HISTORY_LEN
    verify_records(tiny_corpus, manifest)

    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy)
    lines = (copy / "records.jsonl").read_text().splitlines()
    (copy / "records.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(PriorZeroInputError, match="SHA-256"):
        verify_records(copy, manifest)


def test_rebuilding_gives_the_same_bytes(tiny_corpus: Path, tmp_path: Path) -> None:
    """Same plan, same records: rebuilt next to a copy of the games (generation is not repeated here;
    the in-process build is checked against tw-make in test_in_process_build_is_tw_makes_game)."""
    shutil.copytree(tiny_corpus / "games", tmp_path / "games")
    manifest = CorpusManifest.load(tiny_corpus)
    plan = CorpusPlan(split="train", num_games=3, family_weights={"tw-cooking": 1.0}, cooking_options=manifest.cooking_options)
    again = build_corpus(tmp_path, plan, progress=False)
    assert again.records_sha256 == manifest.records_sha256
    assert (tmp_path / "records.jsonl").read_bytes() == (tiny_corpus / "records.jsonl").read_bytes()


def test_evaluation_games_are_checked_against_the_manifest(
    tiny_corpus: Path, tiny_test_corpus: Path, tw_game_path: Path
) -> None:
    corpus = CorpusManifest.load(tiny_corpus)
    entry = corpus.built_games()[0]
    with pytest.raises(PriorZeroInputError, match="is a corpus game"):
        assert_not_in_corpus(GameSpec.from_dict(entry.spec), corpus)
    with pytest.raises(PriorZeroInputError, match="is a corpus game"):
        assert_not_in_corpus(tiny_corpus / "games" / f"{entry.id}.z8", corpus)
    assert_not_in_corpus(tw_game_path, corpus)
    assert_not_in_corpus(GameSpec("tw-cooking", seed=5, split="test", options=entry.spec["options"]), corpus)

    test = CorpusManifest.load(tiny_test_corpus)
    assert test.split == "test" and all(g.spec["seed"] < TRAIN_SEED_START for g in test.games)
    assert all(g.uuid.startswith("tw-cooking-test-") for g in test.built_games())
    assert_disjoint(test, corpus)
    with pytest.raises(PriorZeroInputError, match="is a corpus game"):
        assert_disjoint(corpus, corpus)


def test_corpus_defaults_are_debug_yaml_prompt_settings() -> None:
    prior = yaml.safe_load(DEBUG.read_text())["model"]["prior"]
    assert prior["history_len"] == DEFAULT_HISTORY_LEN
    assert prior["max_observation_chars"] == DEFAULT_MAX_OBSERVATION_CHARS
    assert prior["notes"] == DEFAULT_NOTES
    assert prior.get("use_chat_template", True)


@pytest.mark.slow
def test_in_process_build_is_tw_makes_game(tmp_path: Path) -> None:
    """The corpus builds games in-process; they are the games tw-make builds from the same request."""
    from priorzero_pl.envs.textworld_make import make_game

    options = {"recipe": 1, "take": 1, "go": 1, "split": "test"}
    inside = make_game(tmp_path / "inside", "tw-cooking", 11, in_process=True, **options)
    outside = make_game(tmp_path / "outside", "tw-cooking", 11, **options)
    meta = [json.loads(p.with_suffix(".json").read_text())["metadata"] for p in (inside, outside)]
    assert meta[0]["uuid"] == meta[1]["uuid"]
    assert meta[0]["walkthrough"] == meta[1]["walkthrough"]
    with pytest.raises(PriorZeroInputError, match="invalid choice"):
        make_game(tmp_path, "tw-simple", 11, in_process=True, rewards="lots")
