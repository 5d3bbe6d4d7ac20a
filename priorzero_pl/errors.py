"""The one exception type for bad user input.

The CLI prints a :class:`PriorZeroInputError` as one line (no traceback), because the fix is on
the user's side: a path, a name, a config value. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PriorZeroInputError(ValueError):
    """Bad input (missing file, wrong format, impossible config value) with an actionable message.

    ``str(error)`` is the one line that names the key, the value and the fix. ``detail`` is what
    the CLI prints under it, indented: the raw text of the library that found the fault, for the
    rare reader who needs more than the line.
    """

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
