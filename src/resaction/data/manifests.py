"""Manifest readers: turn a folder, a CSV, a list file, official split files or segment
annotations of long videos into entries.

Every reader gives the same thing, a ``Manifest``: ``(path, label, group)`` entries (with a
``start``/``end`` in seconds for a labelled segment of a longer video) and the class names, with
label indices 0..K-1 in sorted class-name order (or in the order of ``classes`` when the caller
passes a model's class list). ``read_manifest`` works out which format it was given.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from resaction.data.annotation_formats import (
    GROUP_HEADERS,
    LABEL_HEADERS,
    PATH_HEADERS,
    csv_table,
    has_segment_header,
)
from resaction.data.annotations import READERS, Segment, read_annotations
from resaction.data.entries import BadRow, Manifest, VideoEntry
from resaction.errors import DatasetError
from resaction.io.video_files import is_video_file, videos_under

GROUPS_FILE = "groups.csv"
SPLITS = ("train", "test")

_UCF_GROUP = re.compile(r"_g(\d+)_")
_UCF_LIST = re.compile(r"^(train|test)list(\d+)\.txt$", re.IGNORECASE)
_HMDB_LIST = re.compile(r"^(.+)_test_split(\d+)\.txt$")


def read_manifest(
    source: str | Path,
    split: str | None = None,
    *,
    fold: int = 1,
    classes: Sequence[str] | None = None,
    video_root: str | Path | None = None,
    background: str | None = None,
    skip_bad_rows: bool = False,
) -> Manifest:
    """Read a dataset description, detecting its format.

    ``source`` is a folder of class sub-folders (with an optional ``groups.csv``: ``file, class,
    group``), a CSV (``path,label[,group]``, header optional), a ``path label`` list file, or
    UCF101 (``classInd.txt``, ``trainlistNN.txt``, ``testlistNN.txt``) or HMDB51
    (``<class>_test_splitN.txt``) split files, given as their folder or one of the files.
    ``split`` ("train" or "test") and ``fold`` pick an official split; ``video_root`` is where
    split files' paths start (found beside the split folder when not given). ``classes`` fixes
    the label order, for instance to a trained model's classes.

    Segment annotations of long videos (see ``annotations``) are a CSV whose header names
    ``start`` and ``end`` columns, a Label Studio JSON export or a "CVAT for video" XML; their
    videos are found under ``video_root`` (default: the file's folder). Each segment is an entry
    whose group is the CSV's group or else its video, so splits keep a video on one side. Only
    for them, ``background`` names a class for the stretches between labelled segments, and
    ``skip_bad_rows`` skips (and lists in ``Manifest.bad_rows``) rows that would be an error.
    """
    path = Path(source).expanduser()
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)} or None")
    if not path.exists():
        raise DatasetError(f"dataset {path} not found: give a folder, CSV, list or split file")
    root = Path(video_root).expanduser() if video_root is not None else None
    kind, path, split, fold = _detect(path, split, fold)
    if background is not None and kind not in READERS:
        raise DatasetError(
            f"background class {background!r} needs segment annotations (a start,end CSV, "
            f"Label Studio JSON or CVAT video XML), not {path}"
        )
    if kind == "ucf101":
        rows, class_names = _read_ucf101(path, split, fold)
        return _build(rows, classes, class_names, _split_root(path, rows, root), path)
    if kind == "hmdb51":
        rows = _read_hmdb51(path, split, fold)
        return _build(rows, classes, None, _split_root(path, rows, root), path)
    if split is not None and kind != "folder":
        raise DatasetError(
            f"{path} has no official {split} split: split it with "
            "resaction.data.train_test_split (or pass split=None)"
        )
    if kind == "folder":
        return _read_folder(path, split, classes)
    base = root or path.parent
    if kind in READERS:
        found = read_annotations(
            path,
            kind,
            root=base,
            classes=classes,
            background=background,
            skip_bad_rows=skip_bad_rows,
        )
        return _segment_manifest(found.segments, found.bad_rows, classes, base, path)
    rows = _read_csv(path) if kind == "csv" else _read_list(path)
    return _build(rows, classes, None, base, path)


@dataclass(frozen=True)
class _Row:
    """One manifest row before labels become indices; ``line`` is for error messages."""

    path: str
    label: str
    group: str | None
    line: int
    file: Path | None = None


def _detect(path: Path, split: str | None, fold: int) -> tuple[str, Path, str | None, int]:
    if path.is_dir():
        names = {child.name for child in path.iterdir()}
        if "classInd.txt" in names or any(_UCF_LIST.match(name) for name in names):
            return "ucf101", path, split, fold
        if any(_HMDB_LIST.match(name) for name in names):
            return "hmdb51", path, split, fold
        return "folder", path, split, fold
    name = path.name
    ucf = _UCF_LIST.match(name)
    if ucf:
        return "ucf101", path.parent, split or ucf.group(1).lower(), int(ucf.group(2))
    if name == "classInd.txt":
        return "ucf101", path.parent, split, fold
    hmdb = _HMDB_LIST.match(name)
    if hmdb:
        return "hmdb51", path.parent, split, int(hmdb.group(2))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "segments_csv" if has_segment_header(path) else "csv", path, split, fold
    if suffix in {".json", ".xml"}:
        return "label_studio" if suffix == ".json" else "cvat", path, split, fold
    if suffix in {".txt", ".lst", ".list"}:
        return "list", path, split, fold
    raise DatasetError(
        f"unknown dataset format {path}: give a folder of class folders, a .csv, a .txt list, "
        "UCF101/HMDB51 split files, or segment annotations (Label Studio .json, CVAT .xml)"
    )


def _read_folder(path: Path, split: str | None, classes: Sequence[str] | None) -> Manifest:
    subdirs = {child.name: child for child in path.iterdir() if child.is_dir()}
    if split is not None:
        if split not in subdirs:
            raise DatasetError(
                f"{path} has no {split}/ folder: split it with resaction.data.train_test_split"
            )
        path = subdirs[split]
    class_dirs = sorted(
        (child for child in path.iterdir() if child.is_dir() and not child.name.startswith(".")),
        key=lambda child: child.name,
    )
    if not class_dirs:
        loose = [child for child in path.iterdir() if is_video_file(child)]
        hint = "put them in one sub-folder per class" if loose else "no class sub-folders found"
        raise DatasetError(f"no videos in class folders under {path}: {hint}")
    if split is None and {"train", "test"} <= {d.name for d in class_dirs}:
        raise DatasetError(f"{path} holds train/ and test/ folders: pass split='train' or 'test'")
    groups = _read_groups(path / GROUPS_FILE)
    rows = []
    for class_dir in class_dirs:
        videos = videos_under(class_dir)
        if not videos:
            raise DatasetError(f"class folder {class_dir} has no videos: add some or remove it")
        for video in videos:
            relative = video.relative_to(path).as_posix()
            group = groups.get(relative, groups.get(video.name))
            rows.append(_Row(relative, class_dir.name, group, 0))
    return _build(rows, classes, None, path, path, check_files=False)


def _read_groups(path: Path) -> dict[str, str]:
    """``groups.csv`` rows by relative path and by file name: ``file, class, group``."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [name.strip() for name in reader.fieldnames or []]
        if "file" not in fields or "group" not in fields:
            raise DatasetError(f"{path} needs 'file' and 'group' columns (found {fields})")
        groups: dict[str, str] = {}
        for row in reader:
            row = {key.strip(): (value or "").strip() for key, value in row.items() if key}
            if row["file"] and row["group"]:
                file = Path(row["file"]).as_posix()
                groups[file] = row["group"]
                groups.setdefault(Path(file).name, row["group"])
    return groups


def _read_csv(path: Path) -> list[_Row]:
    table = csv_table(path)
    if not table:
        raise DatasetError(f"manifest {path} is empty: add 'path,label[,group]' rows")
    columns = (0, 1, 2)
    header = [cell.strip().lower() for cell in table[0][1]]
    if header and header[0] in PATH_HEADERS + LABEL_HEADERS + GROUP_HEADERS:
        columns = (
            _column(header, PATH_HEADERS, path),
            _column(header, LABEL_HEADERS, path),
            next((header.index(name) for name in GROUP_HEADERS if name in header), -1),
        )
        table = table[1:]
    path_col, label_col, group_col = columns
    rows = []
    for line, cells in table:
        if len(cells) <= max(path_col, label_col) or not cells[path_col].strip():
            raise DatasetError(f"{path}:{line}: expected 'path,label[,group]', got {cells}")
        group = cells[group_col].strip() if 0 <= group_col < len(cells) else ""
        rows.append(
            _Row(cells[path_col].strip(), cells[label_col].strip(), group or None, line, path)
        )
    return rows


def _column(header: list[str], names: tuple[str, ...], path: Path) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise DatasetError(f"{path}: header {header} has no {names[0]!r} column")


def _read_list(path: Path) -> list[_Row]:
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DatasetError(f"{path}:{line}: expected 'path label', got {text!r}")
        rows.append(_Row(parts[0], parts[1], None, line, path))
    if not rows:
        raise DatasetError(f"manifest {path} is empty: add 'path label' lines")
    return rows


def _read_ucf101(folder: Path, split: str | None, fold: int) -> tuple[list[_Row], list[str] | None]:
    """UCF101 ``trainlistNN``/``testlistNN``: the class is the folder in each path."""
    index_names = _read_class_index(folder / "classInd.txt")
    splits = SPLITS if split is None else (split,)
    rows = []
    for name in splits:
        list_file = folder / f"{name}list{fold:02d}.txt"
        if not list_file.is_file():
            raise DatasetError(f"UCF101 split file {list_file} not found (fold {fold})")
        for line, text in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
            parts = text.split()
            if not parts:
                continue
            video = parts[0].replace("\\", "/")
            class_name = video.split("/")[0] if "/" in video else None
            if class_name is None:
                raise DatasetError(f"{list_file}:{line}: expected '<class>/<video>', got {video!r}")
            if len(parts) > 1 and index_names is not None:
                listed = index_names.get(parts[1])
                if listed is None or listed != class_name:
                    raise DatasetError(
                        f"{list_file}:{line}: label {parts[1]} is {listed!r} in classInd.txt "
                        f"but the video is in folder {class_name!r}"
                    )
            group = _UCF_GROUP.search(Path(video).name)
            rows.append(_Row(video, class_name, group.group(1) if group else None, line, list_file))
    if not rows:
        raise DatasetError(f"UCF101 split files in {folder} list no videos for fold {fold}")
    class_names = sorted(index_names.values()) if index_names is not None else None
    return rows, class_names


def _read_class_index(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        return None
    index = {}
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{path}:{line}: expected '<number> <class>', got {text!r}")
        index[parts[0]] = parts[1]
    return index


def _read_hmdb51(folder: Path, split: str | None, fold: int) -> list[_Row]:
    """HMDB51 ``<class>_test_splitN.txt``: ``video.avi 1|2|0`` = train | test | unused."""
    wanted = {None: {"0", "1", "2"}, "train": {"1"}, "test": {"2"}}[split]
    files = sorted(folder.glob(f"*_test_split{fold}.txt"))
    if not files:
        raise DatasetError(f"no HMDB51 split files *_test_split{fold}.txt in {folder}")
    rows = []
    for list_file in files:
        class_name = _HMDB_LIST.match(list_file.name).group(1)
        for line, text in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
            parts = text.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in {"0", "1", "2"}:
                raise DatasetError(f"{list_file}:{line}: expected '<video> 0|1|2', got {text!r}")
            if parts[1] in wanted:
                rows.append(_Row(f"{class_name}/{parts[0]}", class_name, None, line, list_file))
    return rows


def _split_root(folder: Path, rows: list[_Row], root: Path | None) -> Path:
    """Where the videos of split files live: ``root``, or the first folder near the split files
    (itself, its parent, or a sibling) that holds the first listed video."""
    if root is not None:
        return root
    candidates = [folder, folder.parent]
    candidates += sorted(p for p in folder.parent.iterdir() if p.is_dir() and p != folder)
    for candidate in candidates:
        if rows and (candidate / rows[0].path).is_file():
            return candidate
    first = rows[0].path if rows else "?"
    raise DatasetError(
        f"videos of the split files in {folder} not found (looked for {first} beside them): "
        "pass video_root"
    )


def _build(
    rows: list[_Row],
    classes: Sequence[str] | None,
    listed_classes: list[str] | None,
    root: Path,
    source: Path,
    *,
    check_files: bool = True,
) -> Manifest:
    if not rows:
        raise DatasetError(f"no videos found in {source}")
    names, index = _class_index(rows, classes, listed_classes, source)
    entries = []
    missing = []
    for row in rows:
        video = Path(row.path).expanduser()
        video = video if video.is_absolute() else root / video
        if check_files and not video.is_file():
            missing.append((row, video))
            continue
        entries.append(VideoEntry(video, index[row.label], row.group))
    if missing:
        row, video = missing[0]
        more = f" ({len(missing) - 1} more rows name missing files)" if len(missing) > 1 else ""
        raise DatasetError(f"{row.file or source}:{row.line}: video {video} not found{more}")
    present = {entry.label for entry in entries}
    if classes is None:
        empty = [name for i, name in enumerate(names) if i not in present]
        if empty:
            raise DatasetError(f"class {empty[0]!r} in {source} has no videos: add some or drop it")
    return Manifest(entries=entries, classes=names, root=root, source=source)


def _class_index(
    rows: Sequence[_Row] | Sequence[Segment],
    classes: Sequence[str] | None,
    listed_classes: list[str] | None,
    source: Path,
) -> tuple[list[str], dict[str, int]]:
    """Class names and the label index of each; integer labels in a CSV or list stay as given."""
    labels = {row.label for row in rows}
    if classes is not None:
        names = list(classes)
        unknown = sorted(labels - set(names))
        if unknown:
            raise DatasetError(f"{source}: class {unknown[0]!r} is not one of the given classes")
    elif all(label.isdigit() for label in labels):
        names = [str(i) for i in range(max(int(label) for label in labels) + 1)]
        return names, {label: int(label) for label in labels}
    else:
        names = listed_classes if listed_classes is not None else sorted(labels)
        unknown = sorted(labels - set(names))
        if unknown:
            raise DatasetError(f"{source}: class {unknown[0]!r} is not listed in classInd.txt")
    return names, {name: i for i, name in enumerate(names)}


def _segment_manifest(
    segments: list[Segment],
    bad_rows: list[BadRow],
    classes: Sequence[str] | None,
    root: Path,
    source: Path,
) -> Manifest:
    names, index = _class_index(segments, classes, None, source)
    entries = [VideoEntry(s.video, index[s.label], s.group, s.start, s.end) for s in segments]
    return Manifest(entries=entries, classes=names, root=root, source=source, bad_rows=bad_rows)
