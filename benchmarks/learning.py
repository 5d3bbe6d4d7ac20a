"""Does the agent learn, and does the LLM prior help? Evaluation normalized score vs env steps.

On a generated TextWorld game that no test uses (``tw-simple --rewards dense``, seed 11), with the
same env-step budget: (a) the agent (world model + LLM prior, LLM distilled), (b) the same agent
with a uniform prior (LLM off), (c) a random agent; 3 seeds each. Writes
``benchmarks/results/learning-<date>.json`` and ``learning-<date>.png``; the last line printed is
the JSON object.

    python benchmarks/learning.py [--steps 300] [--seeds 0 1 2]

The tiny embedded LM is random-initialised, so its prior carries no knowledge of the game: (a) vs
(b) measures the cost or benefit of the prior machinery itself, not of a pretrained LLM's priors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from priorzero_pl.assets.embedded import cache_root, embedded_llm  # noqa: E402
from priorzero_pl.cli import build_cli  # noqa: E402
from priorzero_pl.envs.textworld_make import make_game  # noqa: E402
from priorzero_pl.episodes import play_random_episodes  # noqa: E402

GAME_FAMILY, GAME_SEED = "tw-simple", 11
DEBUG_CONFIG = ROOT / "configs" / "debug.yaml"
# Callbacks that only observe (evaluation, transcripts, checkpoints) cost time and change nothing
# the curves measure; the uniform-prior agent has no LLM to train, so its LLM callbacks go too.
OBSERVERS = {"callbacks.Evaluation", "callbacks.Transcripts", "callbacks.Checkpointing"}
LLM_TRAINING = {"callbacks.RFT", "callbacks.PPO", "callbacks.VLLMWeightSync"}


class EvalCurve(L.Callback):
    """Records (env steps, eval/normalized_score) after every validation run."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get("eval/normalized_score")
        if score is not None:
            self.points.append((int(trainer.datamodule.env_steps), float(score)))


def callbacks_overlay(variant: str, out: Path) -> Path:
    """configs/debug.yaml's callbacks less those the variant does not need, as a config overlay."""
    dropped = OBSERVERS | (LLM_TRAINING if variant == "uniform_prior" else set())
    callbacks = yaml.safe_load(DEBUG_CONFIG.read_text())["trainer"]["callbacks"]
    path = out / f"callbacks-{variant}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [c for c in callbacks if c["class_path"] not in dropped]}}))
    return path


def run_variant(variant: str, seed: int, steps: int, game: Path, llm: Path, out: Path) -> list[tuple[int, float]]:
    args = [
        "--config", str(DEBUG_CONFIG), "--config", str(callbacks_overlay(variant, out)),
        f"--seed_everything={seed}", f"--data.seed={seed}",
        f"--data.game={game}", f"--model.llm.path={llm}",
        f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={max(steps // 6, 1)}",
        f"--trainer.default_root_dir={out}", f"--trainer.logger.init_args.save_dir={out}",
        f"--trainer.logger.init_args.name={variant}-seed{seed}",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    opts = parser.parse_args()
    game = make_game(cache_root() / "games", family=GAME_FAMILY, seed=GAME_SEED)
    llm = embedded_llm()
    runs_dir = cache_root() / "learning-runs"
    curves: dict[str, list[list[tuple[int, float]]]] = {"agent": [], "uniform_prior": []}
    started = time.perf_counter()
    for seed in opts.seeds:
        for variant in curves:
            t0 = time.perf_counter()
            curves[variant].append(run_variant(variant, seed, opts.steps, game, llm, runs_dir))
            print(f"{variant} seed {seed}: {curves[variant][-1]}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    # Same step limit as the agents' episodes.
    max_steps = yaml.safe_load(DEBUG_CONFIG.read_text())["data"]["max_episode_steps"]
    random_scores = [
        float(np.mean([r.normalized_score for r in play_random_episodes(game, episodes=20, seed=seed, max_steps=max_steps)]))
        for seed in opts.seeds
    ]
    final = {v: float(np.mean([c[-1][1] for c in cs])) for v, cs in curves.items()}
    budget = int(np.mean([c[-1][0] for c in curves["agent"]]))
    print(f"random agent normalized score per seed: {random_scores}")
    date = datetime.date.today().isoformat()
    opts.out.mkdir(parents=True, exist_ok=True)
    plot_path = opts.out / f"learning-{date}.png"
    _plot(curves, float(np.mean(random_scores)), plot_path, game.name)
    result = {
        "game": f"{GAME_FAMILY} --rewards dense --goal detailed --seed {GAME_SEED}",
        "seeds": opts.seeds,
        "train_steps": opts.steps,
        "env_step_budget": budget,
        "agent_normalized_score": final["agent"],
        "uniform_prior_normalized_score": final["uniform_prior"],
        "random_normalized_score": float(np.mean(random_scores)),
        "curves": curves,
        "plot": str(plot_path.relative_to(ROOT)) if plot_path.is_relative_to(ROOT) else str(plot_path),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (opts.out / f"learning-{date}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "curves"}))


def _plot(curves: dict[str, list[list[tuple[int, float]]]], random_score: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (variant, runs), color in zip(curves.items(), ("tab:blue", "tab:orange")):
        for i, run in enumerate(runs):
            xs, ys = zip(*run)
            ax.plot(xs, ys, color=color, alpha=0.8, label=variant if i == 0 else None, marker="o", markersize=3)
    ax.axhline(random_score, color="tab:gray", linestyle="--", label="random")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval normalized score")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"priorzero-pl on {title}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
