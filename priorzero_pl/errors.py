"""The one exception type for bad user input.

The CLI prints a :class:`PriorZeroInputError` as a single line (no traceback), because the fix is on
the user's side: a path, a name, a config value. Everything else is a bug and keeps its traceback.
"""


class PriorZeroInputError(ValueError):
    """Bad input (missing file, wrong format, impossible config value) with an actionable message."""
