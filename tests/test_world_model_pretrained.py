"""The frozen local sentence-encoder option, on a tiny BERT saved with save_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.models import WorldModel, WorldModelConfig


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny_bert")
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = special + ["open", "the", "mailbox", "north", "south", "lamp", "take", "."]
    (directory / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertModel(config).save_pretrained(directory)
    return directory


def test_pretrained_encoder_is_frozen_and_trains_its_projection(tiny_bert_dir: Path) -> None:
    torch.manual_seed(0)
    config = WorldModelConfig(latent_dim=16, embed_dim=16, num_heads=2, pretrained_encoder_path=str(tiny_bert_dir))
    model = WorldModel(config)
    assert not any("bert" in name or "_backbone" in name for name in model.state_dict())
    output, context = model.initial_inference(["open the mailbox ."], [["north", "take lamp"]])
    assert output.latent.shape == (1, 16) and output.policy_logits.shape == (1, 2) and context.mask.all()
    child = model.recurrent_inference(output.latent, torch.tensor([1]), context)
    assert child.value.shape == (1,)
    latent = model.observation_encoder(["open the mailbox ."])
    latent.sum().backward()
    assert model.observation_encoder.project[0].weight.grad is not None
    assert all(p.grad is None for p in model.observation_encoder.backbone[0].parameters())


def test_pretrained_encoder_under_bf16_weights(tiny_bert_dir: Path) -> None:
    """DeepSpeed bf16 casts the module's parameters to bf16 and runs without autocast; the frozen
    backbone (not a submodule) stays fp32, so its pooled output must meet the projection in the
    projection's dtype."""
    torch.manual_seed(0)
    config = WorldModelConfig(latent_dim=16, embed_dim=16, num_heads=2, pretrained_encoder_path=str(tiny_bert_dir))
    model = WorldModel(config).to(torch.bfloat16)
    encoded = model.observation_encoder(["open the mailbox ."])
    assert encoded.dtype == torch.bfloat16
    assert model.observation_encoder.backbone[0].embeddings.word_embeddings.weight.dtype == torch.float32
    output, _ = model.initial_inference(["open the mailbox ."], [["north", "take lamp"]])
    assert output.latent.dtype == torch.bfloat16 and torch.isfinite(output.policy_logits.float()).all()


def test_missing_pretrained_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="no config.json"):
        WorldModel(WorldModelConfig(pretrained_encoder_path=str(tmp_path / "absent")))
