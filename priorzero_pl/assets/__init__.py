"""Embedded default assets, built locally (no downloads): the tiny LM."""
