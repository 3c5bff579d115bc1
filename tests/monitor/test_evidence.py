"""monitor/evidence.py on real video: clips remuxed from the packet ring decode and cover the span,
frame for frame as the source; the ring stays bounded; a reconnect starts a new segment; snapshots
show the right frame at the right size."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from resaction.monitor.evidence import PacketRing
from tests.monitor.evidence_media import FPS, brightness, decode_times, feed, make_video


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("evidence")
    return {
        # what a UDP/RTSP camera sends: Annex-B H.264 in MPEG-TS, with B-frames
        "ts_h264": make_video(folder / "cam.ts", "libx264", "mpegts", 250, (320, 240)),
        "avi_mpeg4": make_video(folder / "cam.avi", "mpeg4", "avi", 250, (320, 240)),
    }


def source(name: str, media: dict[str, Path], videos_dir: Path) -> Path:
    real = {
        "mp4_cctv": "fixed_camera_negatives/no_incident/cctv.mp4",  # 640x360, GOP 5.3 s
        "mp4_fight": "surveillance_camera_fight/fight/fi001.mp4",  # one GOP, B-frames
    }
    return videos_dir / real[name] if name in real else media[name]


def frames_between(path: Path, first: float, last: float) -> list[np.ndarray]:
    """The source's own decoded frames shown in [first, last], display order."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if first - 1e-6 <= float(frame.pts * frame.time_base) <= last + 1e-6:
                out.append(frame.to_ndarray(format="gray"))
    return out


SPANS = {
    "ts_h264": (3.3, 5.7),
    "avi_mpeg4": (3.3, 5.7),
    "mp4_cctv": (12.0, 15.0),
    "mp4_fight": (0.5, 1.5),
}


@pytest.mark.parametrize("name", list(SPANS))
def test_clip_covers_the_span_and_decodes_as_the_source(
    name: str, media: dict[str, Path], videos_dir: Path, tmp_path: Path
) -> None:
    path = source(name, media, videos_dir)
    ring = PacketRing(seconds=120)
    fed = feed(ring, path)
    start, end = SPANS[name]
    facts = ring.write_clip(start, end, tmp_path / "clip.mp4")
    assert facts is not None and facts["complete"]
    assert facts["start"] == max(k for k in fed.keyframes if k <= start)  # remuxed from it
    assert facts["end"] >= end - 1.5 / FPS
    times, images = decode_times(tmp_path / "clip.mp4")
    assert len(images) == facts["packets"]  # every packet became a frame: all decodable
    assert times == sorted(times)
    assert times[-1] - times[0] >= end - facts["start"] - 1.5 / FPS
    original = frames_between(path, facts["start"], facts["end"])
    assert len(original) == len(images)
    assert all(np.array_equal(a, b) for a, b in zip(original, images, strict=True))
    assert not list(tmp_path.glob(".*.part"))


def test_packets_without_timestamps_still_make_a_clip_in_display_order(
    media: dict[str, Path], tmp_path: Path
) -> None:
    ring = PacketRing(seconds=60)
    fed = feed(ring, media["ts_h264"], strip_timestamps=True)
    facts = ring.write_clip(3.3, 5.7, tmp_path / "clip.mp4")
    assert facts is not None and facts["complete"]
    times, images = decode_times(tmp_path / "clip.mp4")
    assert len(images) == facts["packets"]
    first = sorted(fed.times).index(facts["start"])
    levels = [round(float(image.mean())) for image in images]
    expected = [brightness(first + i) for i in range(len(images))]
    assert np.abs(np.array(levels) - np.array(expected)).max() <= 3  # each frame in its place
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3)


def test_ring_is_bounded_by_seconds_and_bytes(media: dict[str, Path]) -> None:
    ring = PacketRing(seconds=2.0)
    container = av.open(str(media["ts_h264"]))
    stream = container.streams.video[0]
    added = 0
    for loop in range(6):  # one connection, a minute of video
        container.seek(0)
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            ring.add(packet, float(packet.pts * packet.time_base) + 10.0 * loop, stream)
            added += 1
            stats = ring.stats()
            assert stats["packets"] <= 3 * FPS + 1  # 2 s plus at most one 1 s GOP
    container.close()
    stats = ring.stats()
    assert added == 1500 and stats["segments"] == 1
    assert 2.0 <= stats["newest"] - stats["oldest"] <= 3.0
    small = PacketRing(seconds=60.0, max_bytes=20_000)
    feed(small, media["ts_h264"])
    assert 0 < small.stats()["bytes"] <= 20_000


