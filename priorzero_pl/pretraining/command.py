"""``priorzero pretrain-prior --corpus DIR --out DIR``: a prior learned from walkthroughs, and its report.

1. load the corpus (records checked against the manifest's hash) and, with ``--test-corpus``, a
   corpus of test-split games, refused if any of its games is a corpus game;
2. train a byte-level BPE tokenizer on the corpus text and build a Llama of the configured shape;
3. check that every stored prompt is what :class:`PromptBuilder` builds with that tokenizer and
   that every prompt fits the model's positions;
4. train (Lightning: progress bar, TensorBoard scalars under ``--logdir``, early stopping on the
   held-out games' loss) and keep the best weights;
5. rank the walkthrough actions of the held-out games and of the test games against a uniform
   guess, optionally play the test games with the prior alone against random play;
6. write the model (``save_pretrained``: safetensors, tokenizer, chat template), the manifests,
   and ``pretraining.json`` (command, settings, figures) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from transformers import LlamaForCausalLM

from priorzero_pl.assets.tiny_lm import llama_config, train_tokenizer
from priorzero_pl.corpus.manifest import MANIFEST_FILE, CorpusManifest, assert_disjoint
from priorzero_pl.corpus.records import CorpusStep
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.pretraining.config import PretrainConfig
from priorzero_pl.pretraining.dataset import (
    WalkthroughSteps,
    check_context,
    check_prompts,
    collate_steps,
    load_corpus,
    prompt_builder_for,
    split_by_game,
)
from priorzero_pl.pretraining.heldout import rank_walkthrough_actions
from priorzero_pl.pretraining.module import PriorPretraining
from priorzero_pl.pretraining.prior_play import compare_prior_with_random

REPORT_FILE = "pretraining.json"
"""Written last into the output: its presence marks a complete pretrained prior."""
CORPUS_MANIFEST_FILE = "corpus_manifest.json"
TEST_MANIFEST_FILE = "test_manifest.json"


def _corpus_text(steps: Sequence[CorpusStep]) -> list[str]:
    """What the tokenizer learns its merges from: every prompt and every candidate."""
    return [s.prompt for s in steps] + sorted({c for s in steps for c in s.candidates})


def _check_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that holds anything but a previous pretrained prior."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_FILE).is_file())):
        raise PriorZeroInputError(f"--out {out} exists and is not a pretrained prior: choose a new or empty directory")


def _replace_dir(built: Path, out: Path) -> None:
    """Move ``built`` to ``out``, replacing the previous pretrained prior there."""
    _check_out(out)
    if out.exists():
        shutil.rmtree(out)
    os.replace(built, out)


def pretrain_prior(
    corpus_dir: Path,
    out_dir: Path,
    config: PretrainConfig,
    *,
    test_corpus_dir: Path | None = None,
    logdir: Path = Path("runs/pretrain-prior"),
    play_max_steps: int = 0,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Pretrain a prior on ``corpus_dir`` into ``out_dir``; returns the report also written there."""
    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        return _pretrain(corpus_dir, out_dir, config, test_corpus_dir, logdir, play_max_steps, command, progress)
    finally:
        torch.set_num_threads(threads)


