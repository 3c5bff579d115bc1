"""Segment annotations of long videos: the three formats, bad rows, background, and sampling
inside a segment, on small generated videos whose frame brightness encodes the frame number."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from resaction.data.dataset import SkippedVideo, VideoClipDataset
from resaction.data.manifests import VideoEntry, read_manifest
from resaction.data.sampling import RandomClipSampler, SegmentSampler
from resaction.data.spans import frame_window, median_span, video_facts
from resaction.data.splits import kfold, shared_groups, train_test_split
from resaction.errors import DatasetError
from resaction.io import VideoReader, VideoWriter

FPS = 10
LEVEL = 4  # frame i is grey 20 + 4 i: its brightness gives its number back after decoding


def _ramp(path: Path, num_frames: int) -> Path:
    frames = np.zeros((num_frames, 32, 32, 3), np.uint8)
    frames += (20 + LEVEL * np.arange(num_frames, dtype=np.uint8))[:, None, None, None]
    with VideoWriter(path, FPS, crf=10, threads=1) as writer:
        writer.write_many(frames)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``a.mp4`` (4 s) and ``b.mp4`` (3 s) at 10 fps, and ``c.mp4`` (2 s) in a sub-folder."""
    root = tmp_path_factory.mktemp("long_videos")
    _ramp(root / "a.mp4", 40)
    _ramp(root / "b.mp4", 30)
    (root / "more").mkdir()
    _ramp(root / "more" / "c.mp4", 20)
    (root / "broken.mp4").write_bytes(b"not a video")
    return root


def _csv(videos: Path, rows: list[str], name: str = "segments.csv") -> Path:
    path = videos / name
    path.write_text("video,start,end,label,group\n" + "".join(f"{row}\n" for row in rows))
    return path


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_segment_csv_gives_timed_entries_grouped_by_video(videos: Path) -> None:
    path = _csv(videos, ["a.mp4,0.5,1.5,walk,", "a.mp4,2,0:03.5,run,", "b.mp4,0,3,walk,p7"])
    manifest = read_manifest(path)
    assert manifest.classes == ["run", "walk"]
    first, second, third = manifest.entries
    assert (first.path, first.label, first.start, first.end) == (videos / "a.mp4", 1, 0.5, 1.5)
    assert (second.start, second.end, second.label) == (2.0, 3.5, 0)
    assert first.group == second.group == str(videos / "a.mp4")
    assert third.group == "p7" and manifest.bad_rows == []


def test_label_studio_export_frames_from_one_at_the_task_or_video_rate(videos: Path) -> None:
    def region(start: int, end: int, label: str) -> dict:
        value = {"ranges": [{"start": start, "end": end}], "timelinelabels": [label]}
        return {"type": "timelinelabels", "from_name": "tl", "to_name": "video", "value": value}

    tasks = [
        {
            "id": 11,
            "data": {"video": "/data/upload/1/3f2a9c1d-a.mp4"},
            "annotations": [
                {"was_cancelled": True, "result": [region(1, 40, "fall")]},
                {"result": [region(11, 20, "walk"), {"type": "choices", "value": {}}]},
            ],
            "predictions": [{"result": [region(1, 5, "run")]}],
        },
        {
            "id": 12,
            "data": {"video_url": "/data/local-files/?d=clips/more/c.mp4", "fps": 5},
            "annotations": [{"result": [region(1, 5, "run")]}],
        },
    ]
    path = videos / "export.json"
    path.write_text(json.dumps(tasks))
    manifest = read_manifest(path)
    walk, run = manifest.entries
    assert manifest.classes == ["run", "walk"]
    assert walk.path == videos / "a.mp4" and (walk.start, walk.end) == (1.0, 2.0)
    assert run.path == videos / "more" / "c.mp4" and (run.start, run.end) == (0.0, 1.0)


