from __future__ import annotations

import json
from pathlib import Path

import pytest

from resaction.cli import run_app
from resaction.io import VideoReader
from tests.io.videogen import (
    cut_at,
    remux,
    remux_with_decode_times_as_pts,
    replace_packet,
    write_video,
)

FAST = ["--clips", "2", "--clip-len", "4", "--short-side", "32", "--no-progress"]


@pytest.fixture
def dataset_tree(tmp_path: Path, videos_dir: Path) -> Path:
    """Two dataset folders of real videos (linked, not copied) and one broken file."""
    root = tmp_path / "videos"
    picks = {
        "hockey": ["hockey_fight/fight/fi1_xvid.avi", "hockey_fight/noFight/no1_xvid.avi"],
        "kinetics": ["kinetics400_samples/arm_wrestling/demo.mp4"],
    }
    for dataset, files in picks.items():
        for relative in files:
            link = root / dataset / Path(relative).parent.name / Path(relative).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(videos_dir / relative)
    (root / "kinetics" / "broken.mp4").write_text("not a video")
    (root / "kinetics" / "labels.csv").write_text("path,label\n")
    return root


def test_probe_reports_each_dataset_and_the_broken_file(
    dataset_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "probe.json"
    code = run_app(["probe", str(dataset_tree), *FAST, "--json", str(out)])
    captured = capsys.readouterr()

    assert code == 0
    for text in ("hockey", "kinetics", "mpeg4", "h264", "360x288", "340x256"):
        assert text in captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith("unreadable: ")
    assert str(dataset_tree / "kinetics" / "broken.mp4") in errors[0]

    report = json.loads(out.read_text())
    datasets = {d["name"]: d for d in report["datasets"]}
    assert (datasets["hockey"]["videos"], datasets["hockey"]["unreadable"]) == (2, 0)
    assert (datasets["kinetics"]["videos"], datasets["kinetics"]["unreadable"]) == (2, 1)
    assert datasets["kinetics"]["frames_range"] == [280, 280]
    good = [v for v in report["videos"] if v["error"] is None]
    assert len(good) == 3 and all(len(v["clip_ms"]) == 2 for v in good)


def test_one_bad_file_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 100)
    code = run_app(["probe", str(bad), *FAST])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert error.startswith("error: ") and str(bad) in error
    assert "\n" not in error and "Traceback" not in error


@pytest.mark.parametrize("kind", ["missing", "no_videos"])
def test_nothing_to_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    target = tmp_path / "nothing"
    if kind == "no_videos":
        target.mkdir()
        (target / "readme.txt").write_text("hi")
    code = run_app(["probe", str(target), *FAST])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert str(target) in error and "\n" not in error


