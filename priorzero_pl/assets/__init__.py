"""Embedded default assets (no downloads): the shipped pretrained prior, the default game, and the
random tiny LM that plumbing tests use."""
