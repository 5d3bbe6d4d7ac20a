"""An asyncio event loop on its own thread, so that async engines serve synchronous callers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class BackgroundEventLoop:
    """Runs coroutines on a dedicated daemon thread and waits for them from the caller's thread.

    vLLM's async engine binds its output-handling task to the loop it first runs on, so the engine
    has to be created and used on one long-lived loop; the search and the trainer are synchronous
    and must not own that loop (Lightning may itself run inside one).
    """

    def __init__(self, name: str = "priorzero-prior-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coroutine`` on the loop and return its result (its exception is re-raised here).

        ``timeout_s`` bounds the wait from this thread; on expiry the coroutine is cancelled and
        ``TimeoutError`` raised.
        """
        if self._loop.is_closed():
            raise RuntimeError("the background event loop is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine's own TimeoutError, not this wait's
                raise
            # Before Python 3.11 this is not the builtin TimeoutError; callers catch the builtin.
            future.cancel()
            raise TimeoutError(f"background coroutine did not finish within {timeout_s} s") from None

    def close(self) -> None:
        """Stop the loop and join its thread; idempotent."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()
