"""End to end through the CLI, in-process: fit, resume, config errors, DeepSpeed config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from priorzero_pl.cli import build_cli, main

ROOT = Path(__file__).resolve().parents[1]
DEBUG = str(ROOT / "configs" / "debug.yaml")


def tiny_args(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, *, max_steps: int = 6) -> list[str]:
    """configs/debug.yaml shrunk to seconds: the session's tiny LM and game, few steps."""
    return [
        "--config", DEBUG,
        f"--model.llm.path={tiny_lm_path}",
        f"--data.game={tw_game_path}",
        f"--trainer.max_steps={max_steps}",
        "--trainer.val_check_interval=3",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        "--model.mcts.num_simulations=4",
        "--data.num_envs=2",
        "--data.batch_size=4",
        "--data.collect_steps=4",
        "--data.batches_per_collect=2",
        "--data.warmup_steps=8",
        "--data.max_episode_steps=6",
        "--model.llm.distill_max_roots=2",
    ]


@pytest.mark.slow
def test_fit_end_to_end(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    cli = build_cli(["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path)])
    trainer, dm = cli.trainer, cli.datamodule
    assert trainer.global_step == 6
    assert dm.env_steps >= 8 and dm.buffer.num_steps > 0
    logged = trainer.logged_metrics
    for key in ("world_model/total", "world_model/value_loss", "llm/distill_loss", "eval/normalized_score", "collect/env_steps"):
        assert key in logged, f"{key} not logged: {sorted(logged)}"
    assert torch.isfinite(logged["world_model/total"])
    assert 0.0 <= float(logged["eval/normalized_score"]) <= 1.0
    assert cli.model.llm_updates == 6
    assert list(Path(trainer.logger.log_dir).glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_resume_restores_counters_and_buffer(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    first = build_cli(["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=4)])
    ckpt = tmp_path / "mid.ckpt"
    first.trainer.save_checkpoint(ckpt)
    saved_buffer = first.datamodule.buffer.state_dict()
    saved = (first.trainer.global_step, first.datamodule.env_steps, first.model.llm_updates)

    class Probe:
        seen: dict = {}

    import lightning as L

    class Capture(L.Callback):
        """Data state right after restore (before the first collection round prefetches a batch);
        loop counters once the loops are restored."""

        def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            Probe.seen["env_steps"] = trainer.datamodule.env_steps
            Probe.seen["buffer"] = trainer.datamodule.buffer.state_dict()

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            Probe.seen["step"] = trainer.global_step
            Probe.seen["llm_updates"] = pl_module.llm_updates

    args = tiny_args(tmp_path / "resumed", tiny_lm_path, tw_game_path, max_steps=6)
    cli = build_cli(args, run=False)
    cli.trainer.callbacks.append(Capture())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=str(ckpt))
    assert (Probe.seen["step"], Probe.seen["env_steps"], Probe.seen["llm_updates"]) == saved
    restored = Probe.seen["buffer"]
    assert restored["segments"] and restored["segments"] == saved_buffer["segments"]
    assert cli.trainer.global_step == 6


def test_config_typo_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", DEBUG, "--model.mcts.num_simulatons=3"])
    assert exit_info.value.code != 0
    assert "num_simulatons" in capsys.readouterr().err


def test_bad_config_value_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", DEBUG, "--data.batch_size=0"])
    assert exit_info.value.code != 0
    assert "batch_size" in capsys.readouterr().err


def test_missing_game_is_one_line(tmp_path: Path, tiny_lm_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.z5"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", DEBUG, f"--model.llm.path={tiny_lm_path}", f"--data.game={missing}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("priorzero: error:") and str(missing) in last and "Traceback" not in err


def test_missing_model_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", DEBUG, f"--model.llm.path={tmp_path / 'no-model'}"])
    assert exit_info.value.code == 2
    assert "no-model" in capsys.readouterr().err


def test_print_config_shows_every_knob(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", DEBUG, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["mcts"]["num_simulations"] == 16
    assert printed["data"]["game"] == "embedded"


def test_deepspeed_stage_2_strategy_config() -> None:
    pytest.importorskip("deepspeed")
    from lightning.pytorch.strategies import StrategyRegistry

    strategy = StrategyRegistry.get("deepspeed_stage_2")
    assert strategy.config["zero_optimization"]["stage"] == 2
    assert strategy.config["zero_optimization"]["overlap_comm"] is True


@pytest.mark.slow
@pytest.mark.parametrize("preset", [None, "true"])
def test_importing_the_package_turns_tokenizer_parallelism_off_unless_set(preset: str | None) -> None:
    """Every entry (command, tests, benchmarks, callbacks, datamodules) imports ``priorzero_pl``
    first: that one place keeps tokenizers' thread pool off before anything forks."""
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    if preset is not None:
        env["TOKENIZERS_PARALLELISM"] = preset
    code = "import os, callbacks; print(os.environ['TOKENIZERS_PARALLELISM'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == (preset or "false")


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=3)
    args += ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.val_check_interval=3"]
    proc = subprocess.run(
        [sys.executable, "-m", "priorzero_pl", "fit", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_prioritized_replay_gets_value_error_priorities(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=3) + ["--data.replay.prioritized=true"]
    cli = build_cli(args, run=False)
    buffer = cli.datamodule.buffer
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    priorities = buffer.state_dict()["priorities"]
    # New steps enter at the running maximum; trained-on steps get |predicted value - target|.
    assert len(set(float(p) for p in priorities)) > 1
