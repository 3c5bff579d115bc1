"""Result files written one record at a time, so an interrupted run keeps what it finished.

``--json`` writes JSON lines (one object per line), not a JSON array: a line appended and
flushed costs nothing to write, a kill loses at most the record being written, and the file is
never rewritten, so nothing already there can be lost. ``--csv`` appends rows the same way.
With ``resume`` the records in the file are kept and their keys reported, so the caller can
skip them; a torn last line (a kill mid-write) is cut off rather than failing the resume.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resaction.closing import ClosedOnExit
from resaction.errors import ConfigError


class RecordWriter(ClosedOnExit):
    """Append records to a ``.jsonl`` or ``.csv`` file, flushed and synced one by one.

    ``fields`` fixes the CSV columns (JSON lines take any keys). Without ``resume`` an existing
    file is replaced; with it, its complete records are kept, new ones are appended after them,
    and ``done`` holds their ``key`` values.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str | None = None,
        fields: list[str] | None = None,
        resume: bool = False,
        key: str = "path",
    ) -> None:
        self.path = Path(path)
        self.fmt = fmt or ("csv" if self.path.suffix.lower() == ".csv" else "jsonl")
        if self.fmt not in ("jsonl", "csv"):
            raise ConfigError(
                f"unknown result format {self.fmt!r} for {self.path}; use jsonl or csv"
            )
        if self.fmt == "csv" and not fields:
            raise ValueError("CSV results need their field names")
        self.fields = list(fields or [])
        self.key = key
        self.done: set[str] = set()
        appending = resume and self.path.is_file() and self._keep_existing()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            mode = "a" if appending else "w"
            self._handle = self.path.open(mode, encoding="utf-8", newline="")
        except OSError as error:
            raise ConfigError(f"cannot write results to {self.path}: {error.strerror}") from None
        if self.fmt == "csv":
            self._csv = csv.DictWriter(self._handle, fieldnames=self.fields, extrasaction="ignore")
            if not appending:
                self._csv.writeheader()
                self._sync()

    def _keep_existing(self) -> bool:
        """Read the finished records, cut a torn last line; False when there is nothing to keep."""
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        text = complete.decode("utf-8", errors="replace")
        records = read_csv_text(text, self.path, self.fields) if self.fmt == "csv" else []
        if self.fmt == "jsonl":
            try:
                records = read_jsonl_text(text)
            except ValueError as error:
                raise ConfigError(
                    f"cannot resume {self.path}: {error}; fix or remove the file"
                ) from None
        if len(complete) < len(raw):
            os.truncate(self.path, len(complete))
        self.done = {str(record[self.key]) for record in records if self.key in record}
        return bool(complete)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record and push it to disk."""
        if self.fmt == "csv":
            self._csv.writerow(dict(record))
        else:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._sync()
        if self.key in record:
            self.done.add(str(record[self.key]))

    def _sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


def read_jsonl_text(text: str) -> list[dict[str, Any]]:
    """Records of a JSON-lines text; an unreadable last line (torn by a kill) is dropped, one
    elsewhere raises ``json.JSONDecodeError`` (a ``ValueError``) naming its line."""
    records = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise json.JSONDecodeError(
                f"line {number}: {error.msg}", error.doc, error.pos
            ) from None
    return records


def read_csv_text(text: str, path: Path, fields: list[str]) -> list[dict[str, Any]]:
    """Rows of complete CSV lines written with ``fields`` (the header must match)."""
    if not text.strip():
        return []
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is not None and list(reader.fieldnames) != fields:
        raise ConfigError(
            f"cannot resume {path}: its columns ({', '.join(reader.fieldnames)}) differ from this "
            f"run's ({', '.join(fields)}); use the same --topk or another output file"
        )
    return list(reader)
