"""Does the LLM prior make the agent better on games it never saw? Normalized score vs env steps.

Evaluation games are test-split TextWorld games that no test, corpus or tuning run uses (seeds
from :data:`EVAL_SEED_START`): ``--games-per-level`` ``tw-cooking --split test`` games at each of
three difficulty levels (:data:`LEVELS`) plus one ``tw-simple --test`` game. The benchmark refuses
to run (exit code 2) when any of them is a game of the LLM's corpus manifests (the ones
``priorzero pretrain-prior`` copies into the model directory), or when the LLM directory has no
corpus manifest to check against.

On each game and seed, four agents:

* ``agent``: world model + LLM prior (configs/debug.yaml), trained for ``--steps`` steps;
* ``uniform_prior``: the same agent, same steps and so the same env-step budget, uniform prior (no LLM);
* ``prior_only``: the pretrained LLM alone, no search: greedy (one deterministic episode per game)
  and sampled from its distribution over the candidates (the headline figure);
* ``random``: uniform over the candidates.

The trained agents' eval normalized score (``data.eval_episodes`` greedy episodes at the module's
``eval_seed``) is recorded before training and every ``--steps // --evals`` training steps; the two
train for the same steps and so collect the same env steps (both budgets are in the JSON).
Prior-only and random do not train: they are flat lines.
Writes ``learning-<date>.json`` (headline means over games and seeds, per-level and per-game
figures, the curves) and one plot per level ``learning-<date>-<level>.png`` into ``--out``; the
last line printed is the JSON object without the curves.

    python benchmarks/learning.py                                   # the benchmark
    python benchmarks/learning.py --steps 4 --seeds 0 --games-per-level 1 --out /tmp/learning  # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callbacks.access import collection  # noqa: E402
from priorzero_pl.assets.embedded import cache_root, embedded_llm  # noqa: E402
from priorzero_pl.corpus.manifest import CorpusManifest, assert_not_in_corpus  # noqa: E402
from priorzero_pl.corpus.spec import GameSpec  # noqa: E402
from priorzero_pl.errors import PriorZeroInputError  # noqa: E402
from priorzero_pl.pretraining.command import CORPUS_MANIFEST_FILE, REPORT_FILE, TEST_MANIFEST_FILE  # noqa: E402

DEBUG_CONFIG = ROOT / "configs" / "debug.yaml"

LEVELS: dict[str, tuple[str, dict[str, object]]] = {
    "easy": ("tw-cooking", {"recipe": 1, "take": 1, "go": 1}),
    "medium": ("tw-cooking", {"recipe": 2, "take": 2, "go": 6, "open": True, "cut": True}),
    "hard": ("tw-cooking", {"recipe": 3, "take": 3, "go": 6, "open": True, "cut": True, "cook": True}),
    "simple": ("tw-simple", {"rewards": "dense", "goal": "detailed"}),
}
"""Level name -> (family, tw-make options); the split option comes from ``GameSpec(split="test")``."""
SINGLE_GAME_LEVELS = {"simple"}
"""Levels with one game whatever ``--games-per-level`` (the unseen tw-simple game)."""
EVAL_SEED_START = 90_001
"""Game ``j`` of level ``i`` has seed ``EVAL_SEED_START + SEED_STRIDE * i + j``: a range of its own,
below the corpus seeds (100000 up), above the test corpus's (1-24) and the tests' small seeds, and
the same games whatever ``--games-per-level`` (a smaller run plays a prefix of each level)."""
SEED_STRIDE = 10

DEFAULT_STEPS = 80
"""Sized to the 45-minute bar on 2 cores: a partial run at 100 steps on 2026-12-03 took 100-224 s
per fit with the LLM prior (easy to hard) and 34-47 s without, about 55-60 minutes for 7 games x
2 seeds; 80 steps cuts the fits by a fifth."""
RANDOM_EPISODES = 20
"""Random play is noisy and cheap: more episodes than the sampled prior."""
SAMPLED_PRIOR_EPISODES = 5
"""Episodes per seed that sample from the LLM alone (each step scores every candidate)."""

# Callbacks that only observe (evaluation, transcripts, checkpoints) cost time and change nothing
# the curves measure; the uniform-prior agent has no LLM to train, so its LLM callbacks go too.
OBSERVERS = {"callbacks.Evaluation", "callbacks.Transcripts", "callbacks.Checkpointing"}
LLM_TRAINING = {"callbacks.RFT", "callbacks.PPO", "callbacks.VLLMWeightSync"}
TRAINED_AGENTS = ("agent", "uniform_prior")


@dataclass(frozen=True)
class EvalGame:
    """One evaluation game: its level and spec, and the built ``.z8`` (None until built)."""

    level: str
    spec: GameSpec
    path: Path | None = None


def evaluation_games(games_per_level: int) -> list[EvalGame]:
    """The benchmark's games, level by level (not yet built)."""
    if not 1 <= games_per_level <= SEED_STRIDE:
        raise PriorZeroInputError(f"--games-per-level {games_per_level}: must be 1-{SEED_STRIDE}")
    games = []
    for i, (level, (family, options)) in enumerate(LEVELS.items()):
        count = 1 if level in SINGLE_GAME_LEVELS else games_per_level
        for j in range(count):
            spec = GameSpec(family=family, seed=EVAL_SEED_START + SEED_STRIDE * i + j, split="test", options=dict(options))
            games.append(EvalGame(level, spec))
    return games


