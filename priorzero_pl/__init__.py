"""priorzero-pl: PriorZero-style agents (MCTS in a learned world model, LLM prior) on text games."""

__version__ = "0.1.0"
