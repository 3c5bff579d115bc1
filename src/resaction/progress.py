"""Progress that reads well anywhere: a live bar on a terminal, plain lines everywhere else.

A progress bar redraws itself with carriage returns; written to a log file or a CI console it
becomes thousands of partial updates on one line. ``progress_bar`` gives tqdm's bar when the
output is a terminal, and otherwise a ``LineProgress`` with the same methods that prints one
plain line every ``LINE_INTERVAL_S`` seconds while it runs and one when it ends (bars made with
``leave=False``, such as a training epoch's, end silently: their caller prints a summary line).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from tqdm.auto import tqdm

from resaction.closing import ClosedOnExit

LINE_INTERVAL_S = 30.0
"""Seconds between two lines of a running loop when the output is not a terminal."""


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (standard error by default) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    initial: float = 0,
    file: IO[str] | None = None,
    **tqdm_options: Any,
) -> Any:
    """tqdm's bar on a terminal, a ``LineProgress`` elsewhere; both take the same calls."""
    if disable or is_terminal(file):
        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            disable=disable,
            leave=leave,
            initial=initial,
            file=file,
            **tqdm_options,
        )
    return LineProgress(
        iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial, file=file
    )


class LineProgress(ClosedOnExit):
    """tqdm's interface (``update``, ``set_postfix``, ``write``, ``close``, iteration) printing
    whole lines: ``desc: n/total unit, 12 s, key=value ...``."""

    disable = False

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        leave: bool = True,
        initial: float = 0,
        file: IO[str] | None = None,
        interval: float = LINE_INTERVAL_S,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.leave = leave
        self.n = initial
        self.file = file
        self.interval = interval
        self.postfix: dict[str, Any] = {}
        self._started = time.monotonic()
        self._last_line = self._started
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress has no iterable to go through")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._print(self.line())

    def set_postfix(
        self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw: lines are printed as they come."""

    def line(self) -> str:
        """The current state as one line."""
        count = f"{_number(self.n)}/{_number(self.total)}" if self.total else _number(self.n)
        parts = [f"{count} {self.unit}", f"{time.monotonic() - self._started:.0f} s"]
        parts += [f"{key}={value}" for key, value in self.postfix.items()]
        return f"{self.desc}: " + ", ".join(parts) if self.desc else ", ".join(parts)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.leave:
            self._print(self.line())

    @classmethod
    def write(cls, message: str, file: IO[str] | None = None, end: str = "\n") -> None:
        stream = sys.stderr if file is None else file
        stream.write(message + end)
        stream.flush()

    def _print(self, text: str) -> None:
        self.write(text, file=self.file)


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
