"""One writer per folder: a batch's --out, a server's --state-dir, a watcher's --out.

Two processes over one folder each resume what they find unfinished there (jobs, owed event
deliveries, half-scored videos), so each would redo or re-deliver the other's work. The lock is
an ``flock`` on ``FOLDER/.lock``: the kernel drops it when the holder exits or is killed, so a
crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import time
from pathlib import Path

from resaction.closing import ClosedOnExit
from resaction.errors import ConfigError
from resaction.outputs import ensure_output_dir

try:  # POSIX only; elsewhere two writers into one folder are not prevented
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class FolderLock(ClosedOnExit):
    """Holds ``folder`` (made if missing) until ``close()``. Taken, or for up to ``wait``
    seconds waited for (a restarted Ray actor waits for its dead predecessor's); then a
    ``ConfigError`` "``holder`` FOLDER: ``advice``". ``flag`` names the folder's option in the
    error for a folder that cannot be made (a file, say)."""

    def __init__(
        self, folder: str | Path, holder: str, advice: str, wait: float = 0.0, flag: str = "--out"
    ) -> None:
        self.folder = ensure_output_dir(folder, flag)
        try:
            self._handle = (self.folder / LOCK_FILE).open("a")
        except OSError as error:
            raise ConfigError(f"cannot write to {self.folder}: {error.strerror or error}") from None
        if fcntl is None:
            return
        deadline = time.monotonic() + wait
        while not self._took():
            if time.monotonic() >= deadline:
                self._handle.close()
                raise ConfigError(f"{holder} {self.folder}: {advice}")
            time.sleep(0.2)

    def _took(self) -> bool:
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def close(self) -> None:
        self._handle.close()
