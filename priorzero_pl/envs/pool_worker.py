"""Child side of :class:`~priorzero_pl.envs.env_pool.EnvPool`: one ``TextGame`` driven over a pipe.

Run as ``python -m priorzero_pl.envs.pool_worker FD``. Protocol (parent -> child, child -> parent):
``("init", path, seed, kwargs)`` -> ``("ready", name, max_score)`` or ``("error", kind, message)``;
``("reset",)`` or ``("step", action)`` -> ``("ok", StepRecord)`` or ``("error", "runtime", message)``.
The worker exits, closing its game, when the parent closes the pipe.
"""

from __future__ import annotations

from priorzero_pl.envs.child_process import parent_connection
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.errors import PriorZeroInputError


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
    with game:
        while True:
            try:
                request = connection.recv()
            except (EOFError, OSError):
                return
            try:
                record = game.reset() if request[0] == "reset" else game.step(request[1])
            except Exception as exc:  # a caller's mistake (step after done): the parent raises it
                reply: tuple = ("error", "runtime", f"{type(exc).__name__}: {exc}")
            else:
                reply = ("ok", record)
            try:
                connection.send(reply)
            except (BrokenPipeError, OSError):
                return


if __name__ == "__main__":
    main()
