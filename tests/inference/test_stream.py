from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from resaction.errors import SourceError, VideoNotFoundError
from resaction.inference.stream import StreamConfig, run_stream
from resaction.inference.stream_stats import RollingMean, StreamStats
from resaction.io.live import CapturedFrame, LatestFrames, parse_source

from .conftest import MpegTsServer, brightness_predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frame(seq: int) -> CapturedFrame:
    return CapturedFrame(seq, seq / 25, 0.0, np.zeros((2, 2, 3), np.uint8))


def test_latest_frames_keeps_only_the_newest() -> None:
    buffer = LatestFrames(capacity=5)
    for seq in range(3):
        buffer.put(frame(seq))
    assert [f.seq for f in buffer.take_new()] == [0, 1, 2]
    for seq in range(3, 40):
        buffer.put(frame(seq))
        assert len(buffer) <= 5
    assert [f.seq for f in buffer.take_new()] == [35, 36, 37, 38, 39]
    assert buffer.dropped == 32 and len(buffer) == 0  # 3..34 were evicted untaken
    assert buffer.take_new(timeout=0.01) == []


def test_rolling_mean_and_stats() -> None:
    mean = RollingMean(2)
    mean(np.array([1.0, 0.0]))
    mean(np.array([0.0, 1.0]))
    np.testing.assert_allclose(mean(np.array([0.0, 1.0])), [0.0, 1.0])
    stats = StreamStats()
    latencies = np.random.default_rng(0).exponential(0.05, size=200)
    for latency in latencies:
        stats.add_window(float(latency))
    summary = stats.summary(frames_read=100)
    assert summary["windows"] == 200
    assert summary["latency_p50_ms"] == pytest.approx(np.median(latencies) * 1000, abs=0.06)
    assert summary["latency_p95_ms"] == pytest.approx(np.quantile(latencies, 0.95) * 1000, abs=0.06)


def test_sources_are_told_apart(tmp_path: Path) -> None:
    assert parse_source("0") == ("camera", 0)
    assert parse_source("rtsp://cam.local/live") == ("network", "rtsp://cam.local/live")
    assert parse_source("udp://127.0.0.1:5000?pkt_size=1316")[0] == "network"
    with pytest.raises(VideoNotFoundError, match="not a camera index, a URL"):
        parse_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(VideoNotFoundError, match="is a folder: give one video file"):
        parse_source(str(tmp_path))


