"""The text the LLM prior reads before it scores each candidate action.

One prompt per game state, the same for every candidate: the candidates are scored as the
model's answer *after* it, so that the prompt's KV (HF) or prefix-cache blocks (vLLM) are
computed once and shared. Anything that changes the text bumps :data:`PROMPT_VERSION`, because
prompts are stored in the replay buffer and reused for LLM training: the module's checkpoint and
every saved episode record it, and a resume that brings back prompts of another version warns
(:func:`priorzero_pl.resume.warn_on_other_prompt_versions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from priorzero_pl.errors import PriorZeroInputError

PROMPT_VERSION = "priorzero-prompt-v1"

SYSTEM_INSTRUCTION = (
    "You are playing a text adventure game. Read the recent history and the current observation, "
    "then choose the next action that makes the most progress toward winning."
)
ANSWER_INSTRUCTION = "Answer with exactly one action from the list of valid actions."
PLAIN_ANSWER_CUE = "Next action:\n"
"""Ends the plain prompt with a newline: byte-level and SentencePiece tokenizers both keep a newline
apart from the following word, so the action's first token does not merge into the prompt."""


READING_VERBS = ("examine ", "read ", "look at ", "x ")
"""Commands whose answer is text to remember (a recipe, a note, an inscription), not a change of
state: they are what a player re-reads, and what a few steps of history forget first."""


@dataclass
class HistoryStep:
    """One past step shown to the prior: what the game said, what was done, what it paid."""

    observation: str
    action: str
    reward: float


@dataclass
class Note:
    """A reading action from earlier in the episode and the text the game answered with."""

    action: str
    text: str


def is_reading(action: str) -> bool:
    """Whether ``action`` starts with one of :data:`READING_VERBS`."""
    return action.strip().lower().startswith(READING_VERBS)


def _cut(text: str, max_chars: int) -> str:
    """Keep the *start* of long observations: room name and description come first in IF output."""
    text = text.strip()
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " ..."


def _format_reward(reward: float) -> str:
    return f"{reward:g}"


class PromptBuilder:
    """Builds the prior's prompt for a game state.

    Args:
        tokenizer: its chat template (when present and ``use_chat_template``) wraps the prompt as
            a system + user turn followed by the assistant generation prompt.
        history_len: how many most recent steps are shown (0 shows none).
        notes: how many reading steps (:data:`READING_VERBS`) from before those recent steps are
            kept as notes, the newest ones with distinct answers. Without them a cooking game's
            recipe leaves a 4-step history four steps after the cookbook was read. (The shipped
            tiny prior, retrained with 2 notes, did not play better: README, "embedded prior".)
        max_observation_chars: each observation (past and current) is cut to this many characters,
            so a verbose game cannot push the candidates out of the model's context.
        use_chat_template: False forces the plain template even for chat models.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        history_len: int = 4,
        max_observation_chars: int = 512,
        use_chat_template: bool = True,
        notes: int = 0,
    ) -> None:
        if history_len < 0:
            raise PriorZeroInputError(f"history_len must be >= 0, got {history_len}")
        if notes < 0:
            raise PriorZeroInputError(f"notes must be >= 0, got {notes}")
        if max_observation_chars <= 0:
            raise PriorZeroInputError(f"max_observation_chars must be > 0, got {max_observation_chars}")
        self.tokenizer = tokenizer
        self.history_len = history_len
        self.notes = notes
        self.max_observation_chars = max_observation_chars
        self.use_chat_template = use_chat_template and bool(getattr(tokenizer, "chat_template", None))

    def visible(self, history: Sequence[HistoryStep]) -> tuple[list[Note], list[HistoryStep]]:
        """``(notes, recent)``: what the prompt shows of ``history`` (the whole episode so far).

        A reading step's note is what the game answered, the *next* step's observation; notes
        come from before the recent steps, and a text the prompt already shows is not noted again.
        """
        past = list(history)
        start = max(0, len(past) - self.history_len) if self.history_len else len(past)
        recent = past[start:]
        seen = {step.observation.strip() for step in recent}
        notes: list[Note] = []
        for index in range(min(start, len(past) - 1) - 1, -1, -1):
            if len(notes) == self.notes:
                break
            answer = past[index + 1].observation
            if is_reading(past[index].action) and answer.strip() not in seen:
                seen.add(answer.strip())
                notes.append(Note(past[index].action, answer))
        return notes[::-1], recent

    def user_message(
        self, notes: Sequence[Note], recent: Sequence[HistoryStep], observation: str, candidates: Sequence[str]
    ) -> str:
        """The body of the prompt (notes, recent history, observation, candidates, instruction), template-free."""
        if not candidates:
            raise PriorZeroInputError("a prompt needs at least one candidate action")
        parts: list[str] = []
        if notes:
            lines = ["Notes from earlier reading (oldest first):"]
            for note in notes:
                lines.append(f"Action: {note.action}")
                lines.append(f"Result: {_cut(note.text, self.max_observation_chars)}")
            parts.append("\n".join(lines))
        if recent:
            lines = ["Recent history (oldest first):"]
            for step in recent:
                lines.append(f"Observation: {_cut(step.observation, self.max_observation_chars)}")
                lines.append(f"Action: {step.action}")
                lines.append(f"Reward: {_format_reward(step.reward)}")
            parts.append("\n".join(lines))
        parts.append(f"Current observation:\n{_cut(observation, self.max_observation_chars)}")
        parts.append("Valid actions:\n" + "\n".join(f"- {c}" for c in candidates))
        parts.append(ANSWER_INSTRUCTION)
        return "\n\n".join(parts)

    def build(self, history: Sequence[HistoryStep], observation: str, candidates: Sequence[str]) -> str:
        """The full prompt after ``history`` (the episode so far); a candidate's score is the
        log-prob of its text (then eos) after it."""
        return self.render(*self.visible(history), observation, candidates)

    def render(
        self, notes: Sequence[Note], recent: Sequence[HistoryStep], observation: str, candidates: Sequence[str]
    ) -> str:
        """The full prompt from what :meth:`visible` selected (a corpus record stores just that)."""
        user = self.user_message(notes, recent, observation, candidates)
        if not self.use_chat_template:
            return f"{SYSTEM_INSTRUCTION}\n\n{user}\n\n{PLAIN_ANSWER_CUE}"
        messages = [{"role": "system", "content": SYSTEM_INSTRUCTION}, {"role": "user", "content": user}]
        try:
            return self._render(messages)
        except TemplateError as exc:
            # Some chat templates (Gemma, early Mistral) reject a system turn; they still take the
            # instruction when it opens the user turn.
            if "system" not in str(exc).lower():
                raise
            merged = [{"role": "user", "content": f"{SYSTEM_INSTRUCTION}\n\n{user}"}]
            return self._render(merged)

    def _render(self, messages: list[dict[str, str]]) -> str:
        rendered = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if not isinstance(rendered, str):
            raise TypeError(f"apply_chat_template(tokenize=False) returned {type(rendered).__name__}, expected str")
        return rendered
