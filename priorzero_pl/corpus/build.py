"""``priorzero corpus --out DIR``: generate games, play their walkthroughs, write records and manifest.

The output directory holds ``games/`` (the generated games, reused by a rerun), ``records.jsonl``
(one :class:`CorpusStep` per step of each game's walkthrough and of its noise-injected expert
episodes, see :mod:`~priorzero_pl.corpus.noisy_expert`) and ``manifest.json`` (every game, the prompt
settings, the split rule, the records' SHA-256 and the command that rebuilds it). Everything
follows from the command line: the same command writes the same records, byte for byte.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from priorzero_pl.assets.tiny_lm import template_tokenizer
import numpy as np

from priorzero_pl.corpus.manifest import CorpusManifest, GameEntry, PromptSettings, game_uuid
from priorzero_pl.corpus.noisy_expert import play_noisy_expert
from priorzero_pl.corpus.plan import DEFAULT_FAMILY_WEIGHTS, CorpusPlan
from priorzero_pl.corpus.records import RECORDS_FILE, CorpusStep, write_records
from priorzero_pl.corpus.spec import split_rule
from priorzero_pl.corpus.walkthrough import play_walkthrough
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.prior.prompt import PROMPT_VERSION, PromptBuilder

log = logging.getLogger(__name__)

DEFAULT_HISTORY_LEN = 4
DEFAULT_MAX_OBSERVATION_CHARS = 512
DEFAULT_NOTES = 0
"""The prompt settings of ``configs/debug.yaml``'s ``model.prior`` (a test keeps them equal)."""

DEFAULT_NOISY_EPISODES = 3
DEFAULT_NOISE = 0.3
"""Noise-injected expert episodes per game and the chance that one of their steps plays a random candidate."""

NOISY_EPISODE_STEPS = 3
"""A noisy episode stops after this many times the walkthrough's length (noise can loop)."""


def build_corpus(
    out_dir: Path,
    plan: CorpusPlan,
    *,
    history_len: int = DEFAULT_HISTORY_LEN,
    max_observation_chars: int = DEFAULT_MAX_OBSERVATION_CHARS,
    notes: int = DEFAULT_NOTES,
    use_chat_template: bool = True,
    noisy_episodes: int = DEFAULT_NOISY_EPISODES,
    noise: float = DEFAULT_NOISE,
    command: str = "",
    progress: bool = True,
) -> CorpusManifest:
    """Build the corpus of ``plan`` into ``out_dir`` and return its manifest (also written there).

    A game that TextWorld cannot generate (no quest fits the drawn map) is listed with its error
    and skipped; the manifest's records hash covers every step written. Each game's walkthrough is
    followed by ``noisy_episodes`` expert episodes with ``noise`` (drawn from the game's seed);
    a noisy step whose prompt and label the game already recorded is dropped, so the states
    before the first deviation are not counted again.
    """
    if noisy_episodes < 0:
        raise PriorZeroInputError(f"noisy_episodes={noisy_episodes}: must be >= 0")
    if not 0.0 <= noise < 1.0:
        raise PriorZeroInputError(f"noise={noise}: must be a probability in [0, 1)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = PromptBuilder(
        template_tokenizer(),
        history_len=history_len,
        max_observation_chars=max_observation_chars,
        use_chat_template=use_chat_template,
        notes=notes,
    )
    entries: list[GameEntry] = []
    steps: list[CorpusStep] = []
    bar = tqdm(plan.games(), desc=f"corpus ({plan.split})", unit="game", disable=not progress)
    for spec in bar:
        try:
            game_file = spec.make(out_dir / "games")
        except PriorZeroInputError as exc:
            log.info("skipped %s: %s", spec.to_dict(), exc)
            entries.append(GameEntry(id=f"{spec.family}-seed{spec.seed}", spec=spec.to_dict(), error=str(exc)))
            continue
        played = play_walkthrough(game_file, game_file.stem, builder)
        seen = {(step.prompt, step.action) for step in played.steps}
        noisy: list[CorpusStep] = []
        for episode in range(1, noisy_episodes + 1):
            rng = np.random.default_rng([spec.seed, episode])
            max_steps = NOISY_EPISODE_STEPS * max(len(played.steps), 1)
            for step in play_noisy_expert(
                game_file, game_file.stem, builder, episode=episode, noise=noise, rng=rng, max_steps=max_steps,
                walkthrough=[step.action for step in played.steps],
            ):
                if (step.prompt, step.action) not in seen:
                    seen.add((step.prompt, step.action))
                    noisy.append(step)
        entries.append(
            GameEntry(
                id=game_file.stem,
                spec=spec.to_dict(),
                uuid=game_uuid(game_file),
                steps=len(played.steps),
                noisy_steps=len(noisy),
                off_candidate_steps=played.off_candidate_steps,
                fallback_steps=played.fallback_steps,
                score=played.score,
                max_score=played.max_score,
                won=played.won,
            )
        )
        steps.extend(played.steps)
        steps.extend(noisy)
        bar.set_postfix(steps=len(steps), failed=sum(e.error is not None for e in entries))
    digest = write_records(out_dir / RECORDS_FILE, steps)
    first, last = plan.seed_range
    manifest = CorpusManifest(
        split=plan.split,
        seed_start=first,
        seed_end=last,
        family_weights=dict(plan.family_weights),
        cooking_options=plan.cooking_options,
        prompt=PromptSettings(
            prompt_version=PROMPT_VERSION,
            history_len=history_len,
            max_observation_chars=max_observation_chars,
            use_chat_template=builder.use_chat_template,
            chat_template=builder.tokenizer.chat_template if builder.use_chat_template else None,
            notes=notes,
        ),
        split_rule=split_rule(),
        noisy_episodes=noisy_episodes,
        noise=noise,
        games=entries,
        num_records=len(steps),
        records_sha256=digest,
        command=command,
    )
    manifest.save(out_dir)
    return manifest


