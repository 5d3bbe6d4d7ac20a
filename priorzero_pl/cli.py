"""``priorzero fit|validate|demo --config ...``: LightningCLI over the module and the DataModule; and
``priorzero corpus`` / ``priorzero pretrain-prior``, which build the walkthrough corpus and the prior."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from priorzero_pl.errors import PriorZeroInputError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_cli(args: Sequence[str] | None = None, *, run: bool = True):
    """The LightningCLI: every knob is a typed init argument of the module, the DataModule, the
    trainer or a callback, so ``--print_config`` shows the whole run and a typo is an error."""
    from lightning.pytorch.cli import LightningCLI

    from datamodules.collection import PriorZeroDataModule
    from priorzero_pl.module import PriorZeroModule

    return LightningCLI(
        PriorZeroModule,
        PriorZeroDataModule,
        args=list(args) if args is not None else None,
        run=run,
        save_config_kwargs={"overwrite": True},
        # One AdamW with a group per model is part of the design (DeepSpeed takes one optimizer):
        # its settings live in model.optim, not in LightningCLI's generic --optimizer.
        auto_configure_optimizers=False,
        trainer_defaults={"check_val_every_n_epoch": None},
    )


def main(args: Sequence[str] | None = None) -> None:
    """Console entry point. Bad input ends with one line on stderr and exit code 2."""
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
    except PriorZeroInputError as err:
        print(f"priorzero: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