def test_probe_verify_reports_how_each_file_seeks(
    tmp_path: Path, videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """H.264 in AVI (a DVR export, here OpenCV's pedestrian sample) is found by packet, an MP4 by
    pts, and both read frame-exact."""
    root = tmp_path / "videos" / "cctv"
    root.mkdir(parents=True)
    for name in ("pedestrians_vtest.avi", "example_01.mp4"):
        (root / name).symlink_to(videos_dir / "fixed_camera_negatives" / "no_incident" / name)
    out = tmp_path / "probe.json"
    code = run_app(["probe", str(root.parent), *FAST, "--verify", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "exact" in captured.out and "2/2" in captured.out
    videos = {Path(v["path"]).name: v for v in json.loads(out.read_text())["videos"]}
    assert videos["pedestrians_vtest.avi"]["seek_mode"] == "packet"
    assert videos["example_01.mp4"]["seek_mode"] == "pts"
    assert all(v["exact"] is True and v["error"] is None for v in videos.values())


def test_probe_says_a_program_stream_is_read_from_the_start_and_how_to_remux(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An MPEG program stream (DVD, camcorder, many DVR exports) reads exactly, from the start,
    and probe says so with the command that makes it seekable."""
    root = tmp_path / "videos" / "dvr"
    root.mkdir(parents=True)
    write_video(root / "export.mpg", "mpeg2video", num_frames=60, gop=12, max_b_frames=2)
    out = tmp_path / "probe.json"
    code = run_app(["probe", str(root.parent), *FAST, "--verify", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "1/1" in captured.out
    (video,) = json.loads(out.read_text())["videos"]
    assert video["seek_mode"] == "pts from start"
    assert video["exact"] is True and video["error"] is None
    assert "export.mpg: its timestamps cannot be trusted after a seek" in captured.err
    assert "ffmpeg -i export.mpg -c copy out.mkv" in captured.err


def test_probe_names_pictures_damaged_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording cut mid-picture reads exactly, and probe says that a picture is damaged in
    the file itself rather than calling the reads wrong."""
    root = tmp_path / "videos" / "dvr"
    root.mkdir(parents=True)
    options = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2"}
    full = write_video(
        tmp_path / "full.ts",
        "libx264",
        num_frames=90,
        gop=12,
        width=160,
        height=96,
        options=options,
    )
    cut_at(full, root / "cut.ts", 0.5)
    out = tmp_path / "probe.json"
    code = run_app(["probe", str(root.parent), *FAST, "--verify", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "1/1" in captured.out
    (video,) = json.loads(out.read_text())["videos"]
    assert video["exact"] is True and video["damaged"] >= 1
    assert "cut.ts: 1 picture(s) damaged in the file itself" in captured.err


def test_probe_calls_a_damaged_file_damaged_not_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One packet of garbage in a 90-frame recording: the file reads but for the frames up to
    the next keyframe. Probe used to count it unreadable when a timed clip hit them; it now says
    which clips failed and why the check differs, and counts it readable but not exact."""
    root = tmp_path / "videos" / "dvr"
    root.mkdir(parents=True)
    source = write_video(tmp_path / "source.avi", "mpeg4", num_frames=90, gop=10)
    garbage = bytes(range(256)) * 8
    replace_packet(source, root / "damaged.avi", 40, garbage)
    out = tmp_path / "probe.json"
    options = ["--clips", "20", "--clip-len", "8", "--short-side", "32", "--no-progress"]
    code = run_app(["probe", str(root.parent), *options, "--verify", "--json", str(out)])
    captured = capsys.readouterr()
    (video,) = json.loads(out.read_text())["videos"]
    (summary,) = json.loads(out.read_text())["datasets"]
    assert code == 0 and summary["unreadable"] == 0 and summary["exact"] == 0
    assert video["error"] is None and video["exact"] is False
    assert "damaged.avi: damaged, " in video["problem"]
    assert "clips could not be read (frame 4" in video["problem"]
    assert "not exact, the index counts 90 frames, a plain decode 89" in video["problem"]
    assert video["problem"] in captured.err.replace("\n", "")


def test_probe_advises_a_remux_that_makes_an_mkv_with_decode_order_pts_seekable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An MKV remuxed from an MP4 without composition times has pts in decode order and no decode
    times: remuxing it into MKV again changes nothing, into MP4 (which stores decode times) it
    becomes seekable, so that is the command probe gives."""
    root = tmp_path / "videos" / "phone"
    root.mkdir(parents=True)
    x264 = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2"}
    source = write_video(tmp_path / "s.mp4", "libx264", num_frames=60, gop=12, options=x264)
    no_ctts = remux_with_decode_times_as_pts(source, tmp_path / "no_ctts.mp4")
    clip = remux(no_ctts, root / "clip.mkv", lambda _, packet: packet)
    code = run_app(["probe", str(root.parent), *FAST])
    captured = capsys.readouterr()
    assert code == 0
    assert "clip.mkv: its timestamps cannot be trusted after a seek" in captured.err
    assert "ffmpeg -i clip.mkv -c copy out.mp4" in captured.err
    for target in ("again.mkv", "out.mp4"):
        remux(clip, tmp_path / target, lambda _, packet: packet)
    with VideoReader(tmp_path / "again.mkv") as again, VideoReader(tmp_path / "out.mp4") as out:
        assert "from start" in again.seek_mode and "from start" not in out.seek_mode
