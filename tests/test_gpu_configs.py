"""The GPU configs (``configs/gpu.yaml`` + a game overlay), read on a CPU: their DeepSpeed strategy
gets through Lightning's config set-up, and ``configs/cpu.yaml`` turns them into a CPU run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from priorzero_pl.cli import build_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
GAMES = ["zork1", "detective", "textworld"]


def gpu_args(name: str, tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> list[str]:
    return [
        "--config", str(CONFIGS / "gpu.yaml"),
        "--config", str(CONFIGS / f"{name}.yaml"),
        f"--model.llm.path={tiny_lm_path}",
        f"--data.game={tw_game_path}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]


def test_deepspeed_setup_needs_no_batch_sampler(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    """Lightning's ``DeepSpeedStrategy.setup`` formats the DeepSpeed config first; without a micro
    batch size in it, it reads ``train_dataloader.batch_sampler.batch_size``, and the streaming
    loader (``batch_size=None``) has no batch sampler: ``AttributeError`` before the first step.
    The config declares the micro batch size, so that lookup never happens. (Only the accelerator
    is swapped for the CPU; the strategy is the base config's own, which no game overlay touches.)"""
    pytest.importorskip("deepspeed")
    from lightning.pytorch.strategies import DeepSpeedStrategy

    args = gpu_args("textworld", tmp_path, tiny_lm_path, tw_game_path)
    cli = build_cli([*args, "--trainer.accelerator=cpu"], run=False)
    trainer, strategy = cli.trainer, cli.trainer.strategy
    assert isinstance(strategy, DeepSpeedStrategy)
    # What Trainer.fit does before strategy.setup: the module meets the trainer, the data is attached.
    cli.model.trainer = trainer
    strategy.connect(cli.model)
    trainer._data_connector.attach_data(cli.model, datamodule=cli.datamodule)
    assert trainer.fit_loop._data_source.dataloader().batch_sampler is None
    strategy._init_config_if_needed()
    assert strategy.config["train_micro_batch_size_per_gpu"] == cli.datamodule.batch_size
    assert strategy.config["zero_optimization"]["stage"] == 2
    assert strategy.config["bf16"] == {"enabled": True}
    assert strategy.config["gradient_clipping"] == 1.0


@pytest.mark.parametrize("name", GAMES)
def test_gpu_configs_run_on_cpu_with_one_overlay(name: str, tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    base = yaml.safe_load((CONFIGS / "gpu.yaml").read_text())
    strategy = base["trainer"]["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.DeepSpeedStrategy"
    assert strategy["init_args"]["stage"] == 2
    assert strategy["init_args"]["logging_batch_size_per_gpu"] == base["data"]["batch_size"]
    assert base["trainer"]["precision"] == "bf16-mixed"
    cli = build_cli([*gpu_args(name, tmp_path, tiny_lm_path, tw_game_path), "--config", str(CONFIGS / "cpu.yaml")], run=False)
    assert type(cli.trainer.strategy).__name__ == "SingleDeviceStrategy"
    assert cli.trainer.precision == "bf16-mixed"
    assert cli.model.prior_config.backends == ["hf", "uniform"]


@pytest.mark.parametrize("name", ["zork1", "detective"])
def test_game_overlays_name_their_game_and_run_folder(name: str) -> None:
    overlay = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert overlay["data"]["game"] == name
    assert overlay["trainer"]["default_root_dir"] == f"runs/{name}"
    assert overlay["trainer"]["logger"]["init_args"]["name"] == name