def test_cvat_video_tracks_are_the_frames_inside(videos: Path) -> None:
    path = videos / "annotations.xml"
    path.write_text(
        "<annotations><version>1.1</version><meta><task><size>40</size>"
        "<start_frame>0</start_frame><stop_frame>39</stop_frame></task>"
        "<source>a.mp4</source></meta>"
        '<track id="0" label="walk"><box frame="5" outside="0"/><box frame="15" outside="1"/>'
        "</track>"
        '<track id="1" label="walk"><box frame="10" outside="0"/><box frame="20" outside="1"/>'
        '<box frame="30" outside="0"/></track>'
        '<track id="2" label="fall"><box frame="0" outside="1"/><box frame="22" outside="0"/>'
        '<box frame="25" outside="1"/></track></annotations>'
    )
    manifest = read_manifest(path)
    spans = sorted((manifest.classes[e.label], e.start, e.end) for e in manifest)
    assert spans == [("fall", 2.2, 2.5), ("walk", 0.5, 2.0), ("walk", 3.0, 4.0)]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("gone.mp4,0,1,walk,", "video gone.mp4 not found"),
        ("broken.mp4,0,1,walk,", "broken.mp4 cannot be read"),
        ("a.mp4,3,4.5,walk,", "segment 3 s to 4.5 s is outside video a.mp4 (4.00 s long)"),
        ("a.mp4,2,1,walk,", "segment 2 s to 1 s ends before it starts"),
        ("a.mp4,1,1,walk,", "segment 1 s to 1 s is empty"),
        ("a.mp4,-1,1,walk,", "segment -1 s to 1 s starts before the video"),
        ("a.mp4,one,2,walk,", "start 'one' is not a time in seconds"),
        ("a.mp4,0,1,,", "the label is empty"),
        ("a.mp4,0,1,swim,", "label 'swim' is not one of the given classes"),
    ],
)
def test_a_bad_row_is_one_line_naming_file_row_and_reason(
    videos: Path, row: str, reason: str
) -> None:
    path = _csv(videos, ["b.mp4,0,1,walk,", row], name="bad.csv")
    with pytest.raises(DatasetError) as error:
        read_manifest(path, classes=["run", "walk"])
    message = _one_line(error)
    assert message.startswith(f"{path}:3: ") and reason in message


def test_bad_rows_of_json_name_the_task_and_region(videos: Path) -> None:
    def region(end: int) -> dict:
        value = {"ranges": [{"start": 1, "end": end}], "timelinelabels": ["walk"]}
        return {"type": "timelinelabels", "value": value}

    tasks = [
        {"id": 7, "data": {"video": "b.mp4"}, "annotations": [{"result": []}]},
        {"id": 9, "data": {"video": "b.mp4"}, "annotations": [{"result": [region(500)]}]},
        {"id": 10, "data": {"video": "b.mp4"}, "annotations": [{"result": [region(5)]}]},
    ]
    path = videos / "bad.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(DatasetError, match="1 more bad rows") as error:
        read_manifest(path)
    assert f"{path}:task[0] id=7: the task has no timeline labels" in _one_line(error)
    manifest = read_manifest(path, skip_bad_rows=True)
    assert [(e.start, e.end) for e in manifest] == [(0.0, 0.5)]
    assert str(manifest.bad_rows[1]) == (
        f"{path}:task[1] id=9 region 0: frames 0 to 500 (0.00 s to 50.00 s at 10 fps) is outside "
        "video b.mp4 (3.00 s long)"
    )


def test_skip_bad_rows_keeps_the_good_ones_and_lists_the_rest(videos: Path, caplog) -> None:
    path = _csv(videos, ["a.mp4,0,1,walk,", "gone.mp4,0,1,walk,", "a.mp4,2,1,run,"], "mix.csv")
    with caplog.at_level(logging.WARNING, logger="resaction.data.annotations"):
        manifest = read_manifest(path, skip_bad_rows=True)
    assert [(e.start, e.end) for e in manifest] == [(0.0, 1.0)] and manifest.classes == ["walk"]
    assert [(bad.file, bad.row) for bad in manifest.bad_rows] == [(path, "3"), (path, "4")]
    assert "not found" in manifest.bad_rows[0].reason
    assert sum("skipping annotation row" in r.message for r in caplog.records) == 2


def test_background_fills_the_gaps_in_pieces_no_longer_than_the_median(videos: Path) -> None:
    rows = ["a.mp4,1,2,walk,", "a.mp4,1.5,2.5,walk,", "a.mp4,3.8,4,run,", "b.mp4,0,1,walk,"]
    manifest = read_manifest(_csv(videos, rows, "bg.csv"), background="idle")
    assert manifest.classes == ["idle", "run", "walk"]
    pieces = [(str(e.path.name), e.start, e.end) for e in manifest if e.label == 0]
    assert pieces == [
        ("a.mp4", 0.0, 1.0),
        ("a.mp4", 2.5, 3.15),
        ("a.mp4", pytest.approx(3.15), 3.8),
        ("b.mp4", 1.0, 2.0),
        ("b.mp4", 2.0, 3.0),
    ]
    assert all(e.group == str(e.path) for e in manifest)


