from __future__ import annotations

from pathlib import Path

import pytest

import resaction.io.decoding as decoding_module
from tests.io.videogen import write_video

FRAMES = 40
RATE = 25
GOP = 10

# name -> (file suffix, codec name PyAV reports, write_video arguments)
CODECS: dict[str, tuple[str, str, dict]] = {
    "h264_mp4": (
        ".mp4",
        "h264",
        {"codec": "libx264", "options": {"x264-params": "keyint=10:min-keyint=10:scenecut=0"}},
    ),
    "h264_open_gop_mkv": (
        ".mkv",
        "h264",
        {
            "codec": "libx264",
            "options": {"x264-params": "keyint=10:min-keyint=10:scenecut=0:open-gop=1:bframes=3"},
        },
    ),
    "vp9_webm": (".webm", "vp9", {"codec": "libvpx-vp9", "options": {"auto-alt-ref": "1"}}),
    "mjpeg_avi": (".avi", "mjpeg", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
    "hevc_mkv": (
        ".mkv",
        "hevc",
        {
            "codec": "libx265",
            "options": {"x265-params": "keyint=10:min-keyint=10:scenecut=0:log-level=error"},
        },
    ),
    "mpeg4_bframes_avi": (".avi", "mpeg4", {"codec": "mpeg4", "max_b_frames": 2}),
}


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session", params=sorted(CODECS))
def coded_video(request: pytest.FixtureRequest, generated: Path) -> tuple[Path, str]:
    """(path, codec name) of a 40-frame numbered video, GOP 10, one per codec/container."""
    suffix, codec_name, kwargs = CODECS[request.param]
    path = generated / f"{request.param}{suffix}"
    if not path.exists():
        write_video(path, num_frames=FRAMES, rate=RATE, gop=GOP, **kwargs)
    return path, codec_name


@pytest.fixture(scope="session")
def h264_video(generated: Path) -> Path:
    path = generated / "plain_h264.mp4"
    if not path.exists():
        _, _, kwargs = CODECS["h264_mp4"]
        write_video(path, num_frames=FRAMES, rate=RATE, gop=GOP, **kwargs)
    return path


@pytest.fixture
def decoded_slots(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The frame numbers of the pictures the decoder puts out, in order, as readers run."""
    slots: list[int] = []
    original = decoding_module._slot

    def recording(index, frame, last):
        slot = original(index, frame, last)
        if slot is not None:
            slots.append(slot)
        return slot

    monkeypatch.setattr(decoding_module, "_slot", recording)
    return slots
