"""``with`` for every class that has a ``close()``."""

from __future__ import annotations

from typing import Self


class ClosedOnExit:
    """``with`` for a class with a ``close()``: the block gets the object, which is closed when
    the block ends, by an error or not."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
