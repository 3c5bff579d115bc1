"""The gate that bounds how many predictions (and explanations) run or wait at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio

from resaction.serve.security import ApiError


class PredictGate:
    """Runs at most ``running`` predictions at once and lets at most ``waiting`` more wait; a
    request beyond that is refused (429) before its upload is read."""

    def __init__(self, running: int, waiting: int) -> None:
        self.limiter = anyio.CapacityLimiter(running)
        self.capacity = running + waiting
        self.active = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self.active >= self.capacity:
            raise busy(f"{self.active} predictions are running or waiting")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def busy(what: str) -> ApiError:
    return ApiError(
        429,
        "busy",
        f"the server is at capacity ({what}); try again in a few seconds",
        {"Retry-After": "5"},
    )
