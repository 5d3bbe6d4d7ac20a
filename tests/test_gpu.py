"""GPU-only paths, gated like Lightning's ``RunIf``: they run on a machine with CUDA (and vLLM /
DeepSpeed installed) and skip elsewhere. ``make gpu-check`` runs them with the rest of the GPU check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the vllm package ([vllm] extra)")
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PROMPT = "You are in a kitchen.\nValid actions:\n"
CANDIDATES = ["open fridge", "go north", "take apple", "wait"]


@pytest.mark.gpu
@needs_cuda
@needs_vllm
def test_vllm_prior_matches_hf_prior(tiny_lm_path: Path) -> None:
    """The real engine scores the candidates like the HF backend does (same weights, bf16 noise)."""
    from priorzero_pl.llm import LLMPolicy, load_llm
    from priorzero_pl.prior import HFPrior, VLLMPrior

    model, tokenizer = load_llm(tiny_lm_path)
    hf = HFPrior(LLMPolicy(model.cuda(), tokenizer)).score([PROMPT], [CANDIDATES])[0]
    engine = VLLMPrior.from_model_path(tiny_lm_path, gpu_memory_utilization=0.2, enable_prefix_caching=True)
    try:
        vllm = engine.score([PROMPT], [CANDIDATES])[0]
    finally:
        engine.close()
    assert torch.allclose(vllm.exp(), hf.exp().cpu(), atol=2e-2)


@pytest.mark.gpu
@needs_cuda
@needs_vllm
def test_vllm_weight_sync_scores_with_the_new_weights(tiny_lm_path: Path) -> None:
    """Weight sync verified, not assumed: after the LLM changes materially and its weights are
    pushed, the engine's candidate probabilities are the HF prior's on the new weights (bf16
    tolerance) and no longer the old ones."""
    from priorzero_pl.llm import LLMPolicy, load_llm
    from priorzero_pl.prior import HFPrior, VLLMPrior

    model, tokenizer = load_llm(tiny_lm_path)
    model.cuda()
    hf = HFPrior(LLMPolicy(model, tokenizer))
    engine = VLLMPrior.from_model_path(tiny_lm_path, gpu_memory_utilization=0.2, enable_prefix_caching=True)
    try:
        old = engine.score([PROMPT], [CANDIDATES])[0].exp()
        generator = torch.Generator(device="cuda").manual_seed(0)
        with torch.no_grad():
            for param in model.parameters():  # noise as large as the weights: a different model
                param.add_(torch.randn(param.shape, generator=generator, device="cuda") * param.abs().mean())
        want = hf.score([PROMPT], [CANDIDATES])[0].exp()
        assert (want - old).abs().max() > 0.1, "the perturbation should move the prior materially"
        engine.load_weights(model.named_parameters())
        got = engine.score([PROMPT], [CANDIDATES])[0].exp()
    finally:
        engine.close()
    assert torch.allclose(got, want, atol=2e-2), (got, want)
    assert (got - old).abs().max() > 0.05


@pytest.mark.gpu
@needs_cuda
@needs_deepspeed
def test_deepspeed_zero2_bf16_fit(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    """The GPU config itself (``configs/gpu.yaml`` + the TextWorld overlay), shrunk to 4 steps."""
    from priorzero_pl.cli import build_cli

    args = [
        "--config", str(CONFIGS / "gpu.yaml"),
        "--config", str(CONFIGS / "textworld.yaml"),
        f"--model.llm.path={tiny_lm_path}",
        f"--data.game={tw_game_path}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.max_steps=4",
        "--trainer.val_check_interval=4",
        "--trainer.enable_progress_bar=false",
        "--trainer.strategy.init_args.logging_batch_size_per_gpu=4",
        "--model.prior.backends=[hf,uniform]",
        "--model.mcts.num_simulations=4",
        "--data.num_envs=2",
        "--data.batch_size=4",
        "--data.collect_steps=4",
        "--data.batches_per_collect=2",
        "--data.warmup_steps=8",
        "--data.max_episode_steps=6",
    ]
    cli = build_cli(["fit", *args])
    assert cli.trainer.global_step == 4
    assert torch.isfinite(cli.trainer.logged_metrics["world_model/total"])
    assert type(cli.trainer.strategy).__name__ == "DeepSpeedStrategy"
    assert next(cli.model.llm.parameters()).dtype == torch.bfloat16
