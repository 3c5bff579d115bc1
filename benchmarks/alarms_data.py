"""The footage behind benchmarks/alarms.py: other datasets' non-fight clips and long recordings.

- ``other_footage()`` lists every non-fight clip of the other datasets in ../shared/data/videos,
  each with the source it came from (a camera, a person, a source video, or a whole dataset where
  nothing finer is known), and ``halves()`` deals whole sources to two halves of about equal
  minutes, so that no source video is on both sides.
- ``build_recording()`` joins clips into one long recording (several parts past
  ``MAX_PART_SECONDS``): each clip decoded at a 128-pixel short side, fitted into
  ``HEIGHT`` x ``WIDTH`` (black bars where the shape differs, never cropped), resampled to ``FPS``
  by taking the nearest source frame, and re-encoded; a truth CSV ``video,start,end,label`` gives
  every fight clip's exact span in the joined recording, and a playlist CSV every clip's.
- ``fold_parts()`` gives a fold's train-proper, calibration and test clips of the fight data;
  ``save_timelines()`` / ``load_timelines()`` keep the recordings' window scores, and
  ``choose_thresholds()``, ``measure()`` and ``pooled()`` turn them into operating points and
  event metrics.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ARRAYS = ("starts", "ends", "frame_indices", "logits", "probs", "smoothed")
FPS = 25.0
HEIGHT, WIDTH = 128, 228  # 16:9 at a 128-pixel short side, as most fight clips
SHORT_SIDE = 128
MAX_PART_SECONDS = 15 * 60.0
FIGHT, BACKGROUND = "fight", "noFight"
FOLDS = 5  # as `resaction crossval --folds 5`
CALIBRATION_SHARE = 0.2
BUDGETS = (1.0, 5.0)
FIXED = 0.5


@dataclass(frozen=True)
class Clip:
    """One clip to join: where it is, the source it must stay with, its length, whether a fight."""

    path: str
    source: str
    seconds: float
    fight: bool = False


# (folder under the videos root, what names a clip's source: "groups.csv", "re:" and a pattern
# on the file name, "file" (each file its own source) or "=" and one name for the whole folder).
# Hockey Fight's two subsets are clips of the same NHL broadcasts: one source.
OTHER_FOOTAGE = [
    ("fixed_camera_negatives", "groups.csv"),
    ("hockey_fight/noFight", "=hockey_fight"),
    ("hockey_fight_more/noFight", "=hockey_fight"),
    ("gmdcsa24/ADL", r"re:(subject\d+)"),
    ("gt_cs4495_ps7", r"re:(P\d)"),
    ("ucf101_subset", r"re:v_(\w+_g\d+)_"),
    ("kth_samples", "file"),
    ("kinetics400_samples", "file"),
    ("rlvs_subset/NonViolence", "file"),
]


def source_of(path: Path, folder: Path, rule: str) -> str:
    """The source ``path`` (in dataset ``folder``) came from, by ``rule`` (``OTHER_FOOTAGE``)."""
    prefix = folder.name
    if rule.startswith("="):
        return rule[1:]
    if rule == "groups.csv":
        with (folder / "groups.csv").open(newline="") as handle:
            groups = {row["file"]: row["group"] for row in csv.DictReader(handle)}
        return f"{prefix}/{groups.get(path.relative_to(folder).as_posix(), path.stem)}"
    found = re.search(rule[3:], path.name) if rule.startswith("re:") else None
    return f"{prefix}/{found.group(1) if found else path.stem}"


def fold_parts(data: Path, fold: int, seed: int, max_clips: int | None) -> dict[str, Any]:
    """The fold's train-proper, calibration and test manifests: crossval's folds (same manifest,
    seed and groups), the training side split again by group."""
    from resaction.data.manifests import read_manifest
    from resaction.data.splits import kfold, train_test_split

    manifest = read_manifest(data)
    train_side, test = kfold(manifest, FOLDS, group_by=None, seed=seed)[fold - 1]
    proper, calibration = train_test_split(train_side, CALIBRATION_SHARE, group_by=None, seed=seed)
    parts = {"train": proper, "calibration": calibration, "test": test}
    if max_clips:
        parts = {name: _cap(part, max_clips, seed) for name, part in parts.items()}
    return parts


def _cap(manifest, count: int, seed: int):
    """At most ``count`` entries, the classes taken in turn (a seeded choice)."""
    rng = np.random.default_rng([seed, 3])
    labels = np.asarray(manifest.labels)
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    chosen = []
    while len(chosen) < min(count, len(manifest)):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return manifest.subset(sorted(chosen))


def groups_of(manifest) -> list[str]:
    """The groups (source videos) of a manifest's clips."""
    return sorted({entry.group or entry.path.name for entry in manifest})


