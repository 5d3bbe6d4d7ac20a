"""jsonargparse's error text turned into one line that names the key, the value and the fix.

Left alone, a config error prints ~118 lines of usage and then jsonargparse's report, in which
the cause of a misspelt callback sits mid-block and the last line is "Given value: ...". The CLI
raises the :class:`PriorZeroInputError` built here instead: the line first, then jsonargparse's
own report as detail for whoever needs it.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import re
from typing import Collection, Iterator

from priorzero_pl.errors import PriorZeroInputError

HELP_HINT = "`priorzero fit --help` lists every option"


def describe_parser_error(message: str, options: Collection[str] = ()) -> PriorZeroInputError:
    """The error to raise for jsonargparse's ``message``; ``options`` (``--model.mcts.num_simulations``,
    ...) are the parser's own, for a did-you-mean on an unknown key."""
    text = message.strip()
    detail = text if "\n" in text else ""
    unknown = re.match(r"unrecognized arguments: (\S+)", text)
    if unknown:
        token = unknown.group(1)
        key = token.split("=", 1)[0].lstrip("-")
        return PriorZeroInputError(f"unknown option {token}: {_did_you_mean(key, options, prefix='--')}", detail=detail)
    not_accepted = re.search(r"does not accept option '([^']+)'", text)
    if not_accepted:
        key = not_accepted.group(1)
        return PriorZeroInputError(f"unknown config key {key}: {_did_you_mean(key, options)}", detail=detail)
    keyed = re.match(r'Parser key "([^"]+)":\s*(.*)', text, flags=re.DOTALL)
    if keyed:
        return PriorZeroInputError(_keyed_headline(keyed.group(1), keyed.group(2)), detail=detail)
    return PriorZeroInputError(f"{text.splitlines()[0]} ({HELP_HINT})", detail=detail)


def option_names(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and of its subcommands' parsers."""
    return sorted(set(_walk_options(parser)))


def _walk_options(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        yield from (option for option in action.option_strings if option.startswith("--"))
        if isinstance(action.choices, dict):
            for sub in action.choices.values():
                if isinstance(sub, argparse.ArgumentParser):
                    yield from _walk_options(sub)


def _keyed_headline(key: str, body: str) -> str:
    """The line for an error jsonargparse reports against one key (``Parser key "data.batch_size": ...``)."""
    class_problem = re.search(r"Problem with given class_path '([^']+)':\s*\n\s*(.+)", body)
    if class_problem:
        class_path, reason = class_problem.group(1), class_problem.group(2).strip()
        return f"{key}: class_path {class_path!r}: {reason}; {_class_path_fix(class_path, reason)}"
    given = re.search(r"Given value: (.*)\s*$", body)
    typed = re.search(r"Expected a (.+?)\. Got value: (.*)", body)
    if typed:
        kind = _type_name(typed.group(1))
        return f"{key}={typed.group(2).strip()!r} is not {kind}: give {kind} ({HELP_HINT} and its type)"
    expected = re.findall(r"- Expected a (.+)", body)
    if given and expected:
        wanted = " or ".join(_type_name(kind) for kind in expected)
        return f"{key}={given.group(1).strip()!r} is not accepted: give {wanted}"
    first = next((line.strip(" -") for line in body.splitlines() if line.strip()), "invalid value")
    return f"{key}: {first} ({HELP_HINT})"


def _class_path_fix(class_path: str, reason: str) -> str:
    """A did-you-mean for a misspelt class or init argument, found by importing what does exist."""
    no_attribute = re.match(r"module '([^']+)' has no attribute '([^']+)'", reason)
    if no_attribute:
        module_name, name = no_attribute.groups()
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return "check the class path"
        classes = [attr for attr, value in vars(module).items() if inspect.isclass(value) and not attr.startswith("_")]
        close = difflib.get_close_matches(name, classes, n=1)
        return f"did you mean {module_name}.{close[0]}?" if close else f"{module_name} has {', '.join(sorted(classes))}"
    bad_option = re.match(r"Option '([^']+)' is not accepted", reason)
    if bad_option:
        module_name, _, class_name = class_path.rpartition(".")
        try:
            parameters = list(inspect.signature(getattr(importlib.import_module(module_name), class_name)).parameters)
        except (ImportError, AttributeError, ValueError):
            return "check its init_args"
        close = difflib.get_close_matches(bad_option.group(1), parameters, n=1)
        return f"did you mean init_args.{close[0]}?" if close else f"its init_args are {', '.join(parameters)}"
    return "check the class path and its init_args"


def _did_you_mean(key: str, options: Collection[str], *, prefix: str = "") -> str:
    keys = [option.lstrip("-") for option in options]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    return f"did you mean {prefix}{close[0]}? ({HELP_HINT})" if close else f"no such option ({HELP_HINT})"


def _type_name(kind: str) -> str:
    """``<class 'int'>`` -> ``an int``; ``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", kind.strip())
    if literal:
        return f"one of {literal.group(1)}"
    plain = re.fullmatch(r"<class '(?:builtins\.)?([\w.]+)'>", kind.strip())
    name = plain.group(1) if plain else kind.strip()
    if name == "NoneType":
        return "null"
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"
