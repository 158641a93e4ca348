"""``--config FILE``: a command's settings from a JSON file; options on the command line override them.

A run configuration (the files under the project's ``configs/``) holds one section per command,
keyed by the command's name, whose keys are the command's option names with ``_`` for ``-``
(``dataset_root`` for ``--dataset-root``; positional arguments by their name, e.g. ``dataset`` and
``root`` of ``prepare``)::

    {"description": "zero-shot test on MVTec-AD",
     "prepare":  {"dataset": "mvtec", "root": "${MVTEC}", "out": "${WORK:-runs}/manifests/mvtec.jsonl"},
     "evaluate": {"protocol": "paper", ...}}

String values may use ``${NAME}`` (an environment variable, which must be set) and
``${NAME:-default}``. Unknown keys, unknown choices and unset variables are refused with a message
naming the file, the key and the choices, so a typo never runs with a silent default.
Standard library only: ``--help`` and option errors stay instant.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_OPTION", "apply_config", "read_config", "split_config_argument"]

CONFIG_OPTION = "--config"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_RESERVED = {"description"}  # top-level keys that are not command sections


def split_config_argument(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` (or ``--config=FILE``) out of ``argv``; (FILE or None, the rest)."""
    rest, path = [], None
    items = iter(argv)
    for item in items:
        if item == CONFIG_OPTION:
            path = next(items, None)
            if path is None:
                raise ValueError(f"{CONFIG_OPTION} needs a file name")
        elif item.startswith(CONFIG_OPTION + "="):
            path = item.split("=", 1)[1]
        else:
            rest.append(item)
    return path, rest


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ValueError(f"{where}: environment variable {name} is not set (export it, or write ${{{name}:-default}})")

    return _VARIABLE.sub(substitute, value)


def read_config(path: str | os.PathLike, command: str) -> dict[str, Any]:
    """The ``command`` section of a run configuration, with variables expanded.

    Raises:
        ValueError: unreadable file, not a JSON object, no section for ``command``, or an unset variable.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read the run configuration {path}: {err.strerror or err}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a run configuration is a JSON object with one section per command")
    sections = sorted(set(data) - _RESERVED)
    if command not in data:
        raise ValueError(f"{path} has no '{command}' section; it has: {', '.join(sections) or 'none'}")
    section = data[command]
    if not isinstance(section, dict):
        raise ValueError(f"{path}: section '{command}' must be a JSON object of option names and values")
    return {key: _expand(value, f"{path} [{command}.{key}]") for key, value in section.items()}


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in ("help", "config", argparse.SUPPRESS)}


def _spelling(action: argparse.Action) -> str:
    return action.option_strings[-1] if action.option_strings else action.dest


def _given_on_command_line(build: Callable[[], argparse.ArgumentParser], argv: list[str]) -> set[str]:
    """The options ``argv`` sets itself: parsed by a copy of the parser that requires nothing and
    leaves out whatever is not given."""
    probe = build()
    for action in _actions(probe).values():
        action.required = False
        action.default = argparse.SUPPRESS
        if not action.option_strings:
            action.nargs = "?" if action.nargs in (None, 1) else "*" if action.nargs == "+" else action.nargs
    namespace, _ = probe.parse_known_args(argv)
    return set(vars(namespace))


def _takes_a_list(action: argparse.Action) -> bool:
    return action.nargs in ("*", "+") or isinstance(action.nargs, int) and action.nargs > 1 \
        or isinstance(action, argparse._AppendAction)


def _check_value(action: argparse.Action, value: Any, where: str) -> Any:
    if _takes_a_list(action) and not isinstance(value, list):  # a string would be read character by character
        kind = f"the string {value!r}" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
        raise ValueError(f'{where}: {_spelling(action)} takes a list (e.g. ["a", "b"]), got {kind}')
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and action.nargs in (None, "?") and not isinstance(action.default, list):
        raise ValueError(f"{where}: {_spelling(action)} takes one value, got the list {value}")
    if action.choices is not None:
        bad = [v for v in values if v not in action.choices]
        if bad:
            raise ValueError(f"{where}: {bad[0]!r} is not one of {list(action.choices)}")
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) and not isinstance(value, bool):
        raise ValueError(f"{where}: {_spelling(action)} is a switch: use true or false")
    if action.type is not None and not isinstance(action, argparse._CountAction):
        try:
            converted = [action.type(v) if isinstance(v, str) else v for v in values]
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {value!r} is not a valid value for {_spelling(action)} ({err})") from err
        return converted if isinstance(value, list) else converted[0]
    return value


def apply_config(parser: argparse.ArgumentParser, build: Callable[[], argparse.ArgumentParser],
                 values: dict[str, Any], argv: list[str], source: str) -> None:
    """Make ``values`` the defaults of ``parser``'s options, except those ``argv`` sets itself.

    Args:
        parser: the command's parser (changed in place).
        build: makes a fresh copy of that parser (used to see what ``argv`` sets).
        values: option name (dest) -> value, e.g. from :func:`read_config`.
        argv: the command line after the command name.
        source: the file, named in errors.

    Raises:
        ValueError: a key that is no option of the command (the message lists them), or a bad value.
    """
    actions = _actions(parser)
    unknown = sorted(set(values) - set(actions))
    if unknown:
        names = ", ".join(sorted(actions))
        raise ValueError(f"{source}: {', '.join(unknown)} is no option of this command; its options are: {names}")
    given = _given_on_command_line(build, argv)
    for dest, value in values.items():
        if dest in given:
            continue  # the command line wins
        action = actions[dest]
        action.default = _check_value(action, value, f"{source} [{dest}]")
        action.required = False
        if not action.option_strings:  # a positional argument the file supplies
            action.nargs = "?" if action.nargs in (None, 1) else "*" if action.nargs == "+" else action.nargs