def fight_clips(manifest) -> list[Clip]:
    """A fight-data manifest's clips to join, fights marked."""
    from resaction.data.spans import video_facts

    return [
        Clip(
            str(entry.path),
            f"fight_data/{entry.group}",
            float(video_facts(entry.path).duration),
            fight=manifest.classes[entry.label] == FIGHT,
        )
        for entry in manifest
    ]


def other_footage(root: Path) -> list[Clip]:
    """Every non-fight clip of the other datasets under ``root``, with its source and length."""
    from resaction.data.spans import video_facts
    from resaction.io.video_files import VIDEO_EXTENSIONS

    clips = []
    for folder, rule in OTHER_FOOTAGE:
        base = root / folder
        for path in sorted(p for p in base.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS):
            source = source_of(path, root / folder.split("/")[0], rule)
            clips.append(Clip(str(path), source, float(video_facts(path).duration)))
    return clips


def halves(clips: Sequence[Clip], seed: int) -> tuple[list[Clip], list[Clip]]:
    """(calibration, test): whole sources dealt, largest first (ties in seeded order), each to
    the half with fewer seconds so far, so the halves hold about equal minutes."""
    seconds: dict[str, float] = {}
    for clip in clips:
        seconds[clip.source] = seconds.get(clip.source, 0.0) + clip.seconds
    rng = np.random.default_rng([seed, 1])
    sources = [sorted(seconds)[i] for i in rng.permutation(len(seconds))]
    sources.sort(key=lambda s: -seconds[s])
    totals, side_of = [0.0, 0.0], {}
    for source in sources:
        side = int(np.argmin(totals)) if totals[0] != totals[1] else int(rng.integers(2))
        side_of[source] = side
        totals[side] += seconds[source]
    parts: tuple[list[Clip], list[Clip]] = ([], [])
    for clip in clips:
        parts[side_of[clip.source]].append(clip)
    return parts


def cap_minutes(clips: Sequence[Clip], minutes: float | None, seed: int) -> list[Clip]:
    """At most ``minutes`` of ``clips`` (a seeded choice, in the given order); all without."""
    if minutes is None:
        return list(clips)
    order = np.random.default_rng([seed, 2]).permutation(len(clips))
    kept, total = set(), 0.0
    for i in order:
        if total + clips[i].seconds <= minutes * 60:
            kept.add(int(i))
            total += clips[i].seconds
    return [clip for i, clip in enumerate(clips) if i in kept]


def minutes(clips: Sequence[Clip]) -> float:
    return sum(c.seconds for c in clips) / 60


def spread(clips: Sequence[Clip], rng: np.random.Generator) -> list[Clip]:
    """A seeded random order with the fight clips spread out: the other clips are shuffled and
    cut into runs of about equal seconds, one between every two fights (and before the first and
    after the last), so one alarm cannot span two incidents and no incident falls in the cooldown
    of the one before it."""
    fights = [clips[i] for i in rng.permutation(len(clips)) if clips[i].fight]
    others = [clips[i] for i in rng.permutation(len(clips)) if not clips[i].fight]
    if not fights:
        return others
    total = sum(c.seconds for c in others)
    share = total / (len(fights) + 1)
    order, elapsed, placed = [], 0.0, 0
    for clip in others:
        # a fight goes in once the footage before it reaches its share (one per gap at most)
        if placed < len(fights) and elapsed >= share * (placed + 1) - clip.seconds / 2:
            order.append(fights[placed])
            placed += 1
        order.append(clip)
        elapsed += clip.seconds
    order.extend(fights[placed:])
    return order


