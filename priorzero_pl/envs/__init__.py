"""Text games: one game (`TextGame`), many games in worker processes (`EnvPool`), game files."""
