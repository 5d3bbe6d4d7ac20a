"""The thread budget: the learner gets the cores the env workers leave, children run single-threaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules.collection import PriorZeroDataModule
from priorzero_pl.data_args import check_data_args
from priorzero_pl.envs import EnvPool
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.threads import ThreadBudget, apply_thread_budget, plan_thread_budget


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("cores", "env_workers", "ranks", "expected"),
    [(2, 2, 1, 1), (2, 1, 1, 1), (16, 2, 1, 14), (16, 2, 2, 6), (4, 8, 1, 1)],
)
def test_learner_gets_the_cores_the_env_workers_leave(cores: int, env_workers: int, ranks: int, expected: int) -> None:
    budget = plan_thread_budget(None, env_workers=env_workers, processes_per_node=ranks, cores=cores)
    assert (budget.learner, budget.interop) == (expected, expected)


def test_override_and_torch_default() -> None:
    assert plan_thread_budget(3, env_workers=2, cores=2).learner == 3
    assert plan_thread_budget(0, env_workers=2, cores=2).learner is None


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_learner_threads_is_refused_naming_the_key(bad: object) -> None:
    with pytest.raises(PriorZeroInputError, match=r"data\.learner_threads"):
        check_data_args(learner_threads=bad)  # type: ignore[arg-type]


def test_apply_sets_torch_threads_and_describe_reports_them(restore_torch_threads: None) -> None:
    apply_thread_budget(ThreadBudget(learner=1, interop=1, env_workers=2, processes_per_node=1, cores=2))
    assert torch.get_num_threads() == 1
    line = ThreadBudget(1, 1, 2, 1, 2).describe()
    assert line.startswith("learner: 1 thread (inter-op ") and "2 env workers, single-threaded; 2 cores" in line


def test_torch_default_budget_leaves_threads_alone(restore_torch_threads: None) -> None:
    torch.set_num_threads(2)
    apply_thread_budget(plan_thread_budget(0, env_workers=2, cores=2))
    assert torch.get_num_threads() == 2


def test_datamodule_applies_the_budget_at_setup(tw_game_path: Path, restore_torch_threads: None) -> None:
    torch.set_num_threads(2)
    datamodule = PriorZeroDataModule(game=str(tw_game_path), num_envs=2, learner_threads=1)
    datamodule.setup("fit")
    assert torch.get_num_threads() == 1
    assert datamodule.thread_budget is not None and datamodule.thread_budget.learner == 1


def test_env_workers_start_single_threaded(tw_game_path: Path) -> None:
    with EnvPool(tw_game_path, 2, max_steps=5) as pool:
        for pid in pool.worker_pids:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"OMP_NUM_THREADS=1" in environment and b"MKL_NUM_THREADS=1" in environment
