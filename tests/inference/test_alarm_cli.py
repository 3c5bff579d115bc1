"""``resaction calibrate``, ``evaluate-events`` and ``timeline --truth --export-clips`` from the
command line, on a generated recording whose incidents are known."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import av
import pytest

from resaction.cli import run_app
from resaction.models.checkpoint import read_checkpoint

from .conftest import recording

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def annotated(tmp_path: Path) -> tuple[Path, Path]:
    video, truth = recording(tmp_path / "gate.mp4", seed=3, seconds=40, label="bright")
    table = tmp_path / "truth.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "start", "end", "label"])
        writer.writerows([video.name, span.start, span.end, span.label] for span in truth)
    return video, table


def test_calibrate_writes_thresholds_that_timeline_and_evaluate_events_use(
    tiny_checkpoint: Path, annotated: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    video, table = annotated
    model = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, model)
    args = ["--data", str(table), "--background", "dark", "--no-progress"]
    code = run_app(
        [
            "calibrate",
            str(model),
            "--false-alarms-per-hour",
            "1e6",
            "--out",
            str(tmp_path / "c"),
            *args,
        ]
    )
    assert code == 0, capsys.readouterr().err
    saved = read_checkpoint(model)
    assert set(saved["thresholds"]) == {"bright"} and saved["background"] == "dark"
    assert saved["calibration"]["target"] == {"false_alarms_per_hour": 1e6}
    assert (tmp_path / "c" / "recall_vs_false_alarms.png").stat().st_size > 0
    assert "thresholds written into" in capsys.readouterr().out

    out, clips = tmp_path / "timeline", tmp_path / "clips"
    code = run_app(
        [
            "timeline",
            str(video),
            "-c",
            str(model),
            "--truth",
            str(table),
            "--out",
            str(out),
            "--export-clips",
            str(clips),
            "--min-duration",
            "0",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    alarms = json.loads((out / "alarms.json").read_text())
    assert alarms["source"] == "calibrated thresholds from the model file"
    assert alarms["settings"]["bright"]["enter"] == saved["thresholds"]["bright"]
    events = json.loads((out / "events.json").read_text())
    assert events["alarms"]["classes"]["bright"]["truth"] == len(list(csv.reader(table.open()))) - 1
    assert 0.0 <= events["frames"]["accuracy"] <= 1.0
    index = json.loads((clips / "clips.json").read_text())
    assert index["of"] == "alarms" and index["alarm_source"] == alarms["source"]
    assert [(c["label"], c["span"]) for c in index["clips"]] == [
        (a["label"], [a["start"], a["end"]]) for a in alarms["alarms"]
    ]  # the clips a watcher would have kept, not the 0.5 segments
    assert alarms["alarms"], "the calibrated budget raised no alarm to cut"
    for clip in index["clips"]:
        with av.open(clip["path"]) as container:
            assert container.streams.video[0].frames > 0
    argv = ["timeline", str(video), "-c", str(model), "--out", str(out), "--no-progress"]
    argv += ["--min-duration", "0", "--export-clips", str(tmp_path / "s"), "--clips-of", "segments"]
    assert run_app(argv) == 0, capsys.readouterr().err
    by_segment = json.loads((tmp_path / "s" / "clips.json").read_text())
    segments = json.loads((out / "segments.json").read_text())["segments"]
    assert len(by_segment["clips"]) == sum(s["label"] != "dark" for s in segments)

    code = run_app(["evaluate-events", "-c", str(model), "--out", str(tmp_path / "e"), *args])
    assert code == 0, capsys.readouterr().err
    measured = json.loads((tmp_path / "e" / "events.json").read_text())
    assert measured["alarms"]["overall"]["truth"] == events["alarms"]["overall"]["truth"]
    assert "mAP (tIoU 0.3:0.1:0.7)" in capsys.readouterr().out


def test_bad_annotations_and_targets_are_one_line(
    tiny_checkpoint: Path, annotated: tuple[Path, Path], capsys
) -> None:
    video, table = annotated
    bad = table.with_name("bad.csv")
    bad.write_text(f"video,start,end,label\n{video.name},1,2,bright\n{video.name},3,2,bright\n")
    code = run_app(["evaluate-events", "-c", str(tiny_checkpoint), "--data", str(bad)])
    error = capsys.readouterr().err.strip()
    assert code != 0 and "bad.csv" in error and len(error.splitlines()) == 1
    code = run_app(
        [
            "calibrate",
            str(tiny_checkpoint),
            "--data",
            str(table),
            "--precision",
            "0.9",
            "--false-alarms-per-hour",
            "1",
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code != 0 and "one of --false-alarms-per-hour or --precision" in error
    unknown = table.with_name("unknown.csv")
    unknown.write_text(f"video,start,end,label\n{video.name},1,2,fight\n")
    code = run_app(["evaluate-events", "-c", str(tiny_checkpoint), "--data", str(unknown)])
    error = capsys.readouterr().err.strip()
    assert code != 0 and "unknown.csv" in error and "fight" in error


def test_calibrating_on_too_little_footage_warns_before_writing(
    tiny_checkpoint: Path, annotated: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """40 s of footage cannot show a budget of 100 false alarms per hour (the 95% interval of
    one false alarm reaches 500 per hour), nor is a threshold that catches nothing worth
    trusting: calibrate says both rather than writing silently."""
    _, table = annotated
    model = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, model)
    args = ["calibrate", str(model), "--data", str(table), "--background", "dark"]
    code = run_app([*args, "--false-alarms-per-hour", "100", "--out", str(tmp_path / "c")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "min of footage cannot show 100 false alarm(s) per hour" in captured.err
    assert "the threshold catches none of its 2 incident(s)" in captured.err
    assert f"thresholds written into {model} (see the warnings)" in captured.out


def test_timeline_refuses_a_truth_file_of_other_videos_and_an_unknown_background(
    tiny_checkpoint: Path, annotated: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    video, table = annotated
    other = shutil.copy(video, tmp_path / "other.mp4")
    code = run_app(["timeline", str(other), "-c", str(tiny_checkpoint), "--truth", str(table)])
    error = capsys.readouterr().err.strip()
    assert code != 0 and "has no segments of" in error and "(it annotates gate.mp4)" in error
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    args = ["timeline", str(not_a_video), "-c", str(tiny_checkpoint), "--background", "darkk"]
    code = run_app(args)
    error = capsys.readouterr().err.strip()
    assert code != 0 and "background class 'darkk' is not one of the model's classes" in error
