"""``VideoReader``: frame-accurate random access to a video file with PyAV.

Clips are read by seeking to the keyframe before each run of wanted frames and decoding forward
only as far as the last of them; colour conversion and resizing happen in one swscale call, and
only for the frames that are returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from av.video.frame import VideoFrame

from resaction.errors import VideoOpenError
from resaction.io.base import FrameReader, IndexLike
from resaction.io.container import open_container
from resaction.io.convert import FrameConverter, reduced_decode_level
from resaction.io.decoding import ForwardDecode
from resaction.io.geometry import output_size
from resaction.io.index import VideoIndex
from resaction.io.index_build import cached_index, index_in_cache
from resaction.io.metadata import VideoMetadata, frame_rate

log = logging.getLogger(__name__)

FRAMES_A_SEEK_COSTS = 4
KEYFRAMES_BACK_ON_A_MISS = 2


class VideoReader(FrameReader):
    """Random access to the frames of one video file.

    ``size=(H, W)`` or ``short_side=N`` resize frames during colour conversion (swscale,
    ``interpolation``); with ``reduced_decoding`` (the default), codecs that can decode at a
    fraction of their size do so when that still covers the output size (see ``convert``).
    ``threads`` is the thread count of the decoder and of the conversion (``None``: FFmpeg picks
    one per core; use 1 inside data-loader workers). Open once, read many clips, then ``close()``
    or use ``with``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        size: tuple[int, int] | None = None,
        short_side: int | None = None,
        threads: int | None = None,
        interpolation: str = "BILINEAR",
        reduced_decoding: bool = True,
    ) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self._container, self._stream = open_container(self.path, threads)
        self._decoding: ForwardDecode | None = None
        try:
            known = index_in_cache(self.path)
            index = known or cached_index(self._container, self._stream, self.path)
            self._index: VideoIndex = index
            self._turns = index.rotation // 90
            coded = (index.coded_height, index.coded_width)
            display = coded[::-1] if self._turns % 2 else coded
            self._out_hw = output_size(*display, size=size, short_side=short_side)
            scale_hw = self._out_hw[::-1] if self._turns % 2 else self._out_hw
            threads_used = 0 if threads is None else threads
            self._to_rgb = FrameConverter(scale_hw, self._turns, interpolation, threads_used)
            level = reduced_decode_level(index.codec, coded, scale_hw) if reduced_decoding else 0
            self.decode_scale = 1 / 2**level
            if level and known is None:  # indexing opened the decoder at full size
                self._container.close()
                self._container, self._stream = open_container(self.path, threads)
            if level:
                self._stream.codec_context.options = {"lowres": str(level)}
            fps = frame_rate(index.timestamps, _float(index.average_rate))
            last = float(index.timestamps[-1])
            self._metadata = VideoMetadata(
                path=str(self.path),
                num_frames=index.num_frames,
                fps=fps,
                duration=last + 1.0 / fps if fps > 0 else last,
                width=display[1],
                height=display[0],
                codec=index.codec,
                rotation=index.rotation,
                pix_fmt=index.pix_fmt,
            )
        except BaseException:
            self._container.close()
            raise

    @property
    def timestamps(self) -> np.ndarray:
        """Seconds from the first frame, one per frame, exact from the stream's timestamps."""
        return self._index.timestamps

    decode_scale: float
    """The fraction of the coded size pictures are decoded at (1 unless reduced decoding)."""

    @property
    def seek_mode(self) -> str:
        """How decoded pictures are matched to frame numbers after a seek: ``"pts"`` (by the
        container's presentation timestamps) or ``"packet"`` (by the packet each picture came
        from, numbered by one full decode when the file was opened; for containers whose
        timestamps are guessed and wrong, such as H.264 with B-frames in AVI); "from start" is
        added where a read demuxes from the start of the file instead of seeking (MPEG program
        streams, whose timestamps shift after a seek; streams with no timestamps to seek by), and
        ", keyframes decoded" where the container flags most packets as keyframes and the real
        ones were found by decoding the file once."""
        mode = "pts" if self._index.by_pts else "packet"
        mode = mode if self._index.seekable else f"{mode} from start"
        return f"{mode}, keyframes decoded" if self._index.keys_decoded else mode

    def get_frames(self, indices: IndexLike) -> torch.Tensor:
        """Frames ``indices`` (any order, repeats allowed) as uint8 ``(T, H, W, 3)`` RGB."""
        wanted = self.check_indices(indices)
        height, width = self._out_hw
        if wanted.size == 0:
            return torch.empty((0, height, width, 3), dtype=torch.uint8)
        unique, inverse = np.unique(wanted, return_inverse=True)
        frames = np.empty((len(unique), height, width, 3), dtype=np.uint8)
        ordered = unique.tolist()
        done = 0
        while done < len(unique):
            done = self._decode_run(ordered, done, frames)
        if len(unique) != len(wanted) or np.any(np.diff(wanted) < 0):
            frames = frames[inverse.reshape(-1)]
        return torch.from_numpy(frames)

    def _frames_from(self, first: int, back: int = 0) -> ForwardDecode:
        """Decoding that reaches frame ``first``: the one left running by the last read when
        ``first`` lies ahead of it and no keyframe well past it would be closer (as clips of one
        video read in order do), else a new one from the keyframe before ``first`` (or ``back``
        keyframes before that one)."""
        index = self._index
        key = index.seek_point(first, back)
        running = self._decoding
        last = None if running is None or running.finished else running.last
        if back == 0 and last is not None and last < first and not self._worth_seeking(last, first):
            running.first_wanted = first
            return running
        if running is not None:
            running.close()
        self._decoding = ForwardDecode(
            self._container, self._stream, index, key, first, check_key=True
        )
        return self._decoding

    def _worth_seeking(self, decoded: int, wanted: int) -> bool:
        """Whether a new seek reaches frame ``wanted`` sooner than decoding on from frame
        ``decoded``: the keyframe before ``wanted`` is more than a few frames past ``decoded``
        (a seek and a decoder flush cost about as much as decoding those few frames)."""
        if wanted - decoded <= FRAMES_A_SEEK_COSTS:
            return False
        key = self._index.seek_point(wanted)
        return int(self._index.key_slot[key]) - decoded > FRAMES_A_SEEK_COSTS

    def _frames_reaching(self, first: int) -> Iterator[tuple[int, VideoFrame]]:
        """Decoded ``(frame number, frame)`` from frame ``first`` on. Where frame ``first`` does
        not come out of the decoding that should reach it, decoding starts again from up to
        ``KEYFRAMES_BACK_ON_A_MISS`` keyframes earlier: in H.264 with periodic intra refresh
        (low-latency cameras) the flagged keyframes are recovery points, and after a seek to one
        the decoder shows nothing until the refresh has swept the whole picture. (The frames are
        passed on in a loop, not with ``yield from``, which would close the decoding kept for the
        next read to go on with.)"""
        index = self._index
        for back in range(KEYFRAMES_BACK_ON_A_MISS + 1):
            frames = iter(self._frames_from(first, back))
            found = next(((slot, frame) for slot, frame in frames if slot >= first), None)
            last_try = back == KEYFRAMES_BACK_ON_A_MISS or (
                index.seek_point(first, back) == index.seek_point(first, back + 1)
            )
            if found is not None and (found[0] == first or last_try):
                yield found
                for item in frames:  # noqa: UP028 (see the docstring)
                    yield item
                return
            if last_try:
                return

    def _decode_run(self, wanted: list[int], first: int, out: np.ndarray) -> int:
        """Decode forward from one position, filling ``out[first:]`` until the next wanted
        frame is better reached by a new seek (``_worth_seeking``) or all are done. Returns the
        number of wanted frames filled so far."""
        filled = first
        for slot, frame in self._frames_reaching(wanted[first]):
            if slot < wanted[filled]:
                continue
            if slot > wanted[filled]:
                break
            out[filled] = self._to_rgb(frame)
            filled += 1
            if filled == len(wanted):
                return filled
            if self._worth_seeking(slot, wanted[filled]):
                return filled
        missing = wanted[filled]
        raise VideoOpenError(
            f"{self.path}: frame {missing} of {self.num_frames} could not be decoded "
            "(corrupt or truncated data)"
        )

    def iter_frames(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(index, seconds, HxWx3 uint8 RGB)`` for frames ``start..stop-1``, decoding
        forward once; memory stays bounded however long the video. Where a packet fails to
        decode (a damaged recording), the frames up to the next keyframe are skipped (logged)
        and the iteration goes on from there, as a player does: one bad packet does not end a
        two-hour recording."""
        stop = self.check_start(start, stop)
        timestamps = self._index.timestamps
        first = start
        while first < stop:
            last = first - 1
            for slot, frame in self._frames_reaching(first):
                if slot < first:
                    continue
                if slot >= stop:
                    return
                last = slot
                yield slot, float(timestamps[slot]), self._to_rgb(frame)
            if last >= stop - 1:
                return
            later_keys = self._index.key_slot[self._index.key_slot > last + 1]
            first = int(later_keys.min()) if later_keys.size else stop
            log.warning(
                "%s: frames %d..%d could not be decoded", self.path, last + 1, min(first, stop) - 1
            )

    def close(self) -> None:
        if self._decoding is not None:
            self._decoding.close()
        self._container.close()


def _float(value: Any) -> float | None:
    return float(value) if value else None
