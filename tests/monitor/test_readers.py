from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resaction.errors import ConfigError, VideoNotFoundError, VideoOpenError
from resaction.io.camera_reader import CameraReader, StreamClock
from resaction.io.live import CapturedFrame

from .conftest import StartStream

SHORT_SIDE = 160
MODEL_HW = (160, 284)  # 640x360 with the short side at 160


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        pause.wait(0.05)


class Recorder:
    """What a reader tells: its states and its packets (with their stream times)."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str, str]] = []
        self.packets: list[tuple[float, int]] = []

    def on_state(self, camera: str, state: str, message: str) -> None:
        self.states.append((camera, state, message))

    def on_packet(self, packet: Any, time: float, stream: Any) -> None:
        assert stream.type == "video"
        self.packets.append((time, packet.size))

    def kinds(self) -> list[str]:
        return [state for _, state, _ in self.states]


def reader(name: str, url: str, recorder: Recorder, **options: Any) -> CameraReader:
    options = {"read_timeout": 1.0, "open_timeout": 6.0, "backoff": (0.1, 0.5)} | options
    return CameraReader(
        name,
        url,
        short_side=SHORT_SIDE,
        on_packet=recorder.on_packet,
        on_state=recorder.on_state,
        **options,
    )


def check_frames(frames: list[CapturedFrame]) -> None:
    assert frames, "no frames"
    assert all(frame.image.shape == (*MODEL_HW, 3) for frame in frames)
    assert all(frame.image.dtype == np.uint8 for frame in frames)
    times = np.array([frame.time for frame in frames])
    assert np.all(np.diff(times) > 0), "stream time must increase"
    assert np.all(np.diff([frame.seq for frame in frames]) > 0)


@pytest.mark.parametrize("kind", ["udp", "http", "rtsp"])
def test_network_source_delivers_frames_at_the_model_size(
    kind: str, start_stream: StartStream, quiet_clips: list[Path], fight_clips: list[Path]
) -> None:
    source = start_stream(kind, [quiet_clips[0], fight_clips[0], quiet_clips[1]])
    seen = Recorder()
    camera = reader(kind, source.url, seen, capacity=1000).start()
    try:
        wait_until(lambda: camera.frames_read >= 40, 12, f"{kind} delivers 40 frames")
    finally:
        camera.stop()
    frames = camera.frames.take_new()
    check_frames(frames)
    assert seen.kinds()[:2] == ["connecting", "live"]
    # Real time: 30 fps frames spaced 1/30 s apart in stream time.
    spacing = np.median(np.diff([frame.time for frame in frames]))
    assert spacing == pytest.approx(1 / 30, rel=0.1)
    packet_times = [time for time, _ in seen.packets]
    assert len(packet_times) >= len(frames)
    assert min(packet_times) <= frames[0].time + 0.2
    assert abs(max(packet_times) - frames[-1].time) < 0.5
    assert camera.stats().frames_dropped == 0


def test_file_plays_at_its_own_rate(quiet_clips: list[Path]) -> None:
    seen = Recorder()
    camera = reader("file", str(quiet_clips[0]), seen, capacity=1000).start()
    started = time.monotonic()
    wait_until(lambda: camera.state == "ended", 6, "the file ends")
    took = time.monotonic() - started
    frames = camera.frames.take_new()
    check_frames(frames)
    duration = frames[-1].time - frames[0].time
    assert duration == pytest.approx(len(frames) / 30, abs=0.1)
    assert took == pytest.approx(duration, abs=0.4)
    assert seen.kinds() == ["connecting", "live", "ended"]
    assert len(seen.packets) == len(frames)
    assert camera.stats().input_fps == pytest.approx(30, rel=0.15)


def test_looped_file_keeps_stream_time_increasing(quiet_clips: list[Path]) -> None:
    seen = Recorder()
    camera = reader("loop", str(quiet_clips[0]), seen, capacity=1000, loop=True).start()
    try:
        first_play = 66  # frames in the clip
        wait_until(lambda: camera.frames_read > first_play + 15, 6, "the file loops")
        stats = camera.stats()
    finally:
        camera.stop()
    frames = camera.frames.take_new()
    check_frames(frames)
    gaps = np.diff([frame.time for frame in frames])
    assert gaps.max() < 0.05, "a loop continues one frame on"
    assert stats.state == "live" and stats.reconnects == 0
    assert stats.input_fps == pytest.approx(30, rel=0.15)
    assert seen.kinds() == ["connecting", "live", "stopped"]
    keyframe_packets = [t for t, _ in seen.packets]
    assert np.all(np.diff(keyframe_packets) > -0.2)  # decode order, across the loop too


@pytest.mark.parametrize("kind", ["http", pytest.param("rtsp", marks=pytest.mark.slow)])
def test_disconnected_camera_reconnects_while_another_keeps_reading(
    kind: str, start_stream: StartStream, quiet_clips: list[Path], fight_clips: list[Path]
) -> None:
    """One camera goes away for about 1.5 s and comes back on the same URL: it is reported
    reconnecting then live again, its stream time jumps over the outage, and the UDP camera
    beside it keeps delivering frames all along."""
    away = start_stream(kind, [quiet_clips[0], fight_clips[0]])
    steady = start_stream("udp", [quiet_clips[1], fight_clips[1]])
    heard, other = Recorder(), Recorder()
    cameras = [reader("away", away.url, heard), reader("steady", steady.url, other)]
    for camera in cameras:
        camera.start()
    flaky, calm = cameras
    try:
        wait_until(lambda: flaky.state == calm.state == "live", 8, "both cameras are live")
        wait_until(lambda: flaky.frames_read >= 10, 3, "the first camera reads")
        away.stop()
        wait_until(lambda: flaky.state == "reconnecting", 3, "the loss is reported")
        lost_at, calm_before = time.monotonic(), calm.frames_read
        time.sleep(1.5)
        assert calm.frames_read >= calm_before + 30, "the other camera stalled"
        away.start()
        wait_until(lambda: flaky.state == "live", 8, "the camera is live again")
        outage = time.monotonic() - lost_at
        read_again = flaky.frames_read
        wait_until(lambda: flaky.frames_read >= read_again + 10, 3, "frames flow again")
    finally:
        for camera in cameras:
            camera.stop()
    assert heard.kinds()[:4] == ["connecting", "live", "reconnecting", "live"]
    assert "live" in other.kinds() and "reconnecting" not in other.kinds()
    assert flaky.stats().reconnects == 1 and calm.stats().reconnects == 0
    times = np.array([frame.time for frame in flaky.frames.take_new()])
    assert np.all(np.diff(times) > 0)
    assert np.diff(times).max() == pytest.approx(outage, abs=1.0)


def test_unreachable_at_start_is_reported_retried_and_goes_live(
    start_stream: StartStream, quiet_clips: list[Path]
) -> None:
    source = start_stream("http", quiet_clips[:1], start=False)
    seen = Recorder()
    camera = reader("late", source.url, seen, open_timeout=1.0, down_after=0.5).start()
    try:
        wait_until(lambda: camera.state == "down", 5, "the camera is down")
        assert "cannot open stream http://127.0.0.1" in seen.states[1][2]
        source.start()
        wait_until(lambda: camera.state == "live", 8, "the camera comes up")
    finally:
        camera.stop()
    assert seen.kinds() == ["connecting", "reconnecting", "down", "live", "stopped"]
    assert camera.stats().reconnects == 0
    assert all("\n" not in message for _, _, message in seen.states)


def test_sink_drops_rather_than_queues(quiet_clips: list[Path]) -> None:
    camera = CameraReader("idle", quiet_clips[0], size=(64, 96), capacity=8, loop=True).start()
    try:
        wait_until(lambda: camera.frames_read >= 30, 4, "30 frames are read")
    finally:
        camera.stop()
    stats = camera.stats()
    assert len(camera.frames) == 8
    assert stats.frames_dropped == stats.frames_read - 8
    newest = camera.frames.take_new()
    assert [frame.seq for frame in newest] == list(range(stats.frames_read - 8, stats.frames_read))
    assert newest[0].image.shape == (64, 96, 3)


def test_unreadable_file_ends_with_its_reason_or_fails_open_at_once(tmp_path: Path) -> None:
    """A file that cannot be read is not retried forever: the camera ends and says why; a
    reader opened first (``stream``) raises one line instead."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 64)
    seen = Recorder()
    camera = reader("broken", str(broken), seen).start()
    wait_until(lambda: camera.finished.is_set(), 6, "the camera gives the file up")
    assert seen.kinds() == ["connecting", "ended"]
    assert f"end of {broken} after 0 frames (cannot open video {broken}" in seen.states[-1][2]
    with pytest.raises(VideoOpenError, match=r"cannot open video .*broken\.mp4") as caught:
        CameraReader("broken", broken).open()
    assert "\n" not in str(caught.value)


