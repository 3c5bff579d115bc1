"""``--config FILE`` for every command: a YAML mapping of option names to values.

The file's keys are the command's option names (``stride`` or ``--stride``, ``min_duration`` or
``min-duration``); each becomes that flag in front of the command line, so flags typed by the user
override the file (a flag given on the command line drops the file's value for it entirely).
``train`` and ``crossval`` read their own config files (a training config) and are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from resaction.errors import ConfigError, parse_error_line

CONFIG_EPILOG = (
    "--config FILE.yaml reads this command's options from a YAML file (option names as keys; "
    "arguments stay on the command line); flags given here override the file."
)


def mention_config(command: Any) -> None:
    """Say ``--config`` in the help of every command that takes it through ``expand_config``.

    Those commands have no ``--config`` parameter of their own, so click would not list it.
    """
    for sub in command.commands.values():
        if not any(param.name == "config" for param in sub.params) and not sub.epilog:
            sub.epilog = CONFIG_EPILOG


def expand_config(command: Any, argv: list[str]) -> list[str]:
    """``argv`` with ``--config FILE`` replaced by the flags the file holds.

    ``command`` is the click group of the application; ``argv`` the arguments after the
    program name.
    """
    position = _subcommand_position(command, argv)
    if position is None:
        return argv
    sub = command.commands.get(argv[position])
    if sub is None or any(param.name == "config" for param in sub.params):
        return argv
    head, rest = argv[: position + 1], argv[position + 1 :]
    path, rest = _take_config(rest)
    if path is None:
        return argv
    flags = _flags_from_file(sub, argv[position], Path(path), rest)
    return [*head, *flags, *rest]


def _subcommand_position(command: Any, argv: list[str]) -> int | None:
    for index, token in enumerate(argv):
        if token == "--":
            return None
        if not token.startswith("-"):
            return index if token in command.commands else None
    return None


def _take_config(args: list[str]) -> tuple[str | None, list[str]]:
    for index, token in enumerate(args):
        if token == "--":
            break
        if token == "--config":
            if index + 1 >= len(args):
                raise ConfigError("--config needs a file: --config FILE.yaml")
            return args[index + 1], args[:index] + args[index + 2 :]
        if token.startswith("--config="):
            return token.split("=", 1)[1], args[:index] + args[index + 1 :]
    return None, args


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        reason = parse_error_line(error)
        raise ConfigError(f"config file {path} is not valid YAML: {reason}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of option names to values")
    return values


def _flags_from_file(sub: Any, name: str, path: Path, user_args: list[str]) -> list[str]:
    options: dict[str, Any] = {}
    for param in sub.params:
        if getattr(param, "param_type_name", "") == "option" and param.name != "help":
            for alias in (param.name, *(opt.lstrip("-") for opt in param.opts)):
                options.setdefault(alias.replace("-", "_"), param)
    arguments = {
        param.name for param in sub.params if getattr(param, "param_type_name", "") == "argument"
    }
    given = {token.split("=", 1)[0] for token in user_args if token.startswith("-")}
    flags: list[str] = []
    for key, value in read_config_file(path).items():
        field = str(key).lstrip("-").replace("-", "_")
        if field in arguments:
            raise ConfigError(
                f"{path}: {key!r} is a positional argument of `resaction {name}`; "
                "give it on the command line"
            )
        option = options.get(field)
        if option is None:
            known = ", ".join(sorted({_long_name(o.opts).lstrip("-") for o in options.values()}))
            raise ConfigError(f"{path}: `resaction {name}` has no option {key!r} (it has: {known})")
        if given & {*option.opts, *option.secondary_opts}:
            continue
        flags += _tokens(option, value, path, key)
    return flags


def _tokens(option: Any, value: Any, path: Path, key: Any) -> list[str]:
    flag = _long_name(option.opts)
    if option.is_flag:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {key!r} takes true or false, got {value!r}")
        if value:
            return [flag]
        return [_long_name(option.secondary_opts)] if option.secondary_opts else []
    if value is None:
        return []
    values = value if isinstance(value, list) and option.multiple else [value]
    tokens: list[str] = []
    for item in values:
        text = yaml.safe_dump(item, default_flow_style=True).strip()
        text = text.removesuffix("\n...").strip() if isinstance(item, (list, dict)) else str(item)
        tokens += [flag, text]
    return tokens


def _long_name(opts: list[str]) -> str:
    return next((opt for opt in opts if opt.startswith("--")), opts[0])