def test_reconnect_starts_a_new_segment_and_clips_never_mix_them(
    media: dict[str, Path], tmp_path: Path
) -> None:
    ring = PacketRing(seconds=60)
    feed(ring, media["ts_h264"])  # first connection, then closed
    feed(ring, media["avi_mpeg4"], offset=100.0)  # the camera came back with another codec
    gc.collect()  # the first connection's container and stream are gone
    assert ring.stats()["segments"] == 2
    old = ring.write_clip(2.2, 4.5, tmp_path / "old.mp4")
    assert old is not None and old["segment"] == 0 and old["codec"] == "h264"
    assert len(decode_times(tmp_path / "old.mp4")[0]) == old["packets"]
    new = ring.write_clip(98.0, 103.0, tmp_path / "new.mp4")
    assert new is not None and new["segment"] == 1 and new["codec"] == "mpeg4"
    assert new["start"] == 100.0 and not new["complete"]  # nothing before the reconnect
    assert len(decode_times(tmp_path / "new.mp4")[0]) == new["packets"]

    overlapping = PacketRing(seconds=60)
    feed(overlapping, media["ts_h264"])
    second = feed(overlapping, media["ts_h264"], offset=6.0)  # the stream clock jumped back
    facts = overlapping.write_clip(5.0, 9.0, tmp_path / "mixed.mp4")
    assert facts["segment"] == 1 and facts["start"] == second.keyframes[0]
    assert len(decode_times(tmp_path / "mixed.mp4")[0]) == facts["packets"]
    assert ring.write_clip(50.0, 60.0, tmp_path / "none.mp4") is None
    assert not (tmp_path / "none.mp4").exists()


def test_passes_of_a_looped_file_join_into_one_clip(media: dict[str, Path], tmp_path: Path) -> None:
    """A looped file camera opens each pass anew (a new segment), on a clock that goes on: an
    event across three passes gets one clip of all three, its pictures the source's, in order."""
    ring = PacketRing(seconds=60)
    first = feed(ring, media["ts_h264"])
    length = first.times[-1] + 1 / FPS  # the reader continues one frame after the last
    for number in (1, 2):
        feed(ring, media["ts_h264"], offset=number * length)
    gc.collect()
    assert ring.stats()["segments"] == 3
    facts = ring.write_clip(8.0, 2 * length + 2.0, tmp_path / "loops.mp4")
    assert facts is not None and facts["complete"] and facts["segment"] == 2
    times, images = decode_times(tmp_path / "loops.mp4")
    assert len(images) == facts["packets"]
    assert np.all(np.diff(times) > 0) and times[-1] - times[0] > length + 3.5
    pass_one = frames_between(media["ts_h264"], facts["start"], first.times[-1])
    whole = frames_between(media["ts_h264"], 0.0, first.times[-1])
    expected = pass_one + whole + whole[: len(images) - len(pass_one) - len(whole)]
    assert all(np.array_equal(a, b) for a, b in zip(images, expected, strict=True))


def test_clips_while_the_reader_adds(media: dict[str, Path], tmp_path: Path) -> None:
    ring = PacketRing(seconds=4)
    feed(ring, media["ts_h264"])
    reader = threading.Thread(target=feed, args=(ring, media["ts_h264"], 10.0))
    reader.start()
    written = 0
    for i in range(20):  # the old connection's last seconds, and the live one's
        start, end = (7.0, 9.0) if i % 2 else (17.0, 19.0)
        facts = ring.write_clip(start, end, tmp_path / f"c{i}.mp4")
        if facts is not None:
            assert len(decode_times(tmp_path / f"c{i}.mp4")[0]) == facts["packets"]
            written += 1
    reader.join(30)
    assert written >= 10
    stats = ring.stats()
    assert stats["segments"] == 2 and stats["packets"] <= 2 * (5 * FPS + 1)
    assert 4.0 <= stats["newest"] - stats["oldest"] <= 5.0


def test_snapshot_is_the_frame_at_that_time_scaled(
    media: dict[str, Path], videos_dir: Path, tmp_path: Path
) -> None:
    ring = PacketRing(seconds=60)
    assert ring.snapshot(1.0, tmp_path / "empty.jpg") is None
    fed = feed(ring, media["ts_h264"])
    shown = sorted(fed.times)
    for index, at in ((37, shown[37]), (37, shown[37] + 0.5 / FPS), (0, shown[0])):
        path = ring.snapshot(at, tmp_path / "snap.jpg", max_side=160)
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (120, 160)
        assert abs(float(image.mean()) - brightness(index)) <= 3
    assert ring.snapshot(shown[0] - 0.01, tmp_path / "before.jpg") is None

    real = videos_dir / "fixed_camera_negatives/no_incident/cctv.mp4"
    ring = PacketRing(seconds=120)
    feed(ring, real)
    path = ring.snapshot(20.0, tmp_path / "cctv.jpg", max_side=320)
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (180, 320, 3)
    expected = frames_between(real, 19.8, 20.0)[-1]  # the last frame shown by 20 s
    small = cv2.resize(expected, (320, 180), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert np.abs(gray.astype(float) - small).mean() < 6
