"""Open a file with PyAV and find its video stream, turning failures into one-line user errors."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import av
from av.container import InputContainer
from av.stream import Discard
from av.video.stream import VideoStream

from resaction.errors import VideoNotFoundError, VideoOpenError


def av_reason(error: BaseException) -> str:
    """The human part of a PyAV/FFmpeg error, without errno numbers or the repeated file name."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())


def ffmpeg_path(path: str | Path) -> str:
    """A local file's path as FFmpeg (and OpenCV) must be given it: absolute, so that a name
    whose first part holds a colon ("12:30:00.mp4", "cam1:front.mp4", as recorders name files)
    is not taken for a protocol ("Protocol not found")."""
    return os.path.abspath(path)


def check_video_path(path: str | Path) -> Path:
    """The path as a ``Path`` if it is a non-empty regular file, else a ``VideoError``."""
    path = Path(path)
    if not path.exists():
        raise VideoNotFoundError(f"{path}: file not found")
    if path.is_dir():
        raise VideoOpenError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise VideoOpenError(f"{path}: empty file (0 bytes), not a video")
    return path


def open_container(
    path: str | Path, threads: int | None = None
) -> tuple[InputContainer, VideoStream]:
    """Open ``path`` and return the container with its video stream, set up for decoding.

    The video stream is the one FFmpeg's players pick (``av_find_best_stream``): not a cover
    picture or thumbnail stored as a one-frame video stream before the recording.

    Other streams are discarded so demuxing skips their packets. ``threads`` is the decoder's
    thread count (``None``: FFmpeg picks, 0 also means automatic). The decoder opens at the first
    packet decoded, so its FFmpeg options may still be set until then.
    """
    path = check_video_path(path)
    try:
        container = av.open(ffmpeg_path(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as error:
        raise VideoOpenError(f"{path}: cannot be opened as a video ({av_reason(error)})") from error
    try:
        stream = container.streams.best("video")
        if stream is None:
            kinds = Counter(s.type for s in container.streams)
            found = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no streams"
            raise VideoOpenError(f"{path}: has no video stream (found {found})")
        if stream.codec_context is None:
            raise VideoOpenError(f"{path}: no decoder for its video codec")
        for other in container.streams:
            if other.index != stream.index:
                other.discard = Discard.all
        stream.codec_context.copy_opaque = True
        stream.thread_type = "AUTO"
        if threads is not None:
            stream.codec_context.thread_count = threads
    except BaseException:
        container.close()
        raise
    return container, stream
