"""The one prepared GPU check (``make gpu-check``): does the GPU path run, and how fast.

On one CUDA GPU, in a few minutes, it runs

1. a DeepSpeed ZeRO-2 bf16 fit of ``configs/gpu.yaml`` + ``configs/textworld.yaml`` (shrunk, with
   RFT and PPO switched on at short periods) on a generated TextWorld game, the HF prior on the
   GPU; ``callbacks.Checkpointing`` saves ``last.ckpt``;
2. a resume from that checkpoint to more steps: step, env-step and LLM-update counters and the
   weights come back, and the fit goes on;
   in both fits RFT and PPO rounds must have fired, read from the TensorBoard scalars they logged
   (``llm/rft_loss``, ``llm/ppo_loss``);
3. pytest on ``tests/test_gpu.py`` and on the CPU tests of the GPU path's contracts (the weight
   payload through msgpack, the DeepSpeed config, scoring under gradient checkpointing, the bf16
   encoder), with this machine's library versions. The vLLM tests run where vLLM is installed;
   where it is not, one line says so and they are left out;
4. figures: HF prior candidates/s on the GPU and on the CPU (a 12-layer Llama built locally, random
   weights, prompts and candidates of the generated game), env steps/s on the game, train steps/s
   and env steps/s of the first fit, the GPU memory peak of the fits.

Each part's failure is recorded and the others still run. The last line is one JSON object with
the figures, ``ok`` and the failures; the exit code is 1 when anything failed.

``--cpu`` runs the same plumbing on a CPU (``configs/cpu.yaml`` over the GPU configs: default
strategy, bf16-mixed, tiny sizes, no GPU figures), which is how the script is tested without a GPU.
Run from the repository root: ``PYTHONPATH=. python benchmarks/gpu_check.py [--cpu]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
VLLM_TESTS = ["tests/test_gpu.py::test_vllm_prior_matches_hf_prior", "tests/test_gpu.py::test_vllm_weight_sync_scores_with_the_new_weights"]
CONTRACT_TESTS = [
    "tests/test_gpu.py",
    "tests/test_prior_vllm.py",
    "tests/test_gpu_configs.py",
    "tests/test_prior_scoring.py",
    "tests/test_world_model_pretrained.py",
]


@dataclass
class Sizes:
    """How big the check's fits are (``--cpu`` shrinks them to run in minutes on two cores)."""

    first_steps: int
    """Optimizer steps of the first fit; it ends with a checkpoint."""
    resumed_steps: int
    """``max_steps`` of the resumed fit (so it runs ``resumed_steps - first_steps`` more)."""
    llm_round_every: int
    """RFT and PPO period in steps; also the checkpoint period."""
    num_envs: int
    batch_size: int
    collect_steps: int
    batches_per_collect: int
    warmup_steps: int
    max_episode_steps: int
    num_simulations: int
    env_bench_steps: int
    prior_seconds: float
    """Wall time per side for the prior throughput figure."""

    def __post_init__(self) -> None:
        # last.ckpt must be the first fit's end, and in each fit a round must fire and both of its
        # objectives be applied: the module applies one queued minibatch per step, RFT queues one
        # (its minibatch is larger than a round's rows) and PPO's follow, so the first PPO minibatch
        # of a round at step r is applied at step r + 2.
        every = self.llm_round_every
        if self.first_steps % every or self.first_steps < every + 2 or self.resumed_steps < self.first_steps + every + 2:
            raise ValueError(
                f"first_steps={self.first_steps} must be a multiple of llm_round_every={every} and >= llm_round_every + 2, "
                f"and resumed_steps={self.resumed_steps} >= first_steps + llm_round_every + 2"
            )


GPU_SIZES = Sizes(16, 24, 4, 4, 16, 16, 4, 32, 12, 16, 200, 4.0)
CPU_SIZES = Sizes(6, 11, 3, 2, 4, 4, 2, 8, 6, 4, 30, 1.0)