def corpus_manifests(llm: Path) -> list[tuple[str, CorpusManifest]]:
    """The corpus manifests ``priorzero pretrain-prior`` copied into ``llm``: the training corpus
    (required: without it nothing says which games the prior saw) and the test corpus, if any."""
    if not (Path(llm) / CORPUS_MANIFEST_FILE).is_file():
        raise PriorZeroInputError(
            f"{llm} has no {CORPUS_MANIFEST_FILE}: cannot check that the evaluation games are unseen; use a prior "
            "built by `priorzero pretrain-prior`, which copies its corpus manifest into the model directory"
        )
    names = [CORPUS_MANIFEST_FILE] + ([TEST_MANIFEST_FILE] if (Path(llm) / TEST_MANIFEST_FILE).is_file() else [])
    return [(name, CorpusManifest.load(Path(llm) / name)) for name in names]


def check_unseen(games: Sequence[EvalGame], llm: Path) -> None:
    """Raise :class:`PriorZeroInputError` when any evaluation game is a game of ``llm``'s corpus
    manifests: by spec (family, seed, settings) always, and by TextWorld uuid once built."""
    for name, manifest in corpus_manifests(llm):
        for game in games:
            try:
                assert_not_in_corpus(game.spec, manifest)
                if game.path is not None:
                    assert_not_in_corpus(game.path, manifest)
            except PriorZeroInputError as exc:
                raise PriorZeroInputError(f"{exc} (listed in {Path(llm) / name}); refusing to benchmark on it") from exc


def build_games(games: Sequence[EvalGame], out_dir: Path) -> list[EvalGame]:
    """Build (or find) every game's ``.z8``."""
    return [EvalGame(g.level, g.spec, g.spec.make(out_dir)) for g in games]


def heldout_top1(llm: Path) -> dict[str, float | None]:
    """The prior's and a uniform guess's top-1 on the walkthrough actions of unseen test-split
    games, as ``priorzero pretrain-prior`` measured them (None where its report has no test section)."""
    report_path = Path(llm) / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    test = report.get("test") or {}
    return {"prior_top1_heldout": test.get("top1"), "uniform_top1_heldout": test.get("uniform_top1")}


class EvalCurve(L.Callback):
    """Records (env steps, eval/normalized_score) after every validation run."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get("eval/normalized_score")
        if score is not None:
            self.points.append((int(collection(trainer, "EvalCurve").env_steps), float(score)))


def callbacks_overlay(variant: str, out: Path) -> Path:
    """configs/debug.yaml's callbacks less those the variant does not need, as a config overlay."""
    dropped = OBSERVERS | (LLM_TRAINING if variant == "uniform_prior" else set())
    callbacks = yaml.safe_load(DEBUG_CONFIG.read_text())["trainer"]["callbacks"]
    path = out / f"callbacks-{variant}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [c for c in callbacks if c["class_path"] not in dropped]}}))
    return path


def _base_args(game: Path, llm: Path, max_episode_steps: int) -> list[str]:
    return ["--config", str(DEBUG_CONFIG), f"--data.game={game}", f"--model.llm.path={llm}", f"--data.max_episode_steps={max_episode_steps}"]