def _pretrain(
    corpus_dir: Path,
    out_dir: Path,
    config: PretrainConfig,
    test_corpus_dir: Path | None,
    logdir: Path,
    play_max_steps: int,
    command: str,
    progress: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _check_out(out_dir)
    manifest, steps = load_corpus(corpus_dir, split="train")
    test: tuple[CorpusManifest, list[CorpusStep]] | None = None
    if test_corpus_dir is not None:
        test = load_corpus(test_corpus_dir, split="test")
        assert_disjoint(test[0], manifest)
        if dataclasses.asdict(test[0].prompt) != dataclasses.asdict(manifest.prompt):
            raise PriorZeroInputError(
                f"{test_corpus_dir} was rendered with prompt settings {dataclasses.asdict(test[0].prompt)}, the corpus with "
                f"{dataclasses.asdict(manifest.prompt)}: build both with the same --history-len and --max-observation-chars"
            )

    L.seed_everything(config.seed, workers=True, verbose=False)
    tokenizer = train_tokenizer(_corpus_text(steps), config.vocab_size)
    builder = prompt_builder_for(manifest, tokenizer)
    check_prompts(steps, builder)
    longest = check_context(steps, tokenizer, config.max_context)
    if test is not None:
        check_prompts(test[1], builder)
        longest = max(longest, check_context(test[1], tokenizer, config.max_context))
    model = LlamaForCausalLM(
        llama_config(
            tokenizer,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            num_kv_heads=config.num_kv_heads,
            max_position_embeddings=config.max_context,
        )
    )

    train_steps, heldout_steps = split_by_game(steps, config.heldout_fraction, config.seed)
    train_data, heldout_data = WalkthroughSteps(train_steps), WalkthroughSteps(heldout_steps)
    if not len(train_data) or not len(heldout_data):
        raise PriorZeroInputError(f"{corpus_dir}: too few scorable steps to train and hold out ({len(train_data)}, {len(heldout_data)})")
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, collate_fn=collate_steps, generator=generator)
    heldout_loader = DataLoader(heldout_data, batch_size=config.batch_size, collate_fn=collate_steps)

    module = PriorPretraining(model, tokenizer, config)
    checkpoints = Path(tempfile.mkdtemp(prefix="pretrain-prior-ckpt-"))
    best = ModelCheckpoint(dirpath=checkpoints, monitor="val/loss", mode="min", save_top_k=1, save_weights_only=True)
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        precision=config.precision,
        max_epochs=config.max_epochs,
        val_check_interval=config.val_every_n_steps,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        logger=TensorBoardLogger(save_dir=str(logdir), name="pretrain-prior"),
        callbacks=[EarlyStopping(monitor="val/loss", mode="min", patience=config.patience), best],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, train_loader, heldout_loader)
    trainer.validate(module, heldout_loader, verbose=False)  # the final weights may be the best
    if best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    shutil.rmtree(checkpoints, ignore_errors=True)
    model = module.model.to("cpu").float()
    train_seconds = time.perf_counter() - started

    report: dict[str, Any] = {
        "command": command,
        "corpus_command": manifest.command,
        "test_corpus_command": test[0].command if test else None,
        "config": dataclasses.asdict(config),
        "prompt": dataclasses.asdict(manifest.prompt),
        "parameters": sum(p.numel() for p in model.parameters()),
        "longest_prompt_tokens": longest,
        "corpus": {"games": len(manifest.built_games()), "steps": len(steps), "records_sha256": manifest.records_sha256},
        "train": {"games": len({s.game for s in train_steps}), "steps": len(train_data)},
        "optimizer_steps": trainer.global_step,
        "best_val_loss": float(best.best_model_score) if best.best_model_score is not None else None,
        "train_seconds": round(train_seconds, 1),
        "heldout": rank_walkthrough_actions(model, tokenizer, heldout_steps, length_normalise=config.length_normalise).to_dict(),
    }
    if test is not None:
        report["test"] = rank_walkthrough_actions(model, tokenizer, test[1], length_normalise=config.length_normalise).to_dict()
        # The walkthrough's own states: the figure corpora without noisy episodes report as "test".
        walkthrough = [s for s in test[1] if s.episode == 0]
        report["test_walkthrough"] = rank_walkthrough_actions(
            model, tokenizer, walkthrough, length_normalise=config.length_normalise
        ).to_dict()
        if play_max_steps > 0:
            game_files = [Path(test_corpus_dir) / "games" / f"{g.id}.z8" for g in test[0].built_games()]
            report["play"] = compare_prior_with_random(
                model, tokenizer, game_files, builder, length_normalise=config.length_normalise, max_steps=play_max_steps
            ).to_dict()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.build-") as tmp:
        built = Path(tmp) / "prior"
        model.save_pretrained(built)
        tokenizer.save_pretrained(built)
        shutil.copyfile(Path(corpus_dir) / MANIFEST_FILE, built / CORPUS_MANIFEST_FILE)
        if test_corpus_dir is not None:
            shutil.copyfile(Path(test_corpus_dir) / MANIFEST_FILE, built / TEST_MANIFEST_FILE)
        (built / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
        _replace_dir(built, out_dir)
    return report


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    """The ``priorzero pretrain-prior`` command line: paths, then one flag per :class:`PretrainConfig` field."""
    p = argparse.ArgumentParser(prog="priorzero pretrain-prior", description="Pretrain the embedded LM as a prior on a walkthrough corpus.")
    p.add_argument("--corpus", type=Path, required=True, help="a train-split corpus (priorzero corpus --out DIR)")
    p.add_argument("--out", type=Path, required=True, help="directory for the pretrained model")
    p.add_argument("--test-corpus", type=Path, default=None, help="a test-split corpus of unseen games to report on")
    p.add_argument("--logdir", type=Path, default=Path("runs/pretrain-prior"), help="TensorBoard logs (default: %(default)s)")
    p.add_argument("--play-max-steps", type=int, default=0,
                   help="also play the test games with the prior alone and at random, this many steps each (0: no)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for field in dataclasses.fields(PretrainConfig):
        default = field.default
        if isinstance(default, bool):
            p.add_argument(_flag(field.name), action=argparse.BooleanOptionalAction, default=default)
        else:
            p.add_argument(_flag(field.name), type=type(default), default=default, help=f"(default: {default})")
    return p


def main(argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``argv`` (the arguments after ``pretrain-prior``), pretrain, print the report's figures."""
    args = parser().parse_args(list(argv))
    config = PretrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)})
    report = pretrain_prior(
        args.corpus,
        args.out,
        config,
        test_corpus_dir=args.test_corpus,
        logdir=args.logdir,
        play_max_steps=args.play_max_steps,
        command=shlex.join(["priorzero", "pretrain-prior", *argv]),
        progress=not args.no_progress,
    )
    figures = {k: report[k] for k in ("heldout", "test", "play") if k in report}
    print(json.dumps({"out": str(args.out), "train_seconds": report["train_seconds"], **figures}))
    return report
