"""Prior pretraining: the command trains a prior that beats a uniform guess on unseen games; the
held-out measurements are honest; bad input fails before any training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from priorzero_pl.assets.tiny_lm import llama_config, template_tokenizer, train_tokenizer
from priorzero_pl.cli import main
from priorzero_pl.corpus import CorpusManifest, read_records
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.pretraining import action_rank, play_prior_only, play_random, rank_walkthrough_actions
from priorzero_pl.pretraining.dataset import check_context, check_prompts, prompt_builder_for, split_by_game
from priorzero_pl.prior import PromptBuilder

TINY = ["--hidden-size", "32", "--num-layers", "1", "--vocab-size", "400", "--batch-size", "4", "--lr", "0.01",
        "--val-every-n-steps", "3", "--num-threads", "1", "--no-progress"]
"""A model of a few hundred kB that learns the three easy games in seconds."""


@pytest.fixture(scope="module")
def pretrained(tiny_corpus: Path, tiny_test_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small run of the command: (model directory, TensorBoard directory)."""
    root = tmp_path_factory.mktemp("pretrained")
    main(["pretrain-prior", "--corpus", str(tiny_corpus), "--test-corpus", str(tiny_test_corpus),
          "--out", str(root / "prior"), "--logdir", str(root / "tb"), "--max-epochs", "8", *TINY])
    return root / "prior", root / "tb"


@pytest.mark.slow
def test_small_run_beats_uniform_on_unseen_games(pretrained: tuple[Path, Path], tiny_test_corpus: Path) -> None:
    out, logdir = pretrained
    report = json.loads((out / "pretraining.json").read_text())
    for split in ("heldout", "test"):
        figures = report[split]
        assert figures["steps"] > 0
        assert figures["top1"] > figures["uniform_top1"], (split, figures)
        assert figures["mean_rank"] < figures["uniform_mean_rank"], (split, figures)
    assert report["command"].startswith("priorzero pretrain-prior --corpus")
    assert report["corpus_command"] == CorpusManifest.load(out / "corpus_manifest.json").command
    assert list(logdir.rglob("events.out.tfevents.*")), "no TensorBoard scalars written"

    # The directory is a model the project loads, and it is the model the report measured.
    model, tokenizer = load_llm(out)
    assert (out / "model.safetensors").is_file()
    steps = list(read_records(tiny_test_corpus / "records.jsonl"))
    again = rank_walkthrough_actions(model, tokenizer, steps, length_normalise=report["config"]["length_normalise"])
    assert again.top1 == pytest.approx(report["test"]["top1"])
    assert again.nll == pytest.approx(report["test"]["nll"], rel=1e-4)
    walkthrough = [s for s in steps if s.episode == 0]
    assert 0 < report["test_walkthrough"]["steps"] == sum(s.scorable for s in walkthrough) < report["test"]["steps"]
    again = rank_walkthrough_actions(model, tokenizer, walkthrough, length_normalise=report["config"]["length_normalise"])
    assert again.top1 == pytest.approx(report["test_walkthrough"]["top1"])


def test_action_rank_splits_ties() -> None:
    scores = torch.tensor([0.5, 2.0, 2.0, -1.0])
    assert action_rank(scores, 1) == (0.5, 1.5)
    assert action_rank(scores, 0) == (0.0, 3.0)
    assert action_rank(scores, 3) == (0.0, 4.0)
    assert action_rank(torch.zeros(5), 2) == (0.2, 3.0)
    assert action_rank(torch.tensor([1.0, 1.0 + 1e-7, 0.0]), 0) == (0.5, 1.5)