def _family_weights(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in text.split(","):
        family, sep, weight = item.strip().partition("=")
        try:
            weights[family] = float(weight) if sep else 1.0
        except ValueError:
            raise PriorZeroInputError(f"--families item {item!r}: expected FAMILY or FAMILY=WEIGHT") from None
    return weights


def _cooking_options(text: str) -> dict[str, object]:
    options: dict[str, object] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            options[key] = True
        elif value.lower() in ("true", "false"):
            options[key] = value.lower() == "true"
        else:
            try:
                options[key] = int(value)
            except ValueError:
                raise PriorZeroInputError(f"--cooking item {item!r}: expected KEY=INT, KEY=true|false or KEY") from None
    return options


def _join(options: dict[str, object]) -> str:
    return ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items())


def parser() -> argparse.ArgumentParser:
    """The ``priorzero corpus`` command line."""
    p = argparse.ArgumentParser(prog="priorzero corpus", description="Build a walkthrough corpus of TextWorld games.")
    p.add_argument("--out", type=Path, required=True, help="corpus directory (games/, records.jsonl, manifest.json)")
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="train: a pretraining corpus; test: unseen evaluation games (default: train)")
    p.add_argument("--games", type=int, default=CorpusPlan.num_games, help="number of games (default: %(default)s)")
    p.add_argument("--seed-start", type=int, default=None,
                   help="seed of the first game; game i has seed SEED_START + i (default: 100000 for train, 1 for test)")
    p.add_argument("--families", type=_family_weights,
                   default=",".join(f"{k}={v:g}" for k, v in DEFAULT_FAMILY_WEIGHTS.items()),
                   help="FAMILY[=WEIGHT],... (default: %(default)s)")
    p.add_argument("--cooking", type=_cooking_options, default=None,
                   help="one fixed tw-cooking difficulty, e.g. recipe=1,take=1,go=1,cut=true (default: drawn across the range)")
    p.add_argument("--history-len", type=int, default=DEFAULT_HISTORY_LEN, help="prompt setting (default: %(default)s)")
    p.add_argument("--max-observation-chars", type=int, default=DEFAULT_MAX_OBSERVATION_CHARS,
                   help="prompt setting (default: %(default)s)")
    p.add_argument("--noisy-episodes", type=int, default=DEFAULT_NOISY_EPISODES,
                   help="noise-injected expert episodes per game, labelled by TextWorld's winning plan (default: %(default)s)")
    p.add_argument("--noise", type=float, default=DEFAULT_NOISE,
                   help="chance that a noisy episode's step plays a random other candidate (default: %(default)s)")
    p.add_argument("--notes", type=int, default=DEFAULT_NOTES,
                   help="prompt setting: older reading steps kept as notes (default: %(default)s)")
    p.add_argument("--no-chat-template", action="store_true", help="render plain prompts instead of chat turns")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str]) -> CorpusManifest:
    """Parse ``argv`` (the arguments after ``corpus``) and build the corpus."""
    args = parser().parse_args(list(argv))
    family_weights = args.families
    plan = CorpusPlan(
        split=args.split,
        num_games=args.games,
        seed_start=args.seed_start,
        family_weights=family_weights,
        cooking_options=args.cooking,
    )
    command = shlex.join(
        [
            "priorzero", "corpus", "--out", str(args.out), "--split", plan.split, "--games", str(plan.num_games),
            "--seed-start", str(plan.seed_start), "--families", ",".join(f"{k}={v:g}" for k, v in family_weights.items()),
            *(["--cooking", _join(plan.cooking_options)] if plan.cooking_options is not None else []),
            "--history-len", str(args.history_len), "--max-observation-chars", str(args.max_observation_chars),
            "--notes", str(args.notes), "--noisy-episodes", str(args.noisy_episodes), "--noise", f"{args.noise:g}",
            *(["--no-chat-template"] if args.no_chat_template else []),
        ]
    )
    manifest = build_corpus(
        args.out,
        plan,
        history_len=args.history_len,
        max_observation_chars=args.max_observation_chars,
        notes=args.notes,
        use_chat_template=not args.no_chat_template,
        noisy_episodes=args.noisy_episodes,
        noise=args.noise,
        command=command,
        progress=not args.no_progress,
    )
    built = manifest.built_games()
    print(
        f"corpus {args.out}: {len(built)} games ({len(manifest.games) - len(built)} failed to generate), "
        f"{manifest.num_records} steps, records sha256 {manifest.records_sha256[:12]}"
    )
    return manifest
