"""priorzero-pl: PriorZero-style agents (MCTS in a learned world model, LLM prior) on text games.

Tokenizers' Rust thread pool does not survive ``fork`` (env workers, DataLoader workers, the vLLM
engine): its parallelism is turned off here, the one place every entry (the ``priorzero``
command, the tests, the benchmarks) passes before any tokenizer runs, so nothing forks with it on.
An explicit ``TOKENIZERS_PARALLELISM`` in the environment wins.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
