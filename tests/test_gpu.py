"""GPU-only paths, gated like Lightning's ``RunIf``: they run on a machine with CUDA (and vLLM /
DeepSpeed installed) and skip elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tests.test_fit import tiny_args

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the vllm package ([vllm] extra)")
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")


@pytest.mark.gpu
@needs_cuda
@needs_vllm
def test_vllm_prior_matches_hf_prior(tiny_lm_path: Path) -> None:
    """The real engine scores the candidates like the HF backend does (same weights, bf16 noise)."""
    from priorzero_pl.models.llm import load_llm
    from priorzero_pl.prior import HFPrior, VLLMPrior

    model, tokenizer = load_llm(tiny_lm_path)
    prompt, candidates = "You are in a kitchen.\nValid actions:\n", ["open fridge", "go north", "take apple"]
    hf = HFPrior(model.cuda(), tokenizer).score([prompt], [candidates])[0]
    engine = VLLMPrior.from_model_path(tiny_lm_path, gpu_memory_utilization=0.2, enable_prefix_caching=True)
    try:
        vllm = engine.score([prompt], [candidates])[0]
    finally:
        engine.close()
    assert torch.allclose(vllm.exp(), hf.exp().cpu(), atol=2e-2)


@pytest.mark.gpu
@needs_cuda
@needs_deepspeed
def test_deepspeed_zero2_bf16_fit(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    from priorzero_pl.cli import build_cli

    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=4) + [
        "--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.strategy=deepspeed_stage_2",
        "--trainer.precision=bf16-mixed", "--model.prior.backends=[hf,uniform]",
    ]
    cli = build_cli(["fit", *args])
    assert cli.trainer.global_step == 4
    assert torch.isfinite(cli.trainer.logged_metrics["world_model/total"])
    assert type(cli.trainer.strategy).__name__ == "DeepSpeedStrategy"