def _parts(clips: Sequence[Clip], limit: float) -> list[list[Clip]]:
    parts: list[list[Clip]] = [[]]
    total = 0.0
    for clip in clips:
        if parts[-1] and total + clip.seconds > limit:
            parts.append([])
            total = 0.0
        parts[-1].append(clip)
        total += clip.seconds
    return parts


def fit(frame: np.ndarray) -> np.ndarray:
    """``frame`` scaled to fit ``HEIGHT`` x ``WIDTH`` whole, centred on black."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(HEIGHT / height, WIDTH / width)
    size = (max(1, min(WIDTH, round(width * scale))), max(1, min(HEIGHT, round(height * scale))))
    if size != (width, height):
        shrinking = size[0] * size[1] < width * height
        frame = cv2.resize(
            frame, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    top, left = (HEIGHT - size[1]) // 2, (WIDTH - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = frame
    return canvas


def append_clip(writer, path: str, max_seconds: float | None) -> tuple[int, bool]:
    """Write ``path`` at ``FPS`` (nearest source frame for each output frame); returns the
    frames written and whether the clip was trimmed to ``max_seconds``."""
    from resaction.io import VideoReader

    with VideoReader(path, short_side=SHORT_SIDE, threads=1) as reader:
        stamps = np.asarray(reader.timestamps, dtype=np.float64)
        seconds = float(reader.duration)
        trimmed = max_seconds is not None and seconds > max_seconds
        count = max(1, round((max_seconds if trimmed else seconds) * FPS))
        wanted = stamps[0] + np.arange(count) / FPS
        after = np.clip(np.searchsorted(stamps, wanted), 1, len(stamps) - 1)
        nearer = np.abs(stamps[after - 1] - wanted) <= np.abs(stamps[after] - wanted)
        indices = np.where(nearer, after - 1, after) if len(stamps) > 1 else np.zeros(count, int)
        repeats = np.bincount(indices, minlength=int(indices.max()) + 1)
        written, last = 0, None
        for index, _, frame in reader.iter_frames(0, len(repeats)):
            last = fit(frame)
            for _ in range(int(repeats[index])):
                writer.write(last)
                written += 1
        if last is None:
            raise RuntimeError(f"{path}: no frame could be decoded")
        while written < count:  # frames that failed to decode: hold the last one
            writer.write(last)
            written += 1
    return written, trimmed


def build_recording(
    clips: Sequence[Clip],
    folder: Path,
    name: str,
    seed: Sequence[int],
    max_clip_seconds: float | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Join ``clips`` into ``folder/name.mp4`` (or ``name_partK.mp4`` past ``MAX_PART_SECONDS``)
    and return the truth CSV ``folder/name_truth.csv``. Cached: the plan of clips is kept in
    ``name.json``, and recordings of the same plan are not made again."""
    from resaction.io.writer import VideoWriter

    truth_csv, plan_file = folder / f"{name}_truth.csv", folder / f"{name}.json"
    order = spread(clips, np.random.default_rng(list(seed)))
    plan = {
        "fps": FPS,
        "size": [HEIGHT, WIDTH],
        "max_clip_seconds": max_clip_seconds,
        "clips": [asdict(c) for c in order],
    }
    if truth_csv.is_file() and plan_file.is_file() and json.loads(plan_file.read_text()) == plan:
        say(f"# {name}: cached in {folder}")
        return truth_csv
    truth_csv.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    parts = _parts(order, MAX_PART_SECONDS)
    truth_rows, playlist, trimmed = [], [], 0
    for number, part in enumerate(parts, 1):
        video = f"{name}.mp4" if len(parts) == 1 else f"{name}_part{number}.mp4"
        say(f"# join {len(part)} clips into {folder / video} ({FPS:g} fps, {WIDTH}x{HEIGHT})")
        frames = 0
        with VideoWriter(folder / video, FPS, crf=20, threads=1) as writer:
            for clip in part:
                written, cut = append_clip(writer, clip.path, max_clip_seconds)
                trimmed += cut
                start, end = frames / FPS, (frames + written) / FPS
                frames += written
                label = FIGHT if clip.fight else BACKGROUND
                playlist.append(
                    [video, f"{start:.3f}", f"{end:.3f}", label, clip.source, relative(clip.path)]
                )
                if clip.fight:
                    truth_rows.append([video, f"{start:.3f}", f"{end:.3f}", FIGHT])
        if not any(row[0] == video for row in truth_rows):  # an incident-free part still counts
            truth_rows.append([video, "", "", BACKGROUND])
    if trimmed:
        say(f"# {name}: {trimmed} clip(s) trimmed to {max_clip_seconds:g} s")
    _write_csv(
        folder / f"{name}_playlist.csv",
        ["video", "start", "end", "label", "source", "clip"],
        playlist,
    )
    plan_file.write_text(json.dumps(plan, indent=1))
    _write_csv(truth_csv, ["video", "start", "end", "label"], truth_rows)
    return truth_csv


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    partial.replace(path)