class Check:
    """Runs named parts, keeps going past a failure, and gathers figures and failures."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.failures: list[str] = []

    def part(self, name: str, run: Callable[[], None]) -> None:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - one part failing must not hide the others' results
            traceback.print_exc()
            self.failures.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        self.figures[f"seconds_{name}"] = round(time.perf_counter() - start, 1)


# ------------------------------------------------------------------------------------------ fits
def overlay(run_dir: Path, sizes: Sizes, *, cpu: bool, max_steps: int) -> Path:
    """The check's own config, last on the command line: small sizes, RFT and PPO on, logs per step."""
    every = sizes.llm_round_every
    trainer: dict[str, Any] = {
        "max_steps": max_steps,
        "limit_val_batches": 0,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "default_root_dir": str(run_dir),
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": str(run_dir), "name": "gpu-check"},
        },
        "callbacks": [
            {"class_path": "callbacks.Checkpointing", "init_args": {"every_n_steps": every, "keep_last": 1}},
            {"class_path": "callbacks.GracefulFallback"},
            {"class_path": "callbacks.RFT", "init_args": {"every_n_steps": every, "recent_episodes": 8, "top_fraction": 0.5, "minibatch_size": 512}},
            {"class_path": "callbacks.PPO", "init_args": {"every_n_steps": every, "recent_episodes": 8, "epochs": 1, "minibatch_size": 16}},
            {"class_path": "callbacks.VLLMWeightSync", "init_args": {"every_n_llm_updates": every}},
        ],
    }
    if not cpu:  # the base config's strategy, its micro batch declared for these sizes
        trainer["strategy"] = {
            "class_path": "lightning.pytorch.strategies.DeepSpeedStrategy",
            "init_args": {"stage": 2, "logging_batch_size_per_gpu": sizes.batch_size},
        }
    config = {
        "trainer": trainer,
        "model": {
            "llm": {"path": "embedded", "distill_max_roots": 4},
            "world_model": {"latent_dim": 64, "embed_dim": 64, "num_layers": 1},
            "mcts": {"num_simulations": sizes.num_simulations},
            "prior": {"backends": ["hf", "uniform"], "history_len": 2, "max_observation_chars": 256, "length_normalise": True},
        },
        "data": {
            "num_envs": sizes.num_envs,
            "batch_size": sizes.batch_size,
            "collect_steps": sizes.collect_steps,
            "batches_per_collect": sizes.batches_per_collect,
            "warmup_steps": sizes.warmup_steps,
            "max_episode_steps": sizes.max_episode_steps,
        },
    }
    path = run_dir / f"check-{max_steps}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fit_args(run_dir: Path, game: Path, sizes: Sizes, *, cpu: bool, max_steps: int) -> list[str]:
    args = ["--config", str(CONFIGS / "gpu.yaml"), "--config", str(CONFIGS / "textworld.yaml")]
    if cpu:
        args += ["--config", str(CONFIGS / "cpu.yaml")]
    return [*args, "--config", str(overlay(run_dir, sizes, cpu=cpu, max_steps=max_steps)), f"--data.game={game}"]


class Probe(L.Callback):
    """What the check asserts on besides the logs: the state a resume starts from.

    The env-step counter is read right after the checkpoint restored it (callbacks load after the
    datamodule), because the first batch is fetched, and so a collection round run, before
    ``on_train_start``; the loop counters are restored after the callbacks, so the step, the LLM
    updates and the first world-model weight are read at ``on_train_start``."""

    def __init__(self) -> None:
        self.at_start: dict[str, Any] = {}
        self.started = 0.0

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        from callbacks.access import collection

        self.at_start["env_steps"] = collection(trainer, "gpu_check's Probe").env_steps

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()
        self.at_start.update(
            step=trainer.global_step,
            llm_updates=pl_module.llm_updates,
            weight=next(pl_module.world_model.parameters()).detach().float().cpu().clone(),
        )


