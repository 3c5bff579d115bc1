"""The archive side of batch inference: which videos there are, and which are already done.

A video is known by its resolved path, size and modification time (``VideoKey``): a file that
is replaced or edited gets a new key and is scored again; an untouched one is never scored
twice. ``BatchStore`` is the results folder. ``results.jsonl`` and ``failures.jsonl`` are
appended one video at a time and synced to disk, so a run killed at any moment loses at most
the line it was writing (a torn last line is cut off when the folder is opened again), and a
lock keeps two runs from writing into one folder at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resaction.closing import ClosedOnExit
from resaction.errors import ConfigError
from resaction.folder_lock import FolderLock
from resaction.inference.results import read_jsonl_text
from resaction.outputs import replaced_atomically

RESULTS_FILE = "results.jsonl"
FAILURES_FILE = "failures.jsonl"
SETTINGS_FILE = "batch.json"


@dataclass(frozen=True)
class VideoKey:
    """A video's identity for resuming: absolute path, size in bytes, mtime in nanoseconds."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> VideoKey:
        """The key of a file as it is now; ``OSError`` if it cannot be read."""
        resolved = Path(path).expanduser().resolve()
        stat = resolved.stat()
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns)

    def fields(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VideoKey:
        size, mtime = row.get("size"), row.get("mtime_ns")  # 0 is a size: an empty file's
        return cls(
            str(row["path"]),
            -1 if size in (None, "") else int(size),
            -1 if mtime in (None, "") else int(mtime),
        )


class BatchStore(ClosedOnExit):
    """A results folder: what is done, and the files new outcomes are appended to.

    ``settings`` (model digest, mode, top-k...) are kept in ``batch.json``; opening the folder
    again with different settings is refused, because its rows would mix two kinds of result.
    """

    def __init__(self, out_dir: str | Path, settings: Mapping[str, Any]) -> None:
        self.out_dir = Path(out_dir).expanduser()
        self._lock = FolderLock(
            self.out_dir,
            "another resaction batch is writing to",
            "wait for it to finish or choose another --out",
        )
        self.settings = dict(settings)
        self.record = self._check_settings()
        self.done = {row["path"]: VideoKey.from_row(row) for row in self._read(RESULTS_FILE)}
        self.failed = {row["path"]: row for row in self._read(FAILURES_FILE)}
        self._results = self._append(RESULTS_FILE)
        self._failures = self._append(FAILURES_FILE)

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS_FILE

    @property
    def failures_path(self) -> Path:
        return self.out_dir / FAILURES_FILE

    def _check_settings(self) -> dict[str, Any]:
        path = self.out_dir / SETTINGS_FILE
        if not path.is_file():
            record = {"settings": self.settings, "runs": []}
            _write_json(path, record)
            return record
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            saved = record["settings"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path} is not a resaction batch record: choose another --out"
            ) from None
        changed = [key for key in self.settings if saved.get(key) != self.settings[key]]
        if changed:
            key = changed[0]
            raise ConfigError(
                f"{self.out_dir} holds results made with {key}={saved.get(key)!r}, this run has "
                f"{key}={self.settings[key]!r}: use the same settings to resume, or another --out"
            )
        return record

    def _read(self, name: str) -> list[dict[str, Any]]:
        """The complete rows of a results file, after cutting off a line torn by a kill."""
        path = self.out_dir / name
        if not path.is_file():
            return []
        _cut_torn_tail(path)
        try:
            rows = read_jsonl_text(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ConfigError(
                f"{path} is damaged ({error}): remove the bad line or choose another --out"
            ) from None
        return [row for row in rows if isinstance(row, dict) and "path" in row]

    def _append(self, name: str) -> Any:
        return (self.out_dir / name).open("a", encoding="utf-8")

    def is_done(self, key: VideoKey, *, retry_failures: bool = False) -> bool:
        """Whether this exact file has a result (or, unless retrying, a recorded failure)."""
        if self.done.get(key.path) == key:
            return True
        failure = self.failed.get(key.path)
        return not retry_failures and failure is not None and VideoKey.from_row(failure) == key

    def commit(self, row: Mapping[str, Any]) -> None:
        """Append one video's result and push it to disk before returning."""
        _append_line(self._results, row)
        self.done[str(row["path"])] = VideoKey.from_row(row)

    def fail(self, row: Mapping[str, Any]) -> None:
        """Append one video's failure (``path``, key fields, ``reason``) and push it to disk."""
        _append_line(self._failures, row)
        self.failed[str(row["path"])] = dict(row)

    def open_failures(self) -> list[dict[str, Any]]:
        """Failures not since resolved by a result for the same file."""
        return [
            row
            for path, row in self.failed.items()
            if self.done.get(path) != VideoKey.from_row(row)
        ]

    def close(self, run: Mapping[str, Any] | None = None) -> None:
        """Rewrite ``failures.jsonl`` without resolved rows, log the run, release the lock."""
        if self._lock.closed:
            return
        self._results.close()
        self._failures.close()
        _write_lines(self.failures_path, self.open_failures())
        if run is not None:
            self.record.setdefault("runs", []).append(dict(run))
            _write_json(self.out_dir / SETTINGS_FILE, self.record)
        self._lock.close()


def load_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a batch results folder, the latest per video (a changed file is scored again)."""
    path = Path(out_dir).expanduser() / RESULTS_FILE
    if not path.is_file():
        return []
    rows = read_jsonl_text(path.read_text(encoding="utf-8"))
    return list({row["path"]: row for row in rows}.values())


def load_failures(out_dir: str | Path) -> list[dict[str, Any]]:
    """The videos of a batch results folder that could not be scored, with the reason."""
    path = Path(out_dir).expanduser() / FAILURES_FILE
    if not path.is_file():
        return []
    return read_jsonl_text(path.read_text(encoding="utf-8"))


def _append_line(handle: Any, row: Mapping[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _cut_torn_tail(path: Path, chunk: int = 1 << 16) -> None:
    """Drop the bytes after the last newline (half a line written when a run was killed)."""
    with path.open("rb+") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            newline = handle.read(position - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        if keep < end:
            handle.truncate(keep)


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    _write_atomically(path, text)


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    _write_atomically(path, json.dumps(record, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