def read_truth_csv(path: Path, classes: Sequence[str]) -> tuple[list[Path], dict]:
    """The recordings and their truth spans keyed by ``video_key``: ``read_truth`` where it
    exists, else the CSV read here (it is ours, so its rows need no checking)."""
    try:
        from resaction.inference.truth import read_truth
    except ImportError:
        read_truth = None
    if read_truth is not None:
        return read_truth(path, list(classes))
    from resaction.data.spans import video_facts
    from resaction.detection.event_metrics import Span
    from resaction.inference.event_eval import video_key

    videos: list[Path] = []
    truth: dict[str, list] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            video = path.parent / row["video"]
            key = video_key(video)
            if key not in truth:
                videos.append(video)
                truth[key] = []
            start = float(row["start"]) if row["start"] else 0.0
            end = float(row["end"]) if row["end"] else video_facts(video).duration
            truth[key].append(Span(row["label"], start, end))
    return videos, truth


def digest(*paths: Path) -> str:
    """What the cached scores were made from: CSV contents, other files' size and time."""
    hashed = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        is_csv = path.suffix == ".csv"
        hashed.update(
            path.read_bytes() if is_csv else f"{stat.st_size}:{stat.st_mtime_ns}".encode()
        )
    return hashed.hexdigest()[:16]


def relative(path: str | Path) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def save_timelines(timelines: list, path: Path, stamp: str) -> None:
    """The timelines' window scores in one ``.npz`` (scoring is the slow step), with ``stamp``."""
    meta = [
        {
            "video": relative(t.video),
            "classes": t.classes,
            "fps": t.fps,
            "duration": t.duration,
            "num_frames": t.num_frames,
            "seconds": t.seconds,
            "window_s": t.extra.get("window_s"),
            "config": asdict(t.config),
        }
        for t in timelines
    ]
    arrays = {f"{i}_{k}": getattr(t, k) for i, t in enumerate(timelines) for k in ARRAYS}
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, meta=json.dumps({"stamp": stamp, "timelines": meta}), **arrays)
    partial.replace(path)


def load_timelines(path: Path, stamp: str) -> list | None:
    """The timelines ``save_timelines`` kept, or None when absent or made from other inputs."""
    from resaction.inference.timeline import Timeline, TimelineConfig

    if not path.is_file():
        return None
    with np.load(path) as saved:
        meta = json.loads(str(saved["meta"]))
        if meta["stamp"] != stamp:
            return None
        timelines = []
        for i, item in enumerate(meta["timelines"]):
            video = Path(item["video"])
            timelines.append(
                Timeline(
                    video=str(video if video.is_absolute() else ROOT / video),
                    classes=item["classes"],
                    fps=item["fps"],
                    duration=item["duration"],
                    num_frames=item["num_frames"],
                    segments=[],
                    config=TimelineConfig(**item["config"]),
                    seconds=item["seconds"],
                    extra={"window_s": item["window_s"]},
                    **{k: saved[f"{i}_{k}"] for k in ARRAYS},
                )
            )
    return timelines


def point_names() -> list[str]:
    return [f"calibrated for {b:g}/h" for b in BUDGETS] + [f"fixed {FIXED:g}"]


