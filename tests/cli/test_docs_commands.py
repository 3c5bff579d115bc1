"""Every ``resaction`` command line in the README and ``docs/`` names a command that exists and
only flags that command takes (a renamed flag left in the docs fails a user's first try)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from resaction.cli import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
INLINE = re.compile(r"`(resaction [^`]+)`")


def command_lines(text: str) -> list[str]:
    """Command lines in code blocks (continuations joined) and in inline code."""
    found = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        found += [line.strip() for line in joined.splitlines()]
    found += INLINE.findall(FENCE.sub("", text))
    starts = [line.split("&& ")[-1] for line in found]
    return [line for line in starts if line.startswith("resaction ")]


def flags_of(line: str) -> tuple[str, list[str]]:
    words = shlex.split(line.replace("...", ""), comments=True)
    command = words[1] if len(words) > 1 else ""
    return command, [word.split("=")[0] for word in words[2:] if word.startswith("--")]


def mistakes(line: str) -> list[str] | None:
    """What is wrong with a documented command line: a command that does not exist, or flags it
    does not take; None for a placeholder (``resaction <command> --help``)."""
    name, flags = flags_of(line)
    if name.startswith(("-", "<")):
        return None
    command = typer.main.get_command(app).commands.get(name)
    if command is None:
        return [f"no command {name!r}"]
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    return [f"{name} has no {flag}" for flag in flags if flag not in {*known, "--help"}]


def test_documented_commands_take_the_flags_they_are_shown_with() -> None:
    checked, wrong = 0, []
    for page in PAGES:
        for line in command_lines(page.read_text(encoding="utf-8")):
            found = mistakes(line)
            if found is None:
                continue
            wrong += [f"{page.name}: {mistake}: {line}" for mistake in found]
            checked += 1
    assert checked > 50
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("line", ["resaction export --checkpoint a.pt", "resaction nope --x 1"])
def test_the_check_finds_a_flag_or_command_that_does_not_exist(line: str) -> None:
    assert mistakes(line)
    assert mistakes("resaction export a.pt --out b.onnx --no-check") == []
