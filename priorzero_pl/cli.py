"""``priorzero fit|validate|demo --config ...``: LightningCLI over the module and the DataModule; and
``priorzero corpus`` / ``priorzero pretrain-prior``, which build the walkthrough corpus and the prior."""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from priorzero_pl.data_args import check_data_args
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.module_args import check_module_args
from priorzero_pl.parser_errors import describe_parser_error, option_names
from priorzero_pl.resume import check_ckpt_path, restore_given
from priorzero_pl.run_lock import RunLock

if TYPE_CHECKING:
    from datamodules.collection import PriorZeroDataModule
    from priorzero_pl.module import PriorZeroModule


SIGTERM_EXIT_CODE = 128 + 15
"""Exit code of a fit stopped by SIGTERM after its checkpoint was written (the shell's code for a
SIGTERM death), so that a requeue wrapper can tell a preempted run from a finished one (0)."""


def connect(module: PriorZeroModule, datamodule: PriorZeroDataModule) -> None:
    """Wire the two halves of a run, once, before the trainer sees them: the data module collects
    with the module's ``collect`` agent and reports its stages to the module's stage timer, and
    the module updates the priorities of the data module's replay buffer. Neither looks the other up through ``trainer``, so each is built and
    tested alone. :func:`build_cli` calls it; a script that builds the two by hand calls it too
    (an unconnected data module refuses to collect)."""
    module.connect(datamodule.buffer)
    datamodule.connect(functools.partial(module.acting_agent, "collect"), module.stage_timer)


class PriorZeroCLI(LightningCLI):
    """LightningCLI that checks the whole config before it builds anything, keeps the model
    settings given on a resume, holds the run folder of a ``fit`` for its whole run, and
    wires the module and the data module it built together (:func:`connect`).

    ``resources`` outlives the constructor (which also runs the subcommand): the caller closes it,
    which releases the run folder's lock however the run ended.
    """

    def __init__(self, *args: Any, resources: ExitStack, **kwargs: Any) -> None:
        self._resources = resources
        self._args: Sequence[str] | None = None
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: argparse.ArgumentParser, args: Any) -> None:
        self._args = args
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as err:
            raise describe_parser_error(str(err), option_names(parser)) from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        ckpt_path = config.get("ckpt_path")
        check_ckpt_path(ckpt_path)
        if ckpt_path:
            # What the user gave (config files and command line), without the defaults.
            given = self.parser.parse_args(self._args, defaults=False)[self.subcommand].get("model")
            if given is not None:
                restore_given(config.model, given, ckpt_path)
        check_module_args(**_known_to(check_module_args, config.model.as_dict()))
        check_data_args(**_known_to(check_data_args, config.data.as_dict()))
        if self.subcommand == "fit" and _is_launching_process():
            folder = config.trainer.get("default_root_dir") or os.getcwd()
            self._resources.enter_context(RunLock(folder))

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        connect(self.model, self.datamodule)


def build_cli(args: Sequence[str] | None = None, *, run: bool = True) -> PriorZeroCLI:
    """The LightningCLI: every knob is a typed init argument of the module, the DataModule, the
    trainer or a callback, so ``--print_config`` shows the whole run and a typo is an error."""
    from datamodules.collection import PriorZeroDataModule
    from priorzero_pl.module import PriorZeroModule

    with ExitStack() as resources:
        return PriorZeroCLI(
            PriorZeroModule,
            PriorZeroDataModule,
            args=list(args) if args is not None else None,
            run=run,
            resources=resources,
            save_config_kwargs={"overwrite": True},
            # One AdamW with a group per model is part of the design (DeepSpeed takes one optimizer):
            # its settings live in model.optim, not in LightningCLI's generic --optimizer.
            auto_configure_optimizers=False,
            trainer_defaults={"check_val_every_n_epoch": None},
            # Errors are raised, and main() prints them as one line instead of 118 lines of usage.
            parser_kwargs={"exit_on_error": False},
        )


def main(args: Sequence[str] | None = None) -> None:
    """Console entry point. Bad input ends with one line on stderr (then any detail) and exit code
    2; a fit stopped by SIGTERM ends with one line naming the checkpoint to resume from and exit
    code 143 (:data:`SIGTERM_EXIT_CODE`), once the checkpoint callbacks have written it."""
    argv = list(sys.argv[1:] if args is None else args)
    try:
        if argv and argv[0] == "demo":
            from priorzero_pl.demo import run_demo

            run_demo(argv[1:])
        elif argv and argv[0] == "corpus":
            from priorzero_pl.corpus.build import main as corpus_main

            corpus_main(argv[1:])
        elif argv and argv[0] == "pretrain-prior":
            from priorzero_pl.pretraining.command import main as pretrain_main

            pretrain_main(argv[1:])
        else:
            build_cli(None if args is None else argv)
    except argparse.ArgumentError as err:  # from a parse LightningCLI runs outside parse_arguments
        _exit_with(describe_parser_error(str(err)))
    except PriorZeroInputError as err:
        _exit_with(err)
    except SIGTERMException:
        print(
            "priorzero: stopped by SIGTERM; resume with the same command and "
            "--ckpt_path <default_root_dir>/checkpoints/last.ckpt",
            file=sys.stderr,
        )
        raise SystemExit(SIGTERM_EXIT_CODE) from None


def _exit_with(err: PriorZeroInputError) -> None:
    print(f"priorzero: error: {err}", file=sys.stderr)
    for line in err.detail.splitlines():
        print(f"  {line}", file=sys.stderr)
    raise SystemExit(2) from None


def _known_to(check: Callable[..., None], section: dict[str, Any]) -> dict[str, Any]:
    """The section's values that ``check`` takes (a new init argument without a check is caught by
    tests/test_reliability.py, not by a TypeError in every run)."""
    names = inspect.signature(check).parameters
    return {name: value for name, value in section.items() if name in names}


def _is_launching_process() -> bool:
    """True in the process a user started: not in the ranks a DDP launcher starts, which share its folder."""
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0"