def test_bad_options_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(VideoNotFoundError):
        CameraReader("gone", tmp_path / "missing.mp4")
    with pytest.raises(ConfigError, match="either size"):
        CameraReader("both", "udp://127.0.0.1:9", size=(2, 2), short_side=2)


def test_stream_clock_continues_over_jumps() -> None:
    clock = StreamClock()
    clock.begin(100.0, at=0.0)
    clock.follow(100.0, 0.04)
    clock.follow(100.04, 0.04)
    assert clock(100.08) == pytest.approx(0.08)
    clock.follow(3.0, 0.04)  # the camera restarted its clock
    assert clock(3.0) == pytest.approx(0.08)
    clock.follow(5000.0, 0.04)  # or jumped far ahead
    assert clock(5000.0) == pytest.approx(0.12)


def test_region_of_interest_comes_out_at_the_model_size(quiet_clips: list[Path]) -> None:
    import av

    with av.open(str(quiet_clips[0])) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    roi = (320, 120, 160, 200)  # x, y, width, height: the right-hand middle of 640x360
    camera = CameraReader("c", str(quiet_clips[0]), short_side=64, roi=roi).start()
    try:
        wait_until(lambda: camera.frames_read > 0, 6, "a frame")
    finally:
        camera.stop()
    image = camera.frames.take_new()[0].image
    assert image.shape == (80, 64, 3)
    region = first[120:320, 320:480].astype(np.float32)
    # The region scaled down 2.5x: 5x5 blocks of the source against 2x2 blocks of the output.
    small = region.reshape(40, 5, 32, 5, 3).mean(axis=(1, 3))
    got = image.astype(np.float32).reshape(40, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(got - small).mean() < 8


def test_a_region_outside_the_picture_keeps_the_camera_down_and_says_why(
    quiet_clips: list[Path],
) -> None:
    """An roi set for another resolution crashed the watcher's worker (every camera) with a
    traceback; now that camera alone is down, saying why, and hands out no frame."""
    roi = (600, 300, 100, 100)
    camera = CameraReader("c", str(quiet_clips[0]), short_side=64, roi=roi, loop=True).start()
    try:
        wait_until(lambda: "does not lie inside" in (camera.reason or ""), 6, "the reason")
    finally:
        camera.stop()
    assert camera.state != "live" and camera.frames_read == 0
    assert "roi [600, 300, 100, 100] does not lie inside its 640x360 picture" in camera.reason