def test_background_name_must_be_new_and_needs_segments(videos: Path) -> None:
    path = _csv(videos, ["a.mp4,1,2,walk,"], "clash.csv")
    with pytest.raises(DatasetError, match="'walk' is also a label"):
        read_manifest(path, background="walk")
    plain = videos / "plain.csv"
    plain.write_text("path,label\na.mp4,walk\n")
    with pytest.raises(DatasetError, match="needs segment annotations"):
        read_manifest(plain, background="idle")


def test_to_csv_writes_times_that_read_back(videos: Path, tmp_path: Path) -> None:
    manifest = read_manifest(_csv(videos, ["a.mp4,0.5,1.25,walk,", "b.mp4,,,run,g"], "rt.csv"))
    again = read_manifest(manifest.to_csv(tmp_path / "out" / "manifest.csv"))
    assert again.entries == manifest.entries and again.classes == manifest.classes


def _frame_numbers(clip) -> list[int]:
    """Frame numbers from a (C, T, H, W) uint8 clip of a ramp video."""
    levels = clip.float().mean(dim=(0, 2, 3)).numpy()
    return np.rint((levels - 20) / LEVEL).astype(int).tolist()


def test_clips_are_sampled_inside_the_segment(videos: Path) -> None:
    entry = VideoEntry(videos / "a.mp4", 0, start=1.0, end=2.0)
    with VideoReader(entry.path) as reader:
        stamps = reader.timestamps
    for sampler in (RandomClipSampler(4), SegmentSampler(4, train=True)):
        dataset = VideoClipDataset([entry] * 6, sampler, None)
        for index in range(6):
            clip, _, _ = dataset[index]
            assert all(1.0 <= stamps[n] < 2.0 for n in _frame_numbers(clip))


def test_a_dense_clip_longer_than_its_segment_is_centred_or_skipped(videos: Path) -> None:
    stamps = np.arange(40) / FPS
    fits = VideoEntry(videos / "a.mp4", 0, start=1.0, end=1.3)  # 3 frames of a 4-frame clip
    assert frame_window(fits, stamps, span=4) == (10, 4)
    half = VideoEntry(fits.path, 0, start=1.0, end=1.2)  # 2 frames: one more on each side
    assert frame_window(half, stamps, span=4) == (9, 4)
    assert frame_window(VideoEntry(fits.path, 0, start=0.0, end=0.3), stamps, span=4) == (0, 4)
    short = VideoEntry(videos / "a.mp4", 0, start=1.0, end=1.1)
    dataset = VideoClipDataset([short], RandomClipSampler(4), None)
    skipped = dataset[0]
    assert isinstance(skipped, SkippedVideo) and skipped.path.endswith("a.mp4 [1.00-1.10 s]")
    assert "under half" in skipped.reason and len(dataset.skipped) == 1


def test_splits_keep_the_segments_of_a_video_together(videos: Path) -> None:
    rows = [
        f"{video},{t},{t + 0.5},{label},"
        for video in ("a.mp4", "b.mp4", "more/c.mp4")
        for t in (0.0, 0.5, 1.0, 1.5)
        for label in ("walk", "run")
    ]
    manifest = read_manifest(_csv(videos, rows, "many.csv"))
    train, test = train_test_split(manifest, test_size=0.34)
    assert shared_groups(train, test) == set()
    assert {e.path for e in train}.isdisjoint({e.path for e in test})
    for train, test in kfold(manifest, k=3):
        assert {e.path for e in train}.isdisjoint({e.path for e in test}) and len(test) == 8


def test_median_span_uses_segments_or_the_probed_video(videos: Path) -> None:
    assert video_facts(videos / "a.mp4").duration == pytest.approx(4.0, abs=0.01)
    entries = [VideoEntry(videos / name, 0) for name in ("a.mp4", "b.mp4", "more/c.mp4")]
    assert median_span(entries) == pytest.approx(3.0, abs=0.01)
    assert median_span([VideoEntry(videos / "a.mp4", 0, start=0.5, end=1.0)]) == 0.5
