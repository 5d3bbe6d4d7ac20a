"""Where a fit's time goes, per stage, and what the learner's thread budget buys.

For each config (``--configs``: ``debug`` is configs/debug.yaml; ``zork1-cpu`` is configs/gpu.yaml +
configs/zork1.yaml + configs/cpu.yaml with the embedded LLM, zork1 from ``$PRIORZERO_GAMES``,
shrunk to this machine by :data:`CONFIGS`' overrides), fits ``--steps`` training steps in this
process, twice per repeat, alternating (A B A B ...) so that machine noise hits both alike:

* ``budget``: the learner's thread budget (``data.learner_threads`` unset: the cores the env
  workers leave, :mod:`priorzero_pl.threads`);
* ``default``: the old threading (``data.learner_threads=0``, torch's default of one thread per
  core; the benchmark sets torch back to that default before each such fit, since one process
  keeps the threads the last fit set).

The figures come from the module's stage timer (:mod:`priorzero_pl.stage_timer`, the same as the
``perf/`` scalars in TensorBoard), summed over the repeats, leaving out the first ``--skip`` steps
of each fit (the first one holds the whole warm-up collection). Validation and the observing
callbacks (evaluation, transcripts, checkpoints) are off, as in benchmarks/learning.py: they run
every few hundred steps, which a short fit hits or misses at random; the LLM-training callbacks
(RFT, PPO) stay. Prints a table per config (seconds per step and share of the wall time per
stage, both modes) and, as the last line, one JSON object: per config ``env_steps_per_s``,
``train_steps_per_s``, ``fraction_<stage>`` (budget mode), the same under ``default`` and
``speedup_threads`` (budget / default training steps per second); top-level ``speedup_threads``
is the smallest over the configs. Also written to ``--out`` (default
``benchmarks/results/throughput-<date>.json``).

Run it with nothing else on the machine, or say how it was loaded: the speed-up depends on it.
On a loaded 2-core machine (load average 3-6) a ``default`` fit is the slow part: a debug.yaml
step took about 10 s (1.2 s with the budget), and the zork1 run's warm-up and first step more than
10 minutes (about 1 minute with the budget), so the default run may take an hour or more there.
``OMP_NUM_THREADS`` in the environment does not narrow the ``default`` mode: it gets one thread per
available core, torch's default without that variable.

    python benchmarks/throughput.py                                  # the benchmark (24 steps x 2 repeats)
    python benchmarks/throughput.py --steps 4 --repeats 1 --configs debug --out /tmp/throughput.json  # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from priorzero_pl.stage_timer import STAGES, StageTotals, stage_fractions  # noqa: E402
from priorzero_pl.threads import available_cores  # noqa: E402

CONFIG_DIR = ROOT / "configs"
OBSERVERS = {"callbacks.Evaluation", "callbacks.Transcripts", "callbacks.Checkpointing"}
"""Callbacks that only observe, every few hundred steps: off (see the module docstring)."""

CONFIGS: dict[str, dict[str, Any]] = {
    "debug": {"files": ["debug.yaml"], "overrides": []},
    "zork1-cpu": {
        "files": ["gpu.yaml", "zork1.yaml", "cpu.yaml"],
        # The GPU config's model and search on zork1, its collection shrunk to a 2-core machine:
        # two env workers (not 8) and a warm-up of 32 env steps (not 512: at about 1.5 s an env step
        # on a loaded 2-core machine, the warm-up alone would take 13 minutes), with its replay ratio kept (64 steps : 8 batches).
        "overrides": [
            "--model.llm.path=embedded", "--data.num_envs=2", "--data.warmup_steps=32",
            "--data.collect_steps=16", "--data.batches_per_collect=2", "--data.batch_size=32",
        ],
    },
}
"""Benchmark config name -> config files (in configs/, in order) and command-line overrides."""

MODES: dict[str, str | None] = {"budget": None, "default": "0"}
"""Threading mode -> ``data.learner_threads`` (None: unset, the budget)."""


class StepTotals(L.Callback):
    """Collects the module's per-step stage totals (``PriorZeroModule.last_step_totals``): at step
    ``i``'s batch end the module has closed step ``i - 1`` (callbacks run before the module's
    hook), and the last one is read at train end."""

    def __init__(self) -> None:
        self.steps: list[StageTotals] = []

    def _take(self, pl_module: L.LightningModule) -> None:
        totals = getattr(pl_module, "last_step_totals", None)
        if totals is not None and (not self.steps or self.steps[-1] is not totals):
            self.steps.append(totals)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._take(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take(pl_module)


def callbacks_overlay(files: Sequence[str], out: Path) -> Path:
    """The callbacks of the last config file that lists any, less :data:`OBSERVERS`, as an overlay."""
    callbacks: list[dict[str, Any]] = []
    for name in files:
        listed = (yaml.safe_load((CONFIG_DIR / name).read_text()) or {}).get("trainer", {}).get("callbacks")
        if listed is not None:
            callbacks = listed
    path = out / "callbacks.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [c for c in callbacks if c["class_path"] not in OBSERVERS]}}))
    return path


def run_fit(config: str, mode: str, steps: int, default_threads: int, work: Path) -> list[StageTotals]:
    """One fit of ``steps`` training steps; its per-step stage totals."""
    from priorzero_pl.cli import build_cli

    spec = CONFIGS[config]
    out = Path(tempfile.mkdtemp(prefix=f"{config}-{mode}-", dir=work))
    args = [arg for name in spec["files"] for arg in ("--config", str(CONFIG_DIR / name))]
    args += ["--config", str(callbacks_overlay(spec["files"], out)), *spec["overrides"]]
    args += [
        f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={out}", f"--trainer.logger.init_args.save_dir={out}",
    ]
    if MODES[mode] is not None:
        args.append(f"--data.learner_threads={MODES[mode]}")
        torch.set_num_threads(default_threads)  # the previous fit's budget stays in the process otherwise
    cli = build_cli(args, run=False)
    recorder = StepTotals()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return recorder.steps


def summarise(steps: Sequence[StageTotals]) -> dict[str, Any]:
    """Rates and the per-stage split over ``steps`` (summed)."""
    total = StageTotals()
    for step in steps:
        total.merge(step)
    wall = total.wall
    figures: dict[str, Any] = {
        "env_steps_per_s": total.items.get("env_step", 0) / wall if wall > 0 else 0.0,
        "train_steps_per_s": len(steps) / wall if wall > 0 else 0.0,
        "steps_measured": len(steps),
        "wall_s": round(wall, 2),
    }
    figures.update({f"fraction_{name}": share for name, share in stage_fractions(total).items()})
    figures["seconds_per_step"] = {name: total.seconds.get(name, 0.0) / max(len(steps), 1) for name in STAGES}
    return figures


def table(config: str, modes: dict[str, dict[str, Any]], threads: dict[str, int]) -> str:
    """The per-stage split of one config, both modes side by side."""
    head = f"{config}: " + ", ".join(
        f"{mode} ({threads[mode]} learner thread{'s' if threads[mode] != 1 else ''}) "
        f"{m['train_steps_per_s']:.3f} train steps/s, {m['env_steps_per_s']:.2f} env steps/s"
        for mode, m in modes.items()
    )
    lines = [head, f"  {'stage':<18}" + "".join(f"{mode + ' s/step':>16}{'share':>8}" for mode in modes)]
    for name in STAGES:
        lines.append(
            f"  {name:<18}"
            + "".join(f"{m['seconds_per_step'][name]:>16.4f}{m[f'fraction_{name}']:>8.1%}" for m in modes.values())
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="training steps per fit")
    parser.add_argument("--repeats", type=int, default=2, help="fits per config and threading mode (alternating)")
    parser.add_argument("--skip", type=int, default=1, help="first steps of each fit left out (the warm-up)")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES), help="threading modes (both for speedup_threads)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/throughput-<date>.json)")
    opts = parser.parse_args(argv)
    if opts.steps <= opts.skip or opts.repeats < 1 or opts.skip < 0:
        parser.error(f"need --steps > --skip >= 0 and --repeats >= 1, got {opts.steps}, {opts.skip}, {opts.repeats}")
    return opts


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    started = time.perf_counter()
    default_threads = available_cores() if "OMP_NUM_THREADS" in os.environ else torch.get_num_threads()
    load_before = os.getloadavg()
    collected: dict[str, dict[str, list[StageTotals]]] = {c: {m: [] for m in opts.modes} for c in opts.configs}
    threads: dict[str, dict[str, int]] = {c: {} for c in opts.configs}
    with tempfile.TemporaryDirectory(prefix="priorzero-throughput-") as work:
        for repeat in range(opts.repeats):
            for config in opts.configs:
                for mode in opts.modes:
                    t0 = time.perf_counter()
                    steps = run_fit(config, mode, opts.steps, default_threads, Path(work))
                    threads[config][mode] = torch.get_num_threads()
                    collected[config][mode] += steps[opts.skip:]
                    print(f"repeat {repeat} {config} {mode}: {len(steps)} steps in {time.perf_counter() - t0:.1f} s", flush=True)
    result: dict[str, Any] = {
        "steps": opts.steps, "repeats": opts.repeats, "skip": opts.skip, "cores": available_cores(),
        "default_threads": default_threads, "load_average_before": [round(x, 2) for x in load_before],
    }
    for config in opts.configs:
        modes = {mode: summarise(collected[config][mode]) for mode in opts.modes}
        print(table(config, modes, threads[config]), flush=True)
        headline = modes.get("budget") or modes["default"]
        default = modes.get("default")
        both = "budget" in modes and default is not None and default["train_steps_per_s"] > 0
        result[config] = {
            **{k: v for k, v in headline.items() if k != "seconds_per_step"},
            "speedup_threads": headline["train_steps_per_s"] / default["train_steps_per_s"] if both else None,
            "learner_threads": threads[config].get("budget"),
            "default": {k: v for k, v in default.items() if k != "seconds_per_step"} if default else None,
            "seconds_per_step": {mode: m["seconds_per_step"] for mode, m in modes.items()},
        }
    speedups = [result[c]["speedup_threads"] for c in opts.configs if result[c]["speedup_threads"] is not None]
    result["speedup_threads"] = min(speedups) if speedups else None
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    out = opts.out or ROOT / "benchmarks" / "results" / f"throughput-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
