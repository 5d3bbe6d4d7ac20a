"""The faults priorzero survives, one test each: what goes wrong, and what the user sees instead.

Read this file as the list. Each test is named for the fault; the ones that start a second
process bound it in time. "Refused before anything starts" is checked literally: loading the LLM
or entering ``Trainer.fit`` fails the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks import Checkpointing, GracefulFallback

from priorzero_pl.buffer import ReplayConfig
from priorzero_pl.cli import build_cli, main
from priorzero_pl.llm.config import LLMConfig
from priorzero_pl.optim_config import OptimConfig
from priorzero_pl.data_args import check_data_args
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.mcts import MCTSConfig, PriorWeightSchedule
from priorzero_pl.models import WorldModelConfig
from priorzero_pl.llm.loading import load_llm
from priorzero_pl.module_args import check_module_args
from priorzero_pl.prior import PriorConfig, build_prior
from priorzero_pl.run_lock import LOCK_NAME, RunLock
from tests.callback_fakes import TinyModule, tiny_trainer
from tests.test_fit import DEBUG, ROOT, tiny_args

PROCESS_TIMEOUT_S = 300
"""Upper bound on any second process these tests start (seconds when idle; a start took over 120 s on a loaded 2-core machine)."""


def replace_fit(monkeypatch: pytest.MonkeyPatch, body: Callable[..., Any]) -> None:
    """Run ``body(trainer, model, datamodule=..., ckpt_path=...)`` instead of ``Trainer.fit``.

    The stand-in keeps ``fit``'s signature: LightningCLI builds ``--ckpt_path`` from it."""

    @functools.wraps(L.Trainer.fit)
    def fit(*args: Any, **kwargs: Any) -> Any:
        return body(*args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", fit)


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the LLM or entering ``Trainer.fit`` fails the test: the fault must be caught first."""

    def llm_loaded(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the LLM was loaded before the bad input was refused")

    def fit_started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Trainer.fit started before the bad input was refused")

    monkeypatch.setattr("priorzero_pl.module.load_llm", llm_loaded)
    replace_fit(monkeypatch, fit_started)


def refusal(capsys: pytest.CaptureFixture[str], args: list[str]) -> list[str]:
    """Run the ``priorzero`` entry point, expect exit code 2, return its stderr lines."""
    with mock.patch.object(sys, "argv", ["priorzero", *args]), pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in lines if not line.startswith("Seed set to")]  # Lightning's, before any check
    assert lines and lines[0].startswith("priorzero: error: "), lines
    assert not any(line.startswith("usage:") or "Traceback" in line for line in lines), lines
    return lines


# --------------------------------------------------------------- resume (--ckpt_path)


@pytest.fixture
def saved_checkpoint(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A checkpoint's hyperparameters, as a fit with ``num_simulations=3, dropout=0.1`` saves them
    (all LightningCLI reads from a checkpoint before the fit restores it)."""
    with pytest.raises(SystemExit):
        main(["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path), "--model.mcts.num_simulations=3",
              "--model.world_model.dropout=0.1", "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    path = tmp_path / "saved.ckpt"
    torch.save({"hyper_parameters": model}, path)
    return path


def test_resume_keeps_model_settings_given_on_the_command_line(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, saved_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[str | None] = []
    notices: list[str] = []
    replace_fit(monkeypatch, lambda trainer, model, datamodule=None, ckpt_path=None, **_: fits.append(ckpt_path))
    monkeypatch.setattr("priorzero_pl.resume.rank_zero_info", notices.append)
    args = tiny_args(tmp_path / "resumed", tiny_lm_path, tw_game_path)  # gives num_simulations=4
    cli = build_cli(["fit", *args, f"--ckpt_path={saved_checkpoint}", "--model.mcts.num_simulations=5"])
    assert fits == [str(saved_checkpoint)]
    assert cli.model.mcts_config.num_simulations == 5  # given, not the checkpoint's 3
    assert cli.model.world_model.config.dropout == 0.1  # not given: the checkpoint's, as before
    assert any("model.mcts.num_simulations=5 as given, not the checkpoint's 3" in notice for notice in notices), notices


def test_resume_refuses_a_learning_rate_the_saved_optimizer_would_undo(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, saved_checkpoint: Path,
    capsys: pytest.CaptureFixture[str], nothing_starts: None,
) -> None:
    args = tiny_args(tmp_path / "resumed", tiny_lm_path, tw_game_path)
    lines = refusal(capsys, ["fit", *args, f"--ckpt_path={saved_checkpoint}", "--model.optim.world_model_lr=0.005"])
    assert "model.optim.world_model_lr=0.005 (checkpoint: 0.001)" in lines[0]
    assert "saved optimizer state" in lines[0] and "leave --ckpt_path out" in lines[0]


def test_mistyped_ckpt_path_is_one_line_before_anything_starts(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    missing = tmp_path / "checkpoints" / "lats.ckpt"
    lines = refusal(capsys, ["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path), f"--ckpt_path={missing}"])
    assert lines == [f"priorzero: error: ckpt_path={str(missing)!r} is not a file: give a checkpoint written by a fit "
                     "(e.g. <default_root_dir>/checkpoints/last.ckpt), 'last', or leave --ckpt_path out to start a new run"]


# ------------------------------------------------------------------ corrupt story files


def test_story_with_1kb_cut_is_refused_before_anything_starts(
    tmp_path: Path, shared_games_dir: Path, tiny_lm_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    cut = tmp_path / "zork1.z5"
    cut.write_bytes((shared_games_dir / "zork1.z5").read_bytes()[:-1024])
    lines = refusal(capsys, ["fit", "--config", DEBUG, f"--model.llm.path={tiny_lm_path}", f"--data.game={cut}"])
    assert len(lines) == 1
    assert str(cut) in lines[0] and "not the zork1 that Jericho knows" in lines[0]
    assert "data.allow_unverified_game: true" in lines[0]


# ------------------------------------------------------------------ validation up front


def test_negative_valid_actions_timeout_is_refused_before_anything_starts(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path)
    lines = refusal(capsys, ["fit", *args, "--data.valid_actions_timeout=-1"])
    assert lines == ["priorzero: error: data.valid_actions_timeout must be a finite number > 0, got -1.0"]


def test_prior_weight_schedule_without_mixture_is_refused_not_ignored(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path)
    overlay = tmp_path / "schedule.yaml"
    overlay.write_text("model:\n  prior_weight_schedule: {kind: linear, start: 0.5, end: 0.1, steps: 10}\n")
    lines = refusal(capsys, ["fit", *args, f"--config={overlay}", "--model.mcts.prior_mode=replace"])
    assert "model.prior_weight_schedule is set but model.mcts.prior_mode='replace'" in lines[0]


NAN = float("nan")

BAD_VALUES: dict[str, Any] = {
    "data.game": " ", "data.games_dir": "/no/such/folder", "data.num_envs": 0, "data.max_episode_steps": 0,
    "data.batch_size": 0, "data.collect_steps": 0, "data.batches_per_collect": 0, "data.warmup_steps": -1,
    "data.temperature_start": -0.5, "data.temperature_end": NAN, "data.temperature_decay_steps": -1,
    "data.max_consecutive_failures": 0, "data.eval_episodes": 0, "data.valid_actions_timeout": -1.0, "data.seed": -1, "data.learner_threads": -1,
    "data.replay.capacity_steps": 0, "data.replay.unroll_steps": -1, "data.replay.td_steps": 0,
    "data.replay.discount": 0.0, "data.replay.priority_alpha": NAN, "data.replay.priority_beta": 1.5,
    "model.llm.path": "", "model.llm.distill_weight": NAN, "model.llm.distill_max_roots": 0,
    "model.world_model.latent_dim": 0, "model.world_model.embed_dim": 0, "model.world_model.vocab_size": 2,
    "model.world_model.max_observation_tokens": 0, "model.world_model.max_action_tokens": 0,
    "model.world_model.num_layers": 0, "model.world_model.num_heads": 3, "model.world_model.support_size": 0,
    "model.world_model.value_loss_weight": -1.0, "model.world_model.reward_loss_weight": NAN,
    "model.world_model.policy_loss_weight": math.inf, "model.world_model.consistency_loss_weight": -0.1,
    "model.world_model.dropout": 1.0, "model.world_model.pretrained_encoder_path": "/no/such/encoder",
    "model.mcts.num_simulations": True, "model.mcts.pb_c_base": 0.0, "model.mcts.pb_c_init": -1.0,
    "model.mcts.discount": NAN, "model.mcts.dirichlet_alpha": 0.0, "model.mcts.root_exploration_fraction": 1.5,
    "model.mcts.prior_mode": "llm", "model.mcts.prior_weight": 2.0, "model.mcts.prior_temperature": 0.0,
    "model.mcts.prior_depth": -1,
    "model.prior.backends": [], "model.prior.vllm_required": True, "model.prior.temperature": NAN,
    "model.prior.history_len": -1, "model.prior.max_observation_chars": 0, "model.prior.notes": -1, "model.prior.cache_size": -1,
    "model.prior.vllm_timeout_s": math.inf, "model.prior.vllm_retries": -1, "model.prior.vllm_gpu_memory_utilization": 0.0,
    "model.optim.world_model_lr": 0.0, "model.optim.llm_lr": NAN, "model.optim.weight_decay": -0.01,
    "model.optim.warmup_steps": -1,
    "model.prior_weight_schedule.start": 1.5, "model.prior_weight_schedule.end": NAN,
    "model.prior_weight_schedule.steps": 0, "model.prior_weight_schedule.kind": "cosine",
    "model.eval_seed": -1,
}
"""One bad value per config field (``model.prior.vllm_required`` is bad with the default backends
only when vLLM is not among them: the value below runs with ``backends=['hf', 'uniform']``)."""

ANY_VALUE_IS_VALID: dict[str, str] = {
    "data.replay": "a section: its fields are listed one by one",
    "data.replay.prioritized": "a bool",
    "data.allow_unverified_game": "a bool",
    "model.llm": "a section", "model.world_model": "a section", "model.mcts": "a section",
    "model.prior": "a section", "model.optim": "a section", "model.prior_weight_schedule": "a section or null",
    "model.llm.train": "a bool", "model.llm.gradient_checkpointing": "a bool",
    "model.prior.length_normalise": "a bool", "model.prior.use_chat_template": "a bool",
    "model.prior.vllm_enable_prefix_caching": "a bool",
}
"""Config keys with no bad value of their type (jsonargparse rejects a value of another type)."""

_SECTIONS: dict[str, type] = {
    "data.replay": ReplayConfig, "model.llm": LLMConfig, "model.world_model": WorldModelConfig,
    "model.mcts": MCTSConfig, "model.prior": PriorConfig, "model.optim": OptimConfig,
    "model.prior_weight_schedule": PriorWeightSchedule,
}


def _apply(key: str, value: Any) -> None:
    """Build what ``key`` configures with ``value`` (everything else default)."""
    section, _, name = key.rpartition(".")
    if section in _SECTIONS:
        extra = {"backends": ["hf", "uniform"]} if key == "model.prior.vllm_required" else {}
        _SECTIONS[section](**{name: value, **extra})
    elif section == "data":
        check_data_args(**{name: value})
    else:
        check_module_args(**{name: value})


@pytest.mark.parametrize(("key", "value"), sorted(BAD_VALUES.items()), ids=sorted(BAD_VALUES))
def test_every_config_field_refuses_a_bad_value_naming_its_key(key: str, value: Any) -> None:
    with pytest.raises(PriorZeroInputError) as info:
        _apply(key, value)
    message = str(info.value)
    assert key in message and "\n" not in message, message


def _config_keys() -> set[str]:
    """Every key of the ``data:`` and ``model:`` sections, from the init signatures and the dataclasses."""
    from datamodules.collection import PriorZeroDataModule
    from priorzero_pl.module import PriorZeroModule

    keys = {f"data.{name}" for name in inspect.signature(check_data_args).parameters}
    keys |= {f"data.{name}" for name in inspect.signature(PriorZeroDataModule.__init__).parameters if name != "self"}
    keys |= {f"model.{name}" for name in inspect.signature(PriorZeroModule.__init__).parameters if name != "self"}
    for section, kind in _SECTIONS.items():
        keys |= {f"{section}.{field.name}" for field in dataclasses.fields(kind)}
    return keys


def test_no_config_field_is_left_unchecked() -> None:
    """A new init argument or dataclass field needs a bad value above (and a check), or a reason."""
    unlisted = _config_keys() - set(BAD_VALUES) - set(ANY_VALUE_IS_VALID)
    assert not unlisted, f"config keys with no check listed in tests/test_reliability.py: {sorted(unlisted)}"


@pytest.mark.parametrize(("check", "owner"), [(check_data_args, "datamodules.collection.PriorZeroDataModule"),
                                              (check_module_args, "priorzero_pl.module.PriorZeroModule")])
def test_up_front_checks_take_every_init_argument(check: Callable[..., None], owner: str) -> None:
    module_name, _, class_name = owner.rpartition(".")
    init = getattr(__import__(module_name, fromlist=[class_name]), class_name).__init__
    missing = set(inspect.signature(init).parameters) - {"self"} - set(inspect.signature(check).parameters)
    assert not missing, f"{check.__name__} does not take {sorted(missing)}: the CLI would not check them"


# ------------------------------------------------------------------------------ messages


def test_unknown_option_is_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str], nothing_starts: None) -> None:
    lines = refusal(capsys, ["fit", "--config", DEBUG, "--model.mcts.num_simulatons=3"])
    assert lines == ["priorzero: error: unknown option --model.mcts.num_simulatons=3: did you mean "
                     "--model.mcts.num_simulations? (`priorzero fit --help` lists every option)"]


def test_unknown_key_in_a_config_file_is_one_line_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  valid_action_timeout: 2\n")
    lines = refusal(capsys, ["fit", "--config", DEBUG, "--config", str(typo)])
    assert lines[0].startswith("priorzero: error: unknown config key data.valid_action_timeout: did you mean "
                               "data.valid_actions_timeout?")


def test_misspelt_callback_names_the_class_and_the_fix_first(capsys: pytest.CaptureFixture[str], nothing_starts: None) -> None:
    lines = refusal(capsys, ["fit", "--config", DEBUG, "--trainer.callbacks+=callbacks.Checkpointng"])
    assert lines[0] == ("priorzero: error: trainer.callbacks: class_path 'callbacks.Checkpointng': module 'callbacks' "
                        "has no attribute 'Checkpointng'; did you mean callbacks.Checkpointing?")
    assert all(line.startswith("  ") for line in lines[1:])  # jsonargparse's report, as detail


def test_misspelt_callback_argument_names_the_argument_and_the_fix_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    config = tmp_path / "callbacks.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: callbacks.Checkpointing\n      init_args:\n        every_n_step: 3\n")
    lines = refusal(capsys, ["fit", "--config", DEBUG, "--config", str(config)])
    assert lines[0].endswith("Option 'every_n_step' is not accepted; did you mean init_args.every_n_steps?")


def test_value_of_the_wrong_type_names_key_value_and_type(capsys: pytest.CaptureFixture[str], nothing_starts: None) -> None:
    lines = refusal(capsys, ["fit", "--config", DEBUG, "--data.batch_size=abc"])
    assert lines[0].startswith("priorzero: error: data.batch_size='abc' is not an int: give an int")


def test_prior_messages_name_the_model_llm_path_key() -> None:
    with pytest.raises(PriorZeroInputError, match=r"needs model\.llm\.path"):
        build_prior(PriorConfig(backends=["vllm", "uniform"], vllm_required=True), None, model_path=None)


def test_llm_loading_messages_name_the_model_llm_path_key(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match=r"does not exist: set model\.llm\.path to"):
        load_llm(tmp_path / "missing")
    with pytest.raises(PriorZeroInputError, match=r"no config\.json in it\): point model\.llm\.path at"):
        load_llm(tmp_path)


# ------------------------------------------------------------- two fits in one run folder


def _hold_lock(folder: Path) -> subprocess.Popen:
    """A second process that takes the run folder's lock and keeps it (until killed)."""
    code = "import sys, time; from priorzero_pl.run_lock import RunLock; RunLock(sys.argv[1]).acquire(); time.sleep(600)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], env=env, cwd=ROOT)
    _wait_for_holder(folder / LOCK_NAME, holder)
    return holder


def _wait_for_holder(lock: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not (lock.exists() and f"pid {process.pid} " in lock.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"process {process.pid} did not take the lock {lock} (exit code {process.poll()})")
        time.sleep(0.05)


def test_second_fit_in_one_folder_is_refused_naming_the_first(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    holder = _hold_lock(tmp_path)
    try:
        lines = refusal(capsys, ["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path)])
    finally:
        holder.kill()
        holder.wait(PROCESS_TIMEOUT_S)
    assert lines[0].startswith(f"priorzero: error: trainer.default_root_dir {tmp_path} is in use by another fit "
                               f"(pid {holder.pid} on ")
    assert str(tmp_path / LOCK_NAME) in lines[0] and "another --trainer.default_root_dir" in lines[0]


def test_lock_of_a_killed_fit_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    holder = _hold_lock(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(PROCESS_TIMEOUT_S)
    assert f"pid {holder.pid} " in (tmp_path / LOCK_NAME).read_text()  # the dead run's file is still there
    with caplog.at_level("WARNING", logger="priorzero_pl.run_lock"), RunLock(tmp_path) as lock:
        assert f"pid {os.getpid()} " in lock.path.read_text()
    assert f"took over the lock of a run that is gone (pid {holder.pid} " in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_fit_holds_the_lock_until_it_ends(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held_during_fit: list[bool] = []
    replace_fit(monkeypatch, lambda *args, **kwargs: held_during_fit.append((tmp_path / LOCK_NAME).exists()))
    build_cli(["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path)])
    assert held_during_fit == [True]
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):  # free again
        pass


@pytest.mark.slow
def test_two_real_fits_in_one_folder(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    """Both are ``python -m priorzero_pl fit``; the second is refused while the first runs."""
    args = [sys.executable, "-m", "priorzero_pl", "fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=10_000)]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_holder(tmp_path / LOCK_NAME, first)
        second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # its env workers too
        first.wait(PROCESS_TIMEOUT_S)
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"is in use by another fit (pid {first.pid} on " in second.stderr


# ------------------------------------------------------------------ emergency checkpoints


def _crash_at(step: int) -> Callable[[Any], None]:
    def crash(module: Any) -> None:
        if module.global_step == step:
            raise RuntimeError(f"boom at step {step}")

    return crash


def test_later_failure_keeps_the_emergency_checkpoint_with_more_training(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="step 5"):
        tiny_trainer(tmp_path, [GracefulFallback()], max_steps=10).fit(TinyModule(_crash_at(5)))
    with pytest.raises(RuntimeError, match="step 2"):
        tiny_trainer(tmp_path, [GracefulFallback()], max_steps=10).fit(TinyModule(_crash_at(2)))
    emergencies = sorted(p.name for p in tmp_path.glob("emergency*.ckpt"))
    assert emergencies == ["emergency-step00002.ckpt", "emergency-step00005.ckpt"]
    assert torch.load(tmp_path / "emergency-step00005.ckpt", weights_only=True)["global_step"] == 5


def test_fit_that_never_trained_writes_no_emergency_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="step 0"):
        tiny_trainer(tmp_path, [GracefulFallback()], max_steps=10).fit(TinyModule(_crash_at(0)))
    assert not list(tmp_path.glob("emergency*.ckpt"))


def test_sigterm_writes_no_emergency_copy_of_last_ckpt(tmp_path: Path) -> None:
    def terminate_at_step_3(module: Any) -> None:
        if module.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SIGTERMException):
        tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100), GracefulFallback()], max_steps=10).fit(
            TinyModule(terminate_at_step_3)
        )
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not list(tmp_path.glob("emergency*.ckpt"))


# ------------------------------------------------------------------ preemption (SIGTERM)


def _env_workers_of(pid: int) -> list[int]:
    """Process ids of the env pool workers that ``pid`` started (their command names the module)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and b"priorzero_pl.envs.pool_worker" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the env workers through /proc")
def test_sigterm_during_warmup_saves_and_exits_143(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    """A warm-up of 100 000 env steps would run for an hour: the signal must end it at the next
    env step, write ``last.ckpt`` (with the data module's state) and exit 143, not 0."""
    args = [sys.executable, "-m", "priorzero_pl", "fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path),
            "--data.warmup_steps=100000", "--data.max_episode_steps=50"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "fit.log"
    with log.open("wb") as out:
        fit = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not _env_workers_of(fit.pid):  # collection has begun
            if fit.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the fit did not start collecting (exit code {fit.poll()}): {log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(5.0)  # into the warm-up (its env steps, once the workers are up)
        fit.send_signal(signal.SIGTERM)
        code = fit.wait(PROCESS_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(fit.pid, signal.SIGKILL)  # its env workers too, whatever happened
        fit.wait(PROCESS_TIMEOUT_S)
    output = log.read_text()
    assert code == 143, output[-3000:]
    assert "stopped by SIGTERM; resume with the same command and --ckpt_path" in output
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    (rank,) = last["PriorZeroDataModule"]["ranks"]
    assert rank["env_steps"] < 100_000  # the signal cut the warm-up short
    # Before the buffer holds a finished episode the signal ends the fit at once (step 0); once it
    # holds one, the loop takes the one batch it can sample and stops there (step 1): how many
    # episodes 5 s of warm-up finish depends on the machine, so the test checks whichever happened.
    assert last["global_step"] == (1 if rank["episodes"] > 0 else 0), (last["global_step"], rank["episodes"])
    assert not list(tmp_path.glob("emergency*.ckpt"))


# ------------------------------------------------------------------ NaN / inf in the loss


def test_nonfinite_loss_is_skipped_counted_and_stops_the_fit_after_three_in_a_row(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NaN at step 1 (skipped, training goes on), then from step 3 on: the third in a row stops
    the fit, and no weight ever saw a NaN."""
    from priorzero_pl.models import WorldModel

    real_loss = WorldModel.loss
    poisoned_steps = {1, 3, 4, 5, 6, 7}
    seen: dict[str, Any] = {}

    def loss(self: WorldModel, batch: Any) -> Any:
        total, terms, priorities = real_loss(self, batch)
        module = seen["module"]
        if module.global_step in poisoned_steps:
            total = total * math.nan
        return total, terms, priorities

    monkeypatch.setattr(WorldModel, "loss", loss)
    cli = build_cli(tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=20), run=False)
    seen["module"] = cli.model
    with pytest.raises(RuntimeError, match=r"NaN or inf for 3 steps in a row \(GracefulFallback.max_nonfinite_losses=3\)"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.model.nonfinite_losses == 4  # steps 1, 3, 4, 5
    assert cli.trainer.global_step == 6
    assert GracefulFallback.health(cli.trainer, cli.model)["nonfinite_loss"] == 4.0  # what is logged
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_bad_max_nonfinite_losses_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(PriorZeroInputError, match=f"GracefulFallback.max_nonfinite_losses must be an int >= 1, got {value!r}"):
        GracefulFallback(max_nonfinite_losses=value)