def run_variant(
    variant: str, seed: int, steps: int, evals: int, game: Path, llm: Path, max_episode_steps: int, out: Path
) -> list[tuple[int, float]]:
    """Train one agent on ``game`` and return its eval curve: before training, then every
    ``steps // evals`` training steps."""
    from priorzero_pl.cli import build_cli

    args = [
        *_base_args(game, llm, max_episode_steps), "--config", str(callbacks_overlay(variant, out)),
        f"--seed_everything={seed}", f"--data.seed={seed}",
        f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={max(steps // evals, 1)}",
        f"--trainer.default_root_dir={out}", f"--trainer.logger.init_args.save_dir={out}",
        f"--trainer.logger.init_args.name={game.stem}-{variant}-seed{seed}",
        "--trainer.enable_progress_bar=false",
        # validate() then fit() in one process: torchmetrics states made under inference mode
        # could not be updated in fit's validation.
        "--trainer.inference_mode=false",
    ]
    if variant == "uniform_prior":
        args += ["--model.prior.backends=[uniform]", "--model.llm.train=false"]
    cli = build_cli(args, run=False)
    curve = EvalCurve()
    cli.trainer.callbacks.append(curve)
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    curve.points[0] = (0, curve.points[0][1])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return curve.points


def play_baselines(game: Path, llm: Path, seeds: Sequence[int], max_episode_steps: int) -> dict[str, Any]:
    """The untrained agents on ``game``: the pretrained LLM alone (greedy once, sampled per seed)
    and random play (per seed), at the trained agents' episode step limit and prompt settings."""
    from priorzero_pl.cli import build_cli
    from priorzero_pl.episodes import play_random_episodes
    from priorzero_pl.pretraining.prior_play import play_prior_only

    cli = build_cli(_base_args(game, llm, max_episode_steps), run=False)
    module, datamodule = cli.model, cli.datamodule
    prior = {"length_normalise": module.prior_config.length_normalise, "max_steps": max_episode_steps}
    greedy = play_prior_only(module.llm, module.tokenizer, game, module.prompt_builder, **prior)
    sampled = [
        play_prior_only(
            module.llm, module.tokenizer, game, module.prompt_builder, **prior,
            rng=np.random.default_rng(seed), episodes=SAMPLED_PRIOR_EPISODES,
        )
        for seed in seeds
    ]
    random = [
        float(np.mean([r.normalized_score for r in play_random_episodes(game, episodes=RANDOM_EPISODES, seed=seed, **datamodule.game_kwargs())]))
        for seed in seeds
    ]
    return {"prior_greedy": greedy, "prior_sampled": sampled, "random": random}


def mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[float, float]]:
    """Point-by-point mean of curves recorded at the same training steps (mean env steps, mean score)."""
    length = min(len(c) for c in curves)
    return [(float(np.mean([c[i][0] for c in curves])), float(np.mean([c[i][1] for c in curves]))) for i in range(length)]


def env_steps_to_final(curve: Sequence[tuple[float, float]]) -> float:
    """The first env step at which ``curve`` reaches its final value."""
    final = curve[-1][1]
    return next(x for x, y in curve if y >= final - 1e-9)


def summarise(games: Sequence[EvalGame], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Headline, per-level and per-game figures from each game's curves and baselines."""

    def figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        agent_curves = {v: mean_curve([c for r in rows for c in r["curves"][v]]) for v in TRAINED_AGENTS}
        return {
            "agent_normalized_score": float(np.mean([c[-1][1] for r in rows for c in r["curves"]["agent"]])),
            "uniform_prior_normalized_score": float(np.mean([c[-1][1] for r in rows for c in r["curves"]["uniform_prior"]])),
            "prior_only_normalized_score": float(np.mean([s for r in rows for s in r["prior_sampled"]])),
            "prior_greedy_normalized_score": float(np.mean([r["prior_greedy"] for r in rows])),
            "random_normalized_score": float(np.mean([s for r in rows for s in r["random"]])),
            "env_step_budget": {v: float(np.mean([c[-1][0] for r in rows for c in r["curves"][v]])) for v in TRAINED_AGENTS},
            "env_steps_to_final": {v: env_steps_to_final(agent_curves[v]) for v in TRAINED_AGENTS},
            "mean_curves": agent_curves,
        }

    per_game = []
    for game, result in zip(games, results):
        assert game.path is not None
        per_game.append({"level": game.level, **game.spec.to_dict(), "file": game.path.name, **result, **figures([result])})
    levels = {level: figures([r for g, r in zip(games, results) if g.level == level]) for level in dict.fromkeys(g.level for g in games)}
    return {"overall": figures(results), "levels": levels, "games": per_game}


def plot_level(level: str, rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Eval normalized score vs env steps on one level: every run thin, the mean bold; the
    untrained agents' means as flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, color in zip(TRAINED_AGENTS, ("tab:blue", "tab:orange")):
        for run in (c for r in rows for c in r["curves"][variant]):
            ax.plot(*zip(*run), color=color, alpha=0.25, linewidth=1)
        ax.plot(*zip(*mean_curve([c for r in rows for c in r["curves"][variant]])), color=color, linewidth=2.5, marker="o", markersize=4, label=variant)
    flat = {
        "prior only, sampled": (np.mean([s for r in rows for s in r["prior_sampled"]]), "tab:green", "-"),
        "prior only, greedy": (np.mean([r["prior_greedy"] for r in rows]), "tab:green", ":"),
        "random": (np.mean([s for r in rows for s in r["random"]]), "tab:gray", "--"),
    }
    for label, (value, color, style) in flat.items():
        ax.axhline(value, color=color, linestyle=style, label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval normalized score")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"priorzero-pl, unseen {level} games ({len(rows)}: {', '.join(str(r['seed']) for r in rows)})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps per fit (both trained agents)")
    parser.add_argument("--evals", type=int, default=5, help="evaluations during each fit (plus one before it)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--games-per-level", type=int, default=2, help="tw-cooking games per level (tw-simple: always 1)")
    parser.add_argument("--max-episode-steps", type=int, default=None, help="episode step limit (default: configs/debug.yaml's)")
    parser.add_argument("--llm", type=Path, default=None, help="the prior's model directory (default: the embedded pretrained prior)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; raises :class:`PriorZeroInputError` (before any fit) on an evaluation game the prior saw."""
    opts = parse_args(argv)
    llm = (opts.llm or embedded_llm()).resolve()
    max_episode_steps = opts.max_episode_steps or int(yaml.safe_load(DEBUG_CONFIG.read_text())["data"]["max_episode_steps"])
    started = time.perf_counter()
    games = evaluation_games(opts.games_per_level)
    check_unseen(games, llm)
    games = build_games(games, cache_root() / "games")
    check_unseen(games, llm)
    runs_dir = cache_root() / "learning-runs"
    results: list[dict[str, Any]] = []
    fit_seconds: list[float] = []
    for game in games:
        assert game.path is not None
        result: dict[str, Any] = {"curves": {v: [] for v in TRAINED_AGENTS}, "fit_seconds": {v: [] for v in TRAINED_AGENTS}}
        for seed in opts.seeds:
            for variant in TRAINED_AGENTS:
                t0 = time.perf_counter()
                curve = run_variant(variant, seed, opts.steps, opts.evals, game.path, llm, max_episode_steps, runs_dir)
                fit_seconds.append(time.perf_counter() - t0)
                result["fit_seconds"][variant].append(round(fit_seconds[-1], 1))
                result["curves"][variant].append(curve)
                print(f"{game.level} {game.path.stem} {variant} seed {seed}: {curve}  ({fit_seconds[-1]:.0f} s)", flush=True)
        t0 = time.perf_counter()
        result.update(play_baselines(game.path, llm, opts.seeds, max_episode_steps))
        result["baseline_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{game.level} {game.path.stem} prior greedy {result['prior_greedy']:.3f} sampled {result['prior_sampled']} random {result['random']}", flush=True)
        results.append(result)
    summary = summarise(games, results)
    date = datetime.date.today().isoformat()
    opts.out.mkdir(parents=True, exist_ok=True)
    plots = {}
    for level in summary["levels"]:
        plots[level] = opts.out / f"learning-{date}-{level}.png"
        plot_level(level, [g for g in summary["games"] if g["level"] == level], plots[level])
    overall = summary["overall"]
    result = {
        **{k: overall[k] for k in (
            "agent_normalized_score", "uniform_prior_normalized_score", "prior_only_normalized_score",
            "prior_greedy_normalized_score", "random_normalized_score", "env_step_budget", "env_steps_to_final",
        )},
        **heldout_top1(llm),
        "llm": _relative(llm),
        "seeds": opts.seeds,
        "train_steps": opts.steps,
        "max_episode_steps": max_episode_steps,
        "sampled_prior_episodes_per_seed": SAMPLED_PRIOR_EPISODES,
        "random_episodes_per_seed": RANDOM_EPISODES,
        "levels": {level: {k: v for k, v in figures.items() if k != "mean_curves"} for level, figures in summary["levels"].items()},
        "per_game": [
            {k: g[k] for k in ("level", "family", "split", "options", "seed", "file", "agent_normalized_score",
                               "uniform_prior_normalized_score", "prior_only_normalized_score",
                               "prior_greedy_normalized_score", "random_normalized_score", "env_step_budget",
                               "fit_seconds", "baseline_seconds")}
            for g in summary["games"]
        ],
        "fit_seconds_mean": round(float(np.mean(fit_seconds)), 1),
        "plots": {level: _relative(p) for level, p in plots.items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    full = {**result, "curves": [{"file": g["file"], **g["curves"]} for g in summary["games"]],
            "mean_curves": {level: f["mean_curves"] for level, f in summary["levels"].items()}}
    (opts.out / f"learning-{date}.json").write_text(json.dumps(full, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except PriorZeroInputError as error:
        print(f"benchmarks/learning.py: {error}", file=sys.stderr)
        sys.exit(2)
