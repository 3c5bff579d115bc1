"""io/clips.py: segments cut from files by remuxing start at the keyframe before them, cover them,
decode frame for frame as the source and carry its bytes; B-frames leave no gaps; bad input is a
one-line VideoError."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from resaction.errors import ConfigError, VideoError
from resaction.io.clips import clip_name, cut_clip, cut_clips
from tests.io.videogen import read_code, write_audio_only, write_video

REAL = {
    # H.264 with B-frames in MP4, keyframes at 0, 6.68, 8.21 and 9.57 s
    "mp4_h264": ("kinetics400_samples/arm_wrestling/demo.mp4", 7.0, 8.0),
    # MPEG-4 Part 2 in AVI, keyframes at 0 and 12 s
    "avi_mpeg4": ("kth_samples/boxing/boxing_sample.avi", 12.5, 13.5),
    # Xvid AVI with an audio stream, keyframes at 0 and 0.96 s
    "avi_xvid_audio": ("hockey_fight/fight/fi190_xvid.avi", 1.0, 1.5),
}
X264 = "keyint=10:min-keyint=10:scenecut=0:bframes=3:b-pyramid=normal"


def source_packets(path: Path, until: float) -> list[tuple[float, bool, bytes]]:
    """(time from the first frame, keyframe, bytes) of the video packets shown up to ``until``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size and p.pts is not None]
        origin = min(p.pts for p in packets)
        return [
            (float((p.pts - origin) * stream.time_base), p.is_keyframe, bytes(p))
            for p in packets
            if float((p.pts - origin) * stream.time_base) <= until
        ]


def decoded(path: Path, until: float = float("inf")) -> tuple[list[float], list[np.ndarray]]:
    """Times (stream seconds) and grey pictures of the frames shown up to ``until``."""
    times, images = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time > until + 1e-6:
                break
            times.append(float(frame.time))
            images.append(frame.to_ndarray(format="gray"))
    return times, images


@pytest.mark.parametrize("name", list(REAL))
def test_cut_starts_at_the_keyframe_covers_the_span_and_is_not_re_encoded(
    name: str, videos_dir: Path, tmp_path: Path
) -> None:
    relative, start, end = REAL[name]
    video = videos_dir / relative
    facts = cut_clip(video, start, end, tmp_path / "clip.mp4")
    source = source_packets(video, facts["end"])
    keyframe = max(t for t, key, _ in source if key and t <= start)
    assert facts["complete"] and facts["start"] == pytest.approx(keyframe)
    assert facts["end"] < end + 0.2  # past the end only by a B-frame's reference
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        assert not clip.streams.audio  # video only
        first = next(p for p in clip.demux(video=0) if p.size)
        assert first.is_keyframe
    assert bytes(first) == next(data for t, _, data in source if t == pytest.approx(keyframe))
    times, images = decoded(tmp_path / "clip.mp4")
    assert len(images) == facts["packets"]  # every packet became a picture
    gap = times[1] - times[0]
    assert times[-1] - times[0] >= end - facts["start"] - 1.01 * gap
    origin_times, originals = decoded(video, facts["end"])
    kept = [img for t, img in zip(origin_times, originals, strict=True) if t >= keyframe - 1e-6]
    assert len(kept) == len(images)
    assert all(np.array_equal(a, b) for a, b in zip(kept, images, strict=True))
    # each picture at its source time less the keyframe's (B-frames made them a frame late)
    kept_times = np.array([t for t in origin_times if t >= keyframe - 1e-6]) - keyframe
    assert np.array(times) == pytest.approx(kept_times, abs=1e-3)
    assert not list(tmp_path.glob(".*.part"))


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """40 numbered frames at 25 fps, a keyframe every 10, B-frames in a pyramid; the AVI stores
    no usable pts for them, so its pictures are matched by packet."""
    folder = tmp_path_factory.mktemp("clips")
    options = {"x264-params": X264}
    return {
        suffix: write_video(folder / f"bframes{suffix}", "libx264", gop=10, options=options)
        for suffix in (".mp4", ".avi")
    }


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
@pytest.mark.parametrize("span", [(0.5, 0.9), (0.13, 1.05), (0.41, 0.47), (1.2, 1.55)])
def test_b_frames_leave_no_gap_and_reach_the_end(
    suffix: str, span: tuple[float, float], numbered: dict[str, Path], tmp_path: Path
) -> None:
    start, end = span
    facts = cut_clip(numbered[suffix], start, end, tmp_path / "clip.mp4")
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        shown = [read_code(f.to_ndarray(format="gray")) for f in clip.decode(video=0)]
    first = int(start * 25) // 10 * 10  # the keyframe at or before the start
    assert shown[0] == first and shown == list(range(first, shown[-1] + 1))
    assert int(end * 25) <= shown[-1] <= int(end * 25) + 4  # B-frames: a few past the end
    assert facts["complete"] and facts["start"] == pytest.approx(first / 25)
    assert facts["end"] == pytest.approx(shown[-1] / 25) and facts["packets"] == len(shown)


def test_cut_clips_names_pads_and_labels(videos_dir: Path, tmp_path: Path) -> None:
    video = videos_dir / REAL["mp4_h264"][0]
    spans = [("fight", 7.0, 7.5), ("no fight/ok?", 2.0, 2.4), ("fight", 9.7, 20.0)]
    clips = cut_clips(video, spans, tmp_path / "clips", pad=0.2)
    names = [Path(c["path"]).name for c in clips]
    assert names == [
        "000_fight_7.0-7.5.mp4",
        "001_no_fight_ok_2.0-2.4.mp4",
        "002_fight_9.7-20.0.mp4",
    ]
    assert [c["label"] for c in clips] == ["fight", "no fight/ok?", "fight"]
    assert all((tmp_path / "clips" / n).is_file() for n in names)
    assert clips[0]["start"] == pytest.approx(6.68, abs=0.01) and clips[0]["end"] >= 7.65
    assert clips[1]["start"] == 0.0 and clips[1]["end"] >= 2.55
    assert clips[2]["start"] == pytest.approx(8.21, abs=0.01)  # padded: 9.5 s
    assert clips[0]["complete"] and clips[1]["complete"] and not clips[2]["complete"]
    assert clip_name(7, "", 1.0, 2.0) == "007_segment_1.0-2.0.mp4"


def test_bad_input_is_one_line_naming_the_file(videos_dir: Path, tmp_path: Path) -> None:
    video = videos_dir / REAL["avi_xvid_audio"][0]
    audio = write_audio_only(tmp_path / "audio.wav")
    cases = [
        (tmp_path / "missing.mp4", 0.0, 1.0, "not found"),
        (audio, 0.0, 1.0, "no video stream"),
        (video, 5.0, 6.0, "after the video's last frame"),
        (video, 1.0, 1.0, "not after its start"),
        (video, 1.0, float("nan"), "finite"),
    ]
    for path, start, end, reason in cases:
        with pytest.raises(VideoError) as caught:
            cut_clip(path, start, end, tmp_path / "out.mp4")
        message = str(caught.value)
        assert "\n" not in message and path.name in message and reason in message
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(ConfigError, match="padding"):
        cut_clips(video, [("a", 0.0, 1.0)], tmp_path, pad=-1.0)
    with pytest.raises(VideoError, match="not after its start"):  # checked before any clip
        cut_clips(video, [("a", 0.0, 1.0), ("b", 2.0, 1.0)], tmp_path / "none")
    assert not (tmp_path / "none").exists()
