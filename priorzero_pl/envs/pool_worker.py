"""Child side of :class:`~priorzero_pl.envs.env_pool.EnvPool`: one ``TextGame`` driven over a pipe.

Run as ``python -m priorzero_pl.envs.pool_worker FD``. Protocol (parent -> child, child -> parent):
``("init", path, seed, kwargs)`` -> ``("ready", name, max_score)`` or ``("error", kind, message)``;
``("reset",)`` or ``("step", action)`` -> ``("ok", StepRecord)`` or ``("error", "runtime", message)``.
The worker exits, closing its game, when the parent closes the pipe.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Callable

from priorzero_pl.envs.child_process import parent_connection
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.errors import PriorZeroInputError


class ValidActionClock:
    """Times the valid-action calls of a game's backend (its search, and the checks of a partial
    list's fallbacks), so that the record can say how long its valid actions took.

    The ``TextGame`` calls them inside ``reset`` / ``step``; the clock wraps the backend's two
    methods on that one instance (nothing else changes), and :meth:`take` returns the seconds
    since the last take."""

    def __init__(self, backend: Any) -> None:
        self.seconds = 0.0
        for name in ("valid_actions", "check_actions"):
            setattr(backend, name, self._timed(getattr(backend, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += perf_counter() - start

        return timed

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def main() -> None:
    """Build the game, then answer reset/step requests until the pipe closes."""
    connection = parent_connection()
    try:
        _, path, seed, options = connection.recv()
    except (EOFError, OSError):
        return  # the pool was closed while this worker was starting
    try:
        game = TextGame(path, seed=seed, **options)
    except PriorZeroInputError as exc:
        connection.send(("error", "input", str(exc)))
        return
    except Exception as exc:  # reported to the parent, which raises it naming the env
        connection.send(("error", "runtime", f"{type(exc).__name__}: {exc}"))
        return
    connection.send(("ready", game.name, game.max_score))
    clock = ValidActionClock(game.backend)
    with game:
        while True:
            try:
                request = connection.recv()
            except (EOFError, OSError):
                return
            clock.take()
            try:
                record = game.reset() if request[0] == "reset" else game.step(request[1])
            except Exception as exc:  # a caller's mistake (step after done): the parent raises it
                reply: tuple = ("error", "runtime", f"{type(exc).__name__}: {exc}")
            else:
                record.valid_actions_seconds = clock.take()
                reply = ("ok", record)
            try:
                connection.send(reply)
            except (BrokenPipeError, OSError):
                return


if __name__ == "__main__":
    main()