def test_file_as_fast_as_possible_sees_every_frame(tmp_path: Path, steps_video: Path) -> None:
    events: list[dict[str, Any]] = []
    config = StreamConfig(
        rate=5, smooth=1, events=tmp_path / "events.jsonl", annotate=tmp_path / "live.mp4"
    )
    predictor = brightness_predictor()
    predictor.decisions = {"background": "dark"}  # as a calibrated model file would say
    summary = run_stream(predictor, steps_video, config, on_event=events.append)
    assert summary["frames_read"] == summary["frames_seen"] == 100
    assert summary["dropped_frames"] == 0
    # The first window is ready at frame 3 (4 frames), then one every 5 frames (0.2 s).
    assert summary["windows"] == len(range(3, 100, 5))
    assert summary["stopped"] == "end of input"
    changes = [(e["label"], e["time"]) for e in events if e["event"] == "label"]
    assert [label for label, _ in changes] == ["dark", "bright", "dark"]
    assert changes[1][1] == pytest.approx(1.6, abs=0.25)
    assert changes[2][1] == pytest.approx(2.8, abs=0.25)
    # The watcher's decisions raise one alarm for the bright stretch (1.6-2.8 s), at 0.5; the
    # file ends before min_gap has passed, so it closes with the last window.
    alarms = [e for e in events if e["event"].startswith("alarm_")]
    assert [(e["event"], e["label"]) for e in alarms] == [
        ("alarm_open", "bright"),
        ("alarm_close", "bright"),
    ]
    assert alarms[1]["start"] == pytest.approx(1.6, abs=0.3)
    assert alarms[1]["end"] == pytest.approx(alarms[1]["time"] - 2 / 25)  # the last window's centre
    assert "not calibrated" in events[0]["alarms"]
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in written]
    assert kinds[0] == "start" and kinds[-3:] == ["ended", "alarm_close", "summary"]
    with av.open(str(tmp_path / "live.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 100


@pytest.mark.slow
def test_slow_model_drops_frames_instead_of_queueing(steps_video: Path) -> None:
    """At real time with a model slower than the rate, frames are dropped, and every window
    ends at the newest frame the reader had: nothing waits in a queue, so the lag stays flat."""
    events: list[dict[str, Any]] = []
    config = StreamConfig(rate=10, smooth=1, realtime=True, stats_every=0)
    summary = run_stream(brightness_predictor(delay=0.5), steps_video, config, events.append)
    windows = [e for e in events if e["event"] == "window"]
    assert summary["frames_read"] == 100
    assert summary["dropped_frames"] > 0
    assert summary["frames_seen"] + summary["dropped_frames"] <= 100
    assert 0 < len(windows) < 20
    # A queue would fall ~12 frames further behind with every 0.5 s inference.
    assert max(e["frames_behind"] for e in windows) <= 2


def test_unreachable_stream_is_one_line_error() -> None:
    server = MpegTsServer(b"", 1.0).start()
    url = server.url
    server.stop()
    with pytest.raises(SourceError, match=r"cannot open stream http://127\.0\.0\.1") as caught:
        run_stream(brightness_predictor(), url, StreamConfig(open_timeout=2.0))
    assert "\n" not in str(caught.value)


def test_missing_camera_is_one_line_error(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SourceError, match="cannot open camera 57"):
        run_stream(brightness_predictor(), "57", StreamConfig())
    assert "WARN" not in capfd.readouterr().err


def count(events: list[dict[str, Any]], kind: str) -> int:
    return sum(1 for event in list(events) if event["event"] == kind)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        pause.wait(0.05)
    raise AssertionError("timed out waiting for the stream")


@pytest.mark.slow
def test_network_stream_reconnects_and_then_gives_up(
    mpegts_server: Callable[[], MpegTsServer],
) -> None:
    """A live MPEG-TS stream over HTTP goes away and comes back on the same port: the loss and
    the reconnection are reported and windows continue; when it stays away, a one-line error."""
    server = mpegts_server()
    seen: list[dict[str, Any]] = []
    failures: list[BaseException] = []

    def operator() -> None:
        try:
            wait_until(lambda: count(seen, "window") >= 3)
            server.stop()
            wait_until(lambda: count(seen, "reconnecting") >= 1)
            server.start()
            wait_until(lambda: count(seen, "reconnected") >= 1)
            after = count(seen, "window")
            wait_until(lambda: count(seen, "window") >= after + 3)
            server.stop()
        except BaseException as error:
            failures.append(error)
            server.stop()

    config = StreamConfig(
        rate=8, smooth=1, open_timeout=2.0, read_timeout=1.0, reconnect_timeout=1.5
    )
    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    with pytest.raises(SourceError, match=r"unreachable .* giving up") as caught:
        run_stream(brightness_predictor(), server.url, config, on_event=seen.append)
    thread.join(10)
    assert not failures
    assert "\n" not in str(caught.value)
    kinds = [event["event"] for event in seen]
    assert kinds[0] == "start"
    lost, retry, back = kinds.index("lost"), kinds.index("reconnecting"), kinds.index("reconnected")
    assert lost < retry < back
    assert kinds[back + 1 :].count("window") >= 3
    assert kinds[-1] == "summary"  # after giving up only alarms still open close, then summary
    assert set(kinds[kinds.index("gave_up") + 1 : -1]) <= {"alarm_close"}
    assert seen[-1]["reconnects"] == 1
    assert server.connections == 2
