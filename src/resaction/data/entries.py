"""What every dataset reader gives: labelled entries (``VideoEntry``) and their ``Manifest``.

An entry is a video and a label index, with the group of videos it must stay with in splits, and
for a labelled segment of a longer video its ``start`` and ``end`` in seconds. A manifest holds the
entries, the class names their labels index, and the annotation rows a reader skipped.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class BadRow:
    """An annotation row that was not used: where it is and why."""

    file: Path
    row: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.reason}"


@dataclass(frozen=True)
class VideoEntry:
    """One labelled video; ``group`` names the source (person, scene) clips share, if known.

    ``start`` and ``end`` (seconds) make it the labelled segment of a longer video."""

    path: Path
    label: int
    group: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass
class Manifest:
    """Entries and the class names their labels index."""

    entries: list[VideoEntry]
    classes: list[str]
    root: Path | None = None
    source: Path | None = field(default=None, compare=False)
    bad_rows: list[BadRow] = field(default_factory=list, compare=False)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[VideoEntry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> VideoEntry:
        return self.entries[index]

    @property
    def labels(self) -> list[int]:
        return [entry.label for entry in self.entries]

    def class_counts(self) -> dict[str, int]:
        counts = Counter(entry.label for entry in self.entries)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def subset(self, indices: Sequence[int]) -> Manifest:
        """The entries at ``indices`` with the same classes and root."""
        return replace(self, entries=[self.entries[i] for i in indices])

    def to_csv(self, path: str | Path) -> Path:
        """Write ``path,label,group`` rows (paths relative to the CSV where possible), and
        ``start,end`` columns when entries are segments (``read_manifest`` reads it back)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        base = path.parent.resolve()
        timed = any(entry.start is not None for entry in self.entries)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "group"] + (["start", "end"] if timed else []))
            for entry in self.entries:
                times = [_time(entry.start), _time(entry.end)] if timed else []
                writer.writerow(
                    [
                        _relative_or_absolute(entry.path, base),
                        self.classes[entry.label],
                        entry.group or "",
                        *times,
                    ]
                )
        return path


def _time(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.6g}"


def _relative_or_absolute(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path.resolve())