def logged_steps(log_dir: str, tag: str) -> list[int]:
    """Steps at which ``tag`` was written to the TensorBoard event files in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def run_fit(args: list[str], ckpt_path: Path | None = None) -> tuple[Any, Probe, float]:
    from priorzero_pl.cli import build_cli

    cli = build_cli(args, run=False)
    probe = Probe()
    cli.trainer.callbacks.append(probe)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=None if ckpt_path is None else str(ckpt_path))
    return cli, probe, time.perf_counter() - start


def assert_llm_rounds_fired(log_dir: str, after_step: int) -> dict[str, int]:
    """RFT and PPO each applied a queued minibatch after ``after_step``: their losses are first
    logged on a step that applies one (later steps may repeat the last value). Returns the first
    logged step of each."""
    first = {}
    for tag in ("llm/rft_loss", "llm/ppo_loss"):
        steps = [step for step in logged_steps(log_dir, tag) if step >= after_step]
        assert steps, f"{tag} was never logged after step {after_step} in {log_dir}: the round did not fire"
        first[tag] = min(steps)
    return first


def fits(check: Check, work: Path, game: Path, sizes: Sizes, *, cpu: bool) -> None:
    """Parts 1 and 2: fit, checkpoint, resume."""
    run_dir = work / "runs"
    run_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()

    def first() -> None:
        cli, probe, seconds = run_fit(fit_args(run_dir, game, sizes, cpu=cpu, max_steps=sizes.first_steps))
        trainer = cli.trainer
        assert trainer.global_step == sizes.first_steps, trainer.global_step
        strategy = type(trainer.strategy).__name__
        assert cpu or strategy == "DeepSpeedStrategy", strategy
        assert cpu or next(cli.model.llm.parameters()).dtype == torch.bfloat16
        assert cpu or next(cli.model.llm.parameters()).device.type == "cuda"
        fired = assert_llm_rounds_fired(trainer.logger.log_dir, after_step=0)
        last = run_dir / "checkpoints" / "last.ckpt"
        assert last.exists(), f"no {last}"
        train_seconds = time.perf_counter() - probe.started
        state.update(
            last=last,
            step=trainer.global_step,
            llm_updates=cli.model.llm_updates,
            env_steps=cli.datamodule.env_steps,
            weight=next(cli.model.world_model.parameters()).detach().float().cpu().clone(),
        )
        check.figures.update(
            strategy=strategy,
            precision=str(trainer.precision),
            first_fit_steps=trainer.global_step,
            first_fit_seconds=round(seconds, 1),
            train_steps_per_s=round(trainer.global_step / train_seconds, 3),
            fit_env_steps_per_s=round(cli.datamodule.env_steps / train_seconds, 2),
            llm_rounds_first_fit=fired,
            checkpoint_is_directory=last.is_dir(),
        )

    def resumed() -> None:
        assert state, "the first fit did not finish: nothing to resume from"
        cli, probe, seconds = run_fit(fit_args(run_dir, game, sizes, cpu=cpu, max_steps=sizes.resumed_steps), state["last"])
        counters = ("step", "llm_updates", "env_steps")
        restored, saved = {key: probe.at_start.get(key) for key in counters}, {key: state[key] for key in counters}
        assert restored == saved, f"restored {restored}, saved {saved}"
        assert torch.equal(probe.at_start["weight"], state["weight"]), "world-model weights differ after resume"
        assert cli.trainer.global_step == sizes.resumed_steps, cli.trainer.global_step
        fired = assert_llm_rounds_fired(cli.trainer.logger.log_dir, after_step=state["step"])
        check.figures.update(resumed_from_step=state["step"], resumed_fit_seconds=round(seconds, 1), llm_rounds_resumed_fit=fired)

    check.part("fit_zero2_bf16" if not cpu else "fit_cpu", first)
    check.part("resume", resumed)
    if torch.cuda.is_available():
        check.figures["gpu_memory_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)


# ------------------------------------------------------------------------------------ figures
def game_prompts(game: Path, count: int) -> list[tuple[str, list[str]]]:
    """``count`` (prompt, candidates) pairs of the game, along random valid actions."""
    from priorzero_pl.assets.embedded import embedded_llm
    from priorzero_pl.envs import TextGame
    from priorzero_pl.llm.loading import load_llm
    from priorzero_pl.prior import PromptBuilder

    _, tokenizer = load_llm(embedded_llm())
    builder = PromptBuilder(tokenizer, history_len=2, max_observation_chars=512)
    rng = random.Random(0)
    pairs = []
    with TextGame(game, max_steps=50) as env:
        record = env.reset()
        while len(pairs) < count:
            if record.done:
                record = env.reset()
            pairs.append((builder.build([], record.observation, record.candidates), list(record.candidates)))
            record = env.step(rng.choice(record.candidates))
    return pairs


def prior_rate(model_dir: Path, device: str, pairs: list[tuple[str, list[str]]], seconds: float) -> float:
    """Candidates per second of the HF prior on ``device`` (bf16 on CUDA, fp32 on CPU)."""
    from priorzero_pl.llm import LLMPolicy, load_llm
    from priorzero_pl.prior import HFPrior

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model, tokenizer = load_llm(model_dir, dtype=dtype)
    prior = HFPrior(LLMPolicy(model.to(device), tokenizer, length_normalise=True))
    prior.score([pairs[0][0]], [pairs[0][1]])  # warm-up: kernels, allocator
    scored, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for prompt, candidates in pairs:
            prior.score([prompt], [candidates])
            scored += len(candidates)
    if device == "cuda":
        torch.cuda.synchronize()
    return scored / (time.perf_counter() - start)


def env_rate(game: Path, steps: int) -> float:
    """Env steps per second of one TextGame on the game, random valid actions."""
    from priorzero_pl.envs import TextGame

    rng = random.Random(0)
    with TextGame(game, max_steps=50) as env:
        record = env.reset()
        start = time.perf_counter()
        for _ in range(steps):
            record = env.reset() if record.done else env.step(rng.choice(record.candidates))
        return steps / (time.perf_counter() - start)


def figures(check: Check, work: Path, game: Path, sizes: Sizes, *, cpu: bool) -> None:
    from priorzero_pl.assets.tiny_lm import build_tiny_lm

    def prior() -> None:
        # Random weights cost what trained ones do; 12 layers of width 1024 (~110M parameters).
        model_dir = build_tiny_lm(work / "llama-12x1024", hidden_size=1024, num_layers=12) if not cpu else build_tiny_lm(work / "tiny_lm")
        pairs = game_prompts(game, 8)
        check.figures["prior_model"] = "llama 12x1024 (random)" if not cpu else "tiny llama 2x64 (random)"
        check.figures["prior_candidates_per_call"] = round(sum(len(c) for _, c in pairs) / len(pairs), 1)
        check.figures["prior_cand_per_s_cpu"] = round(prior_rate(model_dir, "cpu", pairs, sizes.prior_seconds), 1)
        check.figures["prior_cand_per_s_gpu"] = (
            round(prior_rate(model_dir, "cuda", pairs, sizes.prior_seconds), 1) if torch.cuda.is_available() else None
        )

    def env() -> None:
        check.figures["env_steps_per_s"] = round(env_rate(game, sizes.env_bench_steps), 1)

    check.part("prior_throughput", prior)
    check.part("env_throughput", env)


# -------------------------------------------------------------------------------------- tests
def tests(check: Check) -> None:
    """Part 3: pytest on this machine's libraries; the vLLM tests only where vLLM is."""
    has_vllm = importlib.util.find_spec("vllm") is not None
    if not has_vllm:
        print("vllm tests: SKIPPED: vLLM is not installed on this machine (it cannot travel with the working tree)")
    check.figures["vllm_tests"] = "run" if has_vllm else "skipped: vllm not installed"

    def run() -> None:
        deselect = [] if has_vllm else [arg for test in VLLM_TESTS for arg in ("--deselect", test)]
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CONTRACT_TESTS, *deselect]
        # The fits left this process's distributed rendezvous in the environment (DeepSpeed's set-up
        # exports it) and still hold its port: the tests must pick their own.
        env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        check.figures["pytest"] = summary
        assert proc.returncode == 0, f"pytest exit code {proc.returncode}: {summary}"

    check.part("pytest", run)


