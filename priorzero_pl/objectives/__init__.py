"""LLM training objectives: pure loss functions the module applies when callbacks schedule them."""
