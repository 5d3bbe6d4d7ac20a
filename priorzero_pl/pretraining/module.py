"""The LightningModule that pretrains a causal LM as a prior over walkthrough actions.

The loss is the cross-entropy of the walkthrough's action among the step's candidates, with the
candidates scored and normalised by :class:`~priorzero_pl.llm.LLMPolicy`: the very computation the ``hf`` prior runs when the agent acts and that distillation trains, so the
pretrained model is good at exactly what it will be asked.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from priorzero_pl.corpus.records import CorpusStep
from priorzero_pl.pretraining.config import PretrainConfig
from priorzero_pl.pretraining.heldout import action_rank
from priorzero_pl.llm.policy import LLMPolicy


class PriorPretraining(L.LightningModule):
    """Trains ``model`` to put the walkthrough's action first among the candidates.

    Logs ``train/loss`` and ``train/top1`` every step, and ``val/loss``, ``val/top1`` and
    ``val/mean_rank`` on the held-out games (``val/loss`` drives early stopping).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: PretrainConfig) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.policy = LLMPolicy(model, tokenizer, length_normalise=config.length_normalise)

    def _log_priors(self, batch: list[CorpusStep]) -> list[torch.Tensor]:
        return self.policy.log_probs([s.prompt for s in batch], [s.candidates for s in batch])

    def training_step(self, batch: list[CorpusStep], batch_idx: int) -> torch.Tensor:
        log_priors = self._log_priors(batch)
        loss = -torch.stack([lp[s.action_index] for lp, s in zip(log_priors, batch)]).mean()
        top1 = sum(action_rank(lp.detach(), s.action_index)[0] for lp, s in zip(log_priors, batch)) / len(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/top1", top1, prog_bar=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch: list[CorpusStep], batch_idx: int) -> None:
        log_priors = self._log_priors(batch)
        ranks = [action_rank(lp, s.action_index) for lp, s in zip(log_priors, batch)]
        loss = -torch.stack([lp[s.action_index] for lp, s in zip(log_priors, batch)]).mean()
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("val/top1", sum(r[0] for r in ranks) / len(batch), prog_bar=True, batch_size=len(batch))
        self.log("val/mean_rank", sum(r[1] for r in ranks) / len(batch), batch_size=len(batch))

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union of return types
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.config.warmup_steps, total // 2)

        def factor(step: int) -> float:
            # Linear warm-up, then cosine decay to a tenth of the peak: a short run still ends on a small rate.
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