def test_a_prior_that_cannot_tell_candidates_apart_scores_uniform(tiny_test_corpus: Path) -> None:
    """All-zero logits: every token has log-prob -log V, so mean-normalised scores tie exactly."""
    tokenizer = template_tokenizer()
    model = LlamaForCausalLM(llama_config(tokenizer, hidden_size=32, num_layers=1))
    torch.nn.init.zeros_(model.lm_head.weight)
    steps = list(read_records(tiny_test_corpus / "records.jsonl"))
    report = rank_walkthrough_actions(model, tokenizer, steps, length_normalise=True)
    assert report.steps == sum(s.scorable for s in steps)
    assert report.top1 == pytest.approx(report.uniform_top1)
    assert report.mean_rank == pytest.approx(report.uniform_mean_rank)
    assert report.nll == pytest.approx(report.uniform_nll, rel=1e-5)
    assert report.uniform_top1 == pytest.approx(sum(1 / len(s.candidates) for s in steps if s.scorable) / report.steps)


def test_held_out_split_is_by_whole_game(tiny_corpus: Path) -> None:
    steps = list(read_records(tiny_corpus / "records.jsonl"))
    train, heldout = split_by_game(steps, 0.1, seed=0)
    assert len(train) + len(heldout) == len(steps)
    assert heldout and not {s.game for s in train} & {s.game for s in heldout}
    assert split_by_game(steps, 0.1, seed=0) == (train, heldout)


def test_a_prompt_that_is_not_the_built_prompt_is_refused(tiny_corpus: Path) -> None:
    manifest = CorpusManifest.load(tiny_corpus)
    steps = list(read_records(tiny_corpus / "records.jsonl"))
    builder = prompt_builder_for(manifest, template_tokenizer())
    check_prompts(steps, builder)
    steps[1].prompt = steps[1].prompt.replace("Valid actions:", "Actions:")
    with pytest.raises(PriorZeroInputError, match="stored prompt is not what PromptBuilder builds"):
        check_prompts(steps, builder)
    other = PromptBuilder(template_tokenizer(), history_len=manifest.prompt.history_len - 1, notes=manifest.prompt.notes)
    with pytest.raises(PriorZeroInputError, match="stored prompt"):
        check_prompts(list(read_records(tiny_corpus / "records.jsonl")), other)
    # A record whose notes the corpus's settings would not show is refused, even when its prompt
    # was rendered from them.
    noted = list(read_records(tiny_corpus / "records.jsonl"))
    late = max(noted, key=lambda s: s.step)
    late.notes = [["examine cookbook", "Recipe #1"]]
    late.prompt = builder.render(late.note_list(), late.history_steps(), late.observation, late.candidates)
    assert manifest.prompt.notes == 0
    with pytest.raises(PriorZeroInputError, match=f"{late.game} step {late.step}: the stored prompt"):
        check_prompts(noted, builder)


def test_a_prompt_longer_than_the_context_fails_loudly(tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = list(read_records(tiny_corpus / "records.jsonl"))
    tokenizer = train_tokenizer([s.prompt for s in steps], 400)
    longest = check_context(steps, tokenizer, 4096)
    assert longest > 128  # the default prompt is longer than the 128 tokens some encoders cut to
    with pytest.raises(PriorZeroInputError, match="raise --max-context"):
        check_context(steps, tokenizer, longest - 1)
    with pytest.raises(SystemExit):
        main(["pretrain-prior", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "p"), "--max-context", "128", *TINY])
    assert "raise --max-context" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_bad_corpora_and_outputs_are_refused_before_training(
    tiny_corpus: Path, tiny_test_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["--corpus", str(tiny_test_corpus)], "test-split corpus where a train-split one is needed"),
        (["--corpus", str(tiny_corpus), "--test-corpus", str(tiny_corpus)], "train-split corpus where a test-split"),
        (["--corpus", str(tmp_path / "none")], "no corpus manifest"),
        (["--corpus", str(tiny_corpus), "--hidden-size", "30"], "hidden_size"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["pretrain-prior", "--out", str(tmp_path / "p"), *TINY, *args])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        main(["pretrain-prior", "--corpus", str(tiny_corpus), "--out", str(precious), *TINY])
    assert "is not a pretrained prior" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"

    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_corpus, tampered)
    with open(tampered / "records.jsonl", "a") as handle:
        handle.write("\n")
    with pytest.raises(SystemExit):
        main(["pretrain-prior", "--corpus", str(tampered), "--out", str(tmp_path / "p"), *TINY])
    assert "SHA-256" in capsys.readouterr().err


