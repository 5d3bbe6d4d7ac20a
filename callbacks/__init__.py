"""Lightning callbacks for priorzero-pl: one concern per file."""

from callbacks.checkpointing import Checkpointing
from callbacks.evaluation import Evaluation
from callbacks.graceful_fallback import GracefulFallback
from callbacks.ppo import PPO
from callbacks.rft import RFT
from callbacks.transcripts import Transcripts
from callbacks.vllm_weight_sync import VLLMWeightSync

__all__ = ["Checkpointing", "Evaluation", "GracefulFallback", "PPO", "RFT", "Transcripts", "VLLMWeightSync"]
