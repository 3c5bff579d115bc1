"""Where results go: output folders checked before any work, files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from resaction.errors import ConfigError, ResactionError


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()


@contextmanager
def replaced_atomically(
    path: str | Path, error: type[ResactionError] = ConfigError
) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write, synced and renamed over
    ``path`` when the block succeeds and removed whatever happens, so ``path`` is never half
    written. It gets the permissions a plain ``open`` would give (``mkstemp``'s are owner-only:
    a model written for a service account could not be read by it). A ``path`` that is a folder
    or cannot be written is an ``error`` naming it."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise error(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as failure:
        raise error(f"cannot write {path}: {failure.strerror or failure}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _FILE_MODE)
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, before any work and without creating anything, an output folder that is a file,
    lies under a file or cannot be written; ``flag`` names the option in the message."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file: give a folder")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not writable; choose another {flag}")
    return path


def ensure_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` if needed and check that files can be written there."""
    path = check_output_dir(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create output folder {path}: {error.strerror or error}; choose another {flag}"
        ) from None
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output file that is a folder or whose folder cannot be
    made or written (``check_output_dir`` on its parent)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder: give a file name")
    check_output_dir(path.parent, f"{flag}'s folder")
    return path
