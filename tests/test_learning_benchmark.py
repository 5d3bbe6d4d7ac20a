"""benchmarks/learning.py: its evaluation games are unseen test-split games, and it refuses any
game its prior's corpus manifests list, before it trains anything."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from priorzero_pl.assets.embedded import embedded_llm
from priorzero_pl.corpus.manifest import CorpusManifest, GameEntry, PromptSettings
from priorzero_pl.corpus.spec import TRAIN_SEED_START, split_rule
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.pretraining.command import CORPUS_MANIFEST_FILE, REPORT_FILE, TEST_MANIFEST_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import learning  # noqa: E402


def _write_manifest(path: Path, specs: list[dict[str, object]]) -> None:
    """A corpus manifest listing ``specs`` (only the games matter to the check)."""
    manifest = CorpusManifest(
        split="train", seed_start=0, seed_end=0, family_weights={"tw-cooking": 1.0}, cooking_options=None,
        prompt=PromptSettings("v1", 2, 256, True, None), split_rule=split_rule(),
        games=[GameEntry(id=f"game{i}", spec=spec) for i, spec in enumerate(specs)],
    )
    path.write_text(json.dumps(asdict(manifest)))


def test_evaluation_games_are_test_split_levels_on_their_own_seeds() -> None:
    games = learning.evaluation_games(2)
    assert [g.level for g in games] == ["easy", "easy", "medium", "medium", "hard", "hard", "simple"]
    assert all(g.spec.split == "test" and g.spec.seed >= learning.EVAL_SEED_START for g in games)
    assert all(g.spec.seed < TRAIN_SEED_START for g in games)
    assert len({g.spec.seed for g in games}) == len(games)
    assert learning.evaluation_games(1) == [g for g in games if g.spec.seed % learning.SEED_STRIDE == 1]
    with pytest.raises(PriorZeroInputError, match="games-per-level"):
        learning.evaluation_games(0)


def test_the_shipped_prior_never_saw_the_evaluation_games() -> None:
    learning.check_unseen(learning.evaluation_games(2), embedded_llm())


@pytest.mark.parametrize("manifest_file", [CORPUS_MANIFEST_FILE, TEST_MANIFEST_FILE])
def test_refuses_an_evaluation_game_listed_in_the_llm_dir(tmp_path: Path, manifest_file: str) -> None:
    games = learning.evaluation_games(1)
    other = {"family": "tw-cooking", "seed": 100_000, "split": "train", "options": {"recipe": 1}}
    _write_manifest(tmp_path / CORPUS_MANIFEST_FILE, [other])
    learning.check_unseen(games, tmp_path)
    _write_manifest(tmp_path / manifest_file, [other, games[2].spec.to_dict()])
    with pytest.raises(PriorZeroInputError, match=f"is a corpus game.*{manifest_file}"):
        learning.check_unseen(games, tmp_path)


def test_refuses_a_prior_without_a_corpus_manifest(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match=f"no {CORPUS_MANIFEST_FILE}"):
        learning.check_unseen(learning.evaluation_games(1), tmp_path)


def test_main_refuses_before_building_or_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = tmp_path / "llm"
    llm.mkdir()
    _write_manifest(llm / CORPUS_MANIFEST_FILE, [learning.evaluation_games(1)[0].spec.to_dict()])
    monkeypatch.setattr(learning, "build_games", lambda *a: pytest.fail("built games for a refused run"))
    monkeypatch.setattr(learning, "run_variant", lambda *a: pytest.fail("trained on a refused run"))
    with pytest.raises(PriorZeroInputError, match="refusing to benchmark"):
        learning.main(["--llm", str(llm), "--games-per-level", "1", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_heldout_top1_is_read_from_the_pretraining_report(tmp_path: Path) -> None:
    assert learning.heldout_top1(tmp_path) == {"prior_top1_heldout": None, "uniform_top1_heldout": None}
    shutil.copyfile(embedded_llm() / REPORT_FILE, tmp_path / REPORT_FILE)
    test = json.loads((tmp_path / REPORT_FILE).read_text())["test"]
    assert learning.heldout_top1(tmp_path) == {"prior_top1_heldout": test["top1"], "uniform_top1_heldout": test["uniform_top1"]}


def test_env_steps_to_final_is_the_first_step_at_the_final_score() -> None:
    curves = [[(0, 0.0), (100, 0.5), (200, 1.0), (300, 1.0)], [(0, 0.0), (110, 1.0), (210, 1.0), (310, 1.0)]]
    mean = learning.mean_curve(curves)
    assert mean == [(0.0, 0.0), (105.0, 0.75), (205.0, 1.0), (305.0, 1.0)]
    assert learning.env_steps_to_final(mean) == 205.0
    assert learning.env_steps_to_final([(0, 0.5), (10, 0.2), (20, 0.2)]) == 0