# --------------------------------------------------------------------------------------- main
def environment() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    versions = {name: version(name) for name in ("torch", "lightning", "transformers", "deepspeed", "vllm", "numba", "textworld", "jericho")}
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "versions": versions,
        "cuda": torch.version.cuda if cuda else None,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the same plumbing on a CPU: default strategy, tiny sizes")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--skip-tests", action="store_true", help="leave out part 3 (pytest)")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; run with --cpu to check the plumbing on a CPU", file=sys.stderr)
        return 2
    sizes = CPU_SIZES if args.cpu else GPU_SIZES
    work = args.work or Path(tempfile.mkdtemp(prefix="priorzero-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PRIORZERO_CACHE", str(work / "cache"))
    started = time.perf_counter()
    check = Check()
    check.figures.update(mode="cpu" if args.cpu else "gpu", **environment())

    from priorzero_pl.envs.textworld_make import make_game

    game = make_game(work / "games", family="tw-simple", seed=3)
    check.figures["game"] = game.name
    fits(check, work, game, sizes, cpu=args.cpu)
    figures(check, work, game, sizes, cpu=args.cpu)
    if not args.skip_tests:
        tests(check)
    check.figures["seconds_total"] = round(time.perf_counter() - started, 1)
    check.figures["ok"] = not check.failures
    check.figures["failures"] = check.failures
    print(json.dumps(check.figures))
    return 0 if not check.failures else 1


if __name__ == "__main__":
    sys.exit(main())