def test_prior_only_and_random_play(tiny_test_corpus: Path, tiny_lm_path: Path) -> None:
    game = next((tiny_test_corpus / "games").glob("*.z8"))
    assert play_random(game, max_steps=10, episodes=3, seed=1) == play_random(game, max_steps=10, episodes=3, seed=1)
    model, tokenizer = load_llm(tiny_lm_path)
    builder = PromptBuilder(tokenizer, history_len=2)
    score = play_prior_only(model, tokenizer, game, builder, length_normalise=True, max_steps=5)
    assert 0.0 <= score <= 1.0
    sampled = [
        play_prior_only(model, tokenizer, game, builder, length_normalise=True, max_steps=5, rng=np.random.default_rng(s), episodes=2)
        for s in (3, 3)
    ]
    assert sampled[0] == sampled[1] and 0.0 <= sampled[0] <= 1.0


def test_sampled_prior_play_follows_the_prior(tiny_test_corpus: Path, tiny_lm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prior that puts (almost) all its mass on the walkthrough action plays the walkthrough when
    sampled, to the full score."""
    from priorzero_pl.envs import TextGame
    from priorzero_pl.pretraining import prior_play

    game = next((tiny_test_corpus / "games").glob("*.z8"))
    with TextGame(game, max_steps=100) as probe:
        walkthrough = iter(probe.walkthrough() or [])
    model, tokenizer = load_llm(tiny_lm_path)

    def walkthrough_prior(model, tokenizer, prompts, candidates, length_normalise):  # noqa: ANN001
        target = next(walkthrough)
        return [torch.tensor([50.0 if c == target else 0.0 for c in candidates[0]])]

    monkeypatch.setattr(prior_play, "candidate_logprobs", walkthrough_prior)
    score = play_prior_only(
        model, tokenizer, game, PromptBuilder(tokenizer), length_normalise=True, max_steps=100, rng=np.random.default_rng(0)
    )
    assert score == 1.0


def test_embedded_is_the_shipped_pretrained_prior() -> None:
    """``llm.path: embedded`` loads the shipped prior, which beats uniform on unseen games by the bar
    the project set (top-1 at least twice uniform's), and debug.yaml scores it as it was trained."""
    import yaml

    from priorzero_pl.assets.embedded import PRETRAINED_PRIOR, embedded_game_spec, embedded_llm
    from priorzero_pl.corpus.manifest import assert_disjoint, assert_not_in_corpus

    path = embedded_llm()
    assert path == PRETRAINED_PRIOR
    assert (path / "model.safetensors").stat().st_size < 8 * 2**20
    model, tokenizer = load_llm(path)
    assert model.config.max_position_embeddings >= 2048

    report = json.loads((path / "pretraining.json").read_text())
    assert report["test"]["top1"] >= 2 * report["test"]["uniform_top1"]
    corpus = CorpusManifest.load(path / "corpus_manifest.json")
    test = CorpusManifest.load(path / "test_manifest.json")
    assert (corpus.split, test.split) == ("train", "test")
    assert_disjoint(test, corpus)
    for manifest in (corpus, test):  # the demo's game is unseen too
        assert_not_in_corpus(embedded_game_spec(), manifest)
        assert embedded_game_spec().seed not in {g.spec["seed"] for g in manifest.games}

    debug = Path(__file__).resolve().parents[1] / "configs" / "debug.yaml"
    model_section = yaml.safe_load(debug.read_text())["model"]
    prior = model_section["prior"]
    assert model_section["llm"]["path"] == "embedded"
    assert prior["history_len"] == corpus.prompt.history_len
    assert prior["max_observation_chars"] == corpus.prompt.max_observation_chars
    assert prior["notes"] == corpus.prompt.notes
    assert prior.get("use_chat_template", True) == corpus.prompt.use_chat_template
    assert prior["length_normalise"] == report["config"]["length_normalise"]
    assert tokenizer.chat_template == corpus.prompt.chat_template
