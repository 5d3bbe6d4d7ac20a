"""Simulations per second of the batched search against the plain per-node reference
(``tests/references/mcts.py``), with models that do no real work, so the figures measure tree
bookkeeping (and the per-call overhead of a model, which the batched search pays once per
simulation and the reference once per node).

Two trivial models: ``random`` (uniform random values and rewards, normal logits: deep trees whose
min-max statistics keep moving) and ``constant`` (all zeros: shallow, breadth-first trees, and
calls cheaper than ``random``'s, which favours the reference: it makes B times as many).
Simulations are summed over the batch (``B * num_simulations / seconds``). The last line is one
JSON object; ``speedup`` is batched / reference at ``B = 8`` with the random model.

The search's numba kernels compile on their first call, or load from numba's on-disk cache. Timed
runs come after a warm-up search, so they measure neither; the JSON reports both apart:
``compile_s`` (first search in a fresh interpreter with an empty cache), ``cache_load_s`` (the
same again, the cache now filled), each measured in a subprocess with its own cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# The repository root, so that a plain ``python benchmarks/mcts.py`` finds the tests' reference.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priorzero_pl.mcts import MCTSConfig, ModelOutput, run_search  # noqa: E402
from tests.references.mcts import reference_search  # noqa: E402

BATCH_SIZES = (1, 8, 64)
NUM_SIMULATIONS = 50
CANDIDATES = (10, 20)
LATENT_SIZE = 64
ROUNDS = 9


class TrivialModel:
    """Latent, value, reward and logits straight from a generator (``random``) or zeros."""

    def __init__(self, random: bool) -> None:
        self.random = random
        self.generator = torch.Generator().manual_seed(0)

    def initial_inference(self, observations, candidates):
        width = max(len(c) for c in candidates)
        return self._output(len(observations), width), width

    def recurrent_inference(self, latent, actions, width):
        return self._output(latent.shape[0], width)

    def _output(self, batch: int, width: int) -> ModelOutput:
        if not self.random:
            zeros = torch.zeros(batch)
            return ModelOutput(torch.zeros(batch, LATENT_SIZE), zeros, zeros, torch.zeros(batch, width))
        return ModelOutput(
            latent=torch.randn(batch, LATENT_SIZE, generator=self.generator),
            value=torch.rand(batch, generator=self.generator),
            reward=torch.rand(batch, generator=self.generator),
            policy_logits=torch.randn(batch, width, generator=self.generator),
        )


def _best_rates(batched, per_node, batch: int) -> tuple[float, float]:
    """Simulations per second of each search (summed over the batch), from the fastest of
    ROUNDS interleaved runs: the machine is shared, and the fastest run is the least disturbed.
    One untimed run of each first, so that no first-call cost (the kernels' compilation) counts."""
    batched(), per_node()
    best = [float("inf"), float("inf")]
    for _ in range(ROUNDS):
        for i, search_once in enumerate((batched, per_node)):
            start = time.perf_counter()
            search_once()
            best[i] = min(best[i], time.perf_counter() - start)
    return batch * NUM_SIMULATIONS / best[0], batch * NUM_SIMULATIONS / best[1]


def _measure(model: TrivialModel, batch: int, config: MCTSConfig) -> tuple[float, float]:
    data = np.random.default_rng(batch)
    counts = data.integers(CANDIDATES[0], CANDIDATES[1] + 1, size=batch)
    observations = [f"room {i}" for i in range(batch)]
    candidates = [[f"action {a}" for a in range(n)] for n in counts]
    llm = [np.log(data.dirichlet(np.ones(n))) for n in counts]
    rng = np.random.default_rng(1)

    def batched() -> None:
        run_search(model, observations, candidates, llm, config, rng)

    def per_node() -> None:
        for i, n in enumerate(counts):
            noise = rng.dirichlet(np.full(n, config.dirichlet_alpha)).tolist()
            reference_search(model, observations[i], candidates[i], config, noise)

    return _best_rates(batched, per_node, batch)


def _first_search_seconds() -> float:
    """Seconds of this interpreter's first search: numba compiles the kernels, or loads them."""
    start = time.perf_counter()
    # With an LLM prior, so that every kernel runs.
    run_search(TrivialModel(random=True), ["room"], [["north", "south"]], [np.log([0.5, 0.5])],
               MCTSConfig(num_simulations=2), np.random.default_rng(0))
    return time.perf_counter() - start


def _compile_seconds() -> tuple[float, float]:
    """First-search seconds in two fresh interpreters sharing a new, empty numba cache folder:
    the first compiles every kernel, the second only loads them."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        command = [sys.executable, __file__, "--first-search"]
        cold, warm = (float(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
                      for _ in range(2))
    return cold, warm


def main() -> None:
    if sys.argv[1:] == ["--first-search"]:
        print(_first_search_seconds())
        return
    torch.set_num_threads(1)
    compile_s, cache_load_s = _compile_seconds()
    print(f"first search: {compile_s:.2f} s compiling the kernels, {cache_load_s:.2f} s loading them from the cache")
    config = MCTSConfig(num_simulations=NUM_SIMULATIONS)
    report: dict[str, object] = {
        "num_simulations": NUM_SIMULATIONS,
        "candidates": list(CANDIDATES),
        "compile_s": round(compile_s, 2),
        "cache_load_s": round(cache_load_s, 2),
    }
    for name in ("random", "constant"):
        model = TrivialModel(random=name == "random")
        rates = {batch: _measure(model, batch, config) for batch in BATCH_SIZES}
        for batch, (fast, slow) in rates.items():
            print(
                f"{name:8s} B={batch:3d}  batched {fast:9.0f} sims/s"
                f"   per-node reference {slow:7.0f} sims/s   x{fast / slow:.1f}"
            )
        report[name] = {
            "batched_sims_per_s": {str(b): round(r[0]) for b, r in rates.items()},
            "reference_sims_per_s": {str(b): round(r[1]) for b, r in rates.items()},
            "speedup_by_batch": {str(b): round(r[0] / r[1], 2) for b, r in rates.items()},
        }
    report["speedup"] = report["random"]["speedup_by_batch"]["8"]
    report["speedup_constant_model"] = report["constant"]["speedup_by_batch"]["8"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
