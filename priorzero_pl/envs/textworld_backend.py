"""TextWorld-generated games (``tw-make`` output: ``.z8`` plus its ``.json``) through TextWorld's API.

Bare Frotz on such a ``.z8`` reports max score 0 and no valid actions; TextWorld tracks the game's
logical state from the ``.json`` and derives score, admissible commands and the walkthrough from it.

The observation is the inventory followed by the game's feedback, as TextWorld agents commonly
read it (GATA, LightZero's TextWorld env): a cooking game is a sequence of take / cut / cook
steps whose right next step depends on what is carried, which the last few messages rarely say.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any, Callable

from jericho.jericho import UnsupportedGameWarning

from priorzero_pl.envs.backend import BackendObservation, ValidActions, frotz_seed
from priorzero_pl.errors import PriorZeroInputError


_WORD = re.compile(r"[A-Za-z]{2,}")


def strip_banner(text: str) -> str:
    """Drop the ASCII-art title TextWorld prints before the intro: lines without a single word.

    The banner is ~1,500 characters of ``$$`` and backslashes; left in, it fills the prompt's
    observation budget and the world model's token budget with noise."""
    lines = text.splitlines()
    while lines and not _WORD.search(lines[0]):
        lines.pop(0)
    return "\n".join(lines).strip()


class TextWorldBackend:
    """A ``tw-make`` game run by ``textworld.start`` with state tracking switched on.

    ``track_winning_plan`` makes TextWorld replan the commands that win from the current state
    after every step (:meth:`winning_plan`, an expert for any state: what the corpus labels
    off-walkthrough states with); it costs 1-5 ms a step, so only the corpus asks for it.
    """

    def __init__(self, story: Path, seed: int, *, track_winning_plan: bool = False) -> None:
        # Imported here: textworld costs half a second to import and Jericho-only runs never need it.
        import textworld

        infos = textworld.EnvInfos(
            feedback=True,
            admissible_commands=True,
            facts=True,
            score=True,
            max_score=True,
            moves=True,
            won=True,
            lost=True,
            inventory=True,
            policy_commands=track_winning_plan,
            extras=["walkthrough"],
        )
        self._story = story
        self._track_winning_plan = track_winning_plan
        self._env = textworld.start(str(story), request_infos=infos)
        self._env.seed(frotz_seed(seed, None))
        # TextWorld reports max score and walkthrough only in a game state, so start the game once here.
        self._state: dict = self._quiet(self._env.reset)
        self._max_score = float(self._state["max_score"])
        self._walkthrough = list(self._state.get("extra.walkthrough") or []) or None

    @property
    def name(self) -> str:
        """The file stem (tw-make names games by family and seed)."""
        return self._story.stem

    @property
    def max_score(self) -> float:
        """The game's maximum score (the sum of its quests' rewards)."""
        return self._max_score

    def reset(self) -> BackendObservation:
        """Restart the game."""
        self._state = self._quiet(self._env.reset)
        return self._observe()

    def step(self, action: str) -> BackendObservation:
        """Send one command through TextWorld (which updates its logical state)."""
        self._state, _, _ = self._quiet(self._env.step, action)
        return self._observe()

    def state_hash(self) -> str:
        """Hash of the logical world state (TextWorld's facts) and the score, independent of move count."""
        facts = "\n".join(sorted(str(fact) for fact in self._state["facts"]))
        return hashlib.md5(f"{facts}\nscore={self._state['score']}".encode()).hexdigest()

    def cache_key(self) -> str:
        """The logical state (:meth:`state_hash`): TextWorld derives admissible commands from its facts."""
        return self.state_hash()

    def location(self) -> str:
        """Unused: TextWorld's commands never time out, so no fallback list is needed."""
        return ""

    def valid_actions(self, timeout: float) -> ValidActions | None:
        """TextWorld's admissible commands (already computed by the step, so ``timeout`` never bites)."""
        return ValidActions(list(self._state["admissible_commands"] or []), complete=True)

    def check_actions(self, actions: list[str]) -> list[str]:
        """Those of ``actions`` that TextWorld admits now."""
        admissible = set(self._state["admissible_commands"] or [])
        return [action for action in actions if action in admissible]

    def walkthrough(self) -> list[str] | None:
        """The winning command list TextWorld stored when it generated the game."""
        return list(self._walkthrough) if self._walkthrough else None

    def winning_plan(self) -> list[str] | None:
        """The shortest command list TextWorld knows that wins from the current state; None when none does.

        None also after the game ended, or when a quest can no longer be completed (e.g. a burnt meal).
        """
        if not self._track_winning_plan:
            raise PriorZeroInputError(f"{self._story}: winning_plan() needs the backend opened with track_winning_plan=True")
        plan = self._state.get("policy_commands")
        return list(plan) if plan else None

    def close(self) -> None:
        """Free the interpreter."""
        self._env.close()

    @staticmethod
    def _quiet(call: Callable[..., Any], *args: object) -> Any:
        # TextWorld asks Frotz for a walkthrough and valid actions it knows a .z8 build cannot have;
        # its own tracker supplies both, so Jericho's warnings about it are noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsupportedGameWarning)
            return call(*args)

    def _observe(self) -> BackendObservation:
        won = bool(self._state["won"])
        feedback = strip_banner(str(self._state["feedback"]))
        inventory = str(self._state["inventory"] or "").strip()
        return BackendObservation(
            observation=f"{inventory}\n\n{feedback}" if inventory else feedback,
            score=float(self._state["score"]),
            moves=int(self._state["moves"] or 0),
            done=won or bool(self._state["lost"]),
            won=won,
        )