def set_alarms(timelines: list, threshold: float, decision: dict[str, Any]) -> None:
    """Each timeline's alarms: the watcher's decisions replayed at ``threshold``."""
    from resaction.detection.decisions import Thresholds
    from resaction.inference.alarms import replay_windows

    for timeline in timelines:
        watched = {timeline.classes.index(FIGHT): (FIGHT, Thresholds(enter=threshold, **decision))}
        timeline.alarms = replay_windows(timeline.probs, timeline.starts, timeline.ends, watched)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one ``evaluate_events`` result that the table and JSON keep."""
    fight = result["alarms"]["classes"][FIGHT]
    budget = result["budget"][FIGHT]
    overlap, half = fight["at_tiou"]["1e-06"], fight["at_tiou"]["0.5"]
    delay = result["alarms"]["overall"]["delay"]
    return {
        "incidents": budget["truth"],
        "alarms": budget["alarms"],
        "caught": budget["caught"],
        "recall": budget["recall"],
        "precision": budget["precision"],
        "recall_any_overlap": overlap["recall"],
        "recall_tiou_0.5": half["recall"],
        "false_alarms": budget["false_alarms"],
        "hours": result["hours"],
        "false_alarms_per_hour": budget["false_alarms_per_hour"],
        "false_alarms_per_hour_95": budget["false_alarms_per_hour_95"],
        "no_overlap_alarms": fight["false_alarms"]["count"],
        "map": result["ap"]["map"],
        "map_by_tiou": result["ap"]["map_by_tiou"],
        "alarm_delay": result["alarms"]["alarm_delay"],
        "event_start_delay": {k: v for k, v in delay.items() if k != "values"},
        "frame_accuracy": result["frames"]["accuracy"],
    }


def measure(timelines: list, truth: dict, thresholds: dict[str, float], decision) -> dict:
    """``summarise`` of the test timelines at each named threshold."""
    from resaction.inference.event_eval import evaluate_events

    measured = {}
    for name, threshold in thresholds.items():
        set_alarms(timelines, threshold, decision)
        result = evaluate_events(timelines, truth, labels=[FIGHT], background=BACKGROUND)
        measured[name] = summarise(result)
    return measured


def choose_thresholds(
    sweep: list[dict], say: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """The calibrated thresholds for each budget (or, where none meets it, the highest threshold
    tried, marked: the most conservative; the fewest false alarms can be one alarm that never
    ends, at a low threshold), and the fixed one, with their calibration numbers."""
    from resaction.errors import ConfigError
    from resaction.inference.calibrate import Target, choose

    chosen = {}
    for budget, name in zip(BUDGETS, point_names(), strict=False):
        try:
            point, met = dict(choose(sweep, Target(false_alarms_per_hour=budget), FIGHT)), True
        except ConfigError as error:
            say(f"# {error}")
            point, met = max(sweep, key=lambda p: p["threshold"]), False
        chosen[name] = {"threshold": point["threshold"], "budget_met": met, "calibration": point}
    fixed = min(sweep, key=lambda p: abs(p["threshold"] - FIXED))
    chosen[point_names()[-1]] = {"threshold": FIXED, "budget_met": None, "calibration": fixed}
    return chosen


def curve(sweep: list[dict]) -> list[dict[str, float]]:
    keys = ("threshold", "recall", "precision", "false_alarms_per_hour", "false_alarms")
    return [{k: p[k] for k in keys} for p in sweep]


def pooled(folds: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Every fold's test recording together, each at its own fold's thresholds; and the test
    sweep over all of them at common thresholds (for the plot)."""
    from resaction.inference.calibrate import default_decision, sweep_class
    from resaction.inference.event_eval import evaluate_events

    decision = default_decision()
    timelines = [t for f in folds for t in f["test"]]
    truth = {k: v for f in folds for k, v in f["truth"].items()}
    measured = {}
    for name in point_names():
        for f in folds:
            set_alarms(f["test"], f["thresholds"][name], decision)
        result = evaluate_events(timelines, truth, labels=[FIGHT], background=BACKGROUND)
        measured[name] = summarise(result)
    return measured, curve(sweep_class(timelines, truth, FIGHT, decision))
