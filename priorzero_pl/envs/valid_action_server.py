"""Child side of :class:`~priorzero_pl.envs.valid_actions.ValidActionOracle`: Jericho's valid-action search.

Run as ``python -m priorzero_pl.envs.valid_action_server FD STORY SEED``. It receives game states
(``FrotzEnv.get_state()`` tuples) and answers each with ``get_valid_actions()`` for that state, so
that the parent can kill it when the search hangs. It exits when the parent closes the pipe.
"""

from __future__ import annotations

import sys
import traceback

from priorzero_pl.envs.child_process import parent_connection


def main() -> None:
    """Serve valid-action requests until the parent goes away."""
    connection = parent_connection()
    story, seed = sys.argv[2], int(sys.argv[3])
    # spaCy's thinc imports torch when it can (1.5 s per start); this process never needs it.
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from jericho import FrotzEnv

        from priorzero_pl.envs.spacy_pipeline import install_spacy_pipeline

        install_spacy_pipeline()
        env = FrotzEnv(story, seed)
        env.reset()
    except Exception as exc:  # reported to the parent, which raises it with context
        connection.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return
    connection.send(("ready", "", ""))
    while True:
        try:
            state = connection.recv()
        except (EOFError, OSError):
            return
        env.set_state(state)
        # use_parallel=False: Jericho's own parallel mode forks a multiprocessing pool per game.
        actions = env.get_valid_actions(use_parallel=False)
        try:
            connection.send(actions)
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    main()
