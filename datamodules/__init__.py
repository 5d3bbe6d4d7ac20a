"""The streaming collection DataModule."""
