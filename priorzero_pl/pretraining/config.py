"""Settings of prior pretraining: the model's shape, the optimisation, the hardware."""

from __future__ import annotations

from dataclasses import dataclass

from priorzero_pl.assets.tiny_lm import check_shape, check_vocab_size
from priorzero_pl.errors import PriorZeroInputError

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")


@dataclass
class PretrainConfig:
    """How ``priorzero pretrain-prior`` builds and trains the prior (every field is a CLI flag)."""

    hidden_size: int = 128
    """Width of the Llama (the shipped prior: 128)."""
    num_layers: int = 4
    """Transformer blocks."""
    num_heads: int = 4
    """Query heads (``hidden_size`` must be a multiple of 4 per head)."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention when fewer than ``num_heads``)."""
    vocab_size: int = 2048
    """Byte-level BPE vocabulary, trained on the corpus text."""
    max_context: int = 2048
    """Positions the model takes; a prompt plus candidate longer than this is an error, never cut."""
    length_normalise: bool = True
    """Score candidates by mean token log-prob, as ``model.prior.length_normalise`` must then do too."""
    max_epochs: int = 6
    """Passes over the training games (early stopping may end sooner)."""
    batch_size: int = 16
    """Walkthrough steps per optimizer step."""
    lr: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to a tenth)."""
    weight_decay: float = 0.01
    warmup_steps: int = 20
    heldout_fraction: float = 0.1
    """Share of the corpus's games held out (whole games) for validation and early stopping."""
    val_every_n_steps: int = 50
    """Validate every this many optimizer steps (and at the end of each epoch)."""
    patience: int = 3
    """Stop after this many validations without a lower held-out loss."""
    seed: int = 0
    accelerator: str = "cpu"
    """``cpu``, ``gpu`` or ``auto`` (Lightning's names)."""
    devices: int = 1
    precision: str = "32-true"
    """Lightning precision: ``32-true`` on CPU; ``bf16-mixed`` on a GPU for larger models."""
    num_threads: int = 0
    """CPU threads for torch (0: torch's default). On a CPU shared with other jobs 1 is fastest:
    a small model's matrix products are too short to amortise waking a second thread."""

    def __post_init__(self) -> None:
        check_shape(
            hidden_size=self.hidden_size, num_layers=self.num_layers, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads
        )
        check_vocab_size(self.vocab_size)
        if self.max_context < 64:
            raise PriorZeroInputError(f"max_context must be >= 64 positions, got {self.max_context}")
        if self.max_epochs < 1 or self.batch_size < 1:
            raise PriorZeroInputError(f"max_epochs ({self.max_epochs}) and batch_size ({self.batch_size}) must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise PriorZeroInputError("lr must be > 0, weight_decay and warmup_steps >= 0")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise PriorZeroInputError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if self.val_every_n_steps < 1 or self.patience < 1:
            raise PriorZeroInputError("val_every_n_steps and patience must be >= 1")
        if self.num_threads < 0:
            raise PriorZeroInputError(f"num_threads must be >= 0 (0: torch's default), got {self.num_threads}")
        if self.precision not in PRECISIONS:
            raise PriorZeroInputError(f"precision '{self.precision}' unknown: choose from {list(PRECISIONS)}")
