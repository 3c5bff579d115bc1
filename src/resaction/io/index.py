"""The frame index of a video: each frame's timestamp in presentation order and where to seek.

An index is built once per file by demuxing packets, without decoding them, except the first
frame (for its size, pixel format and display rotation; the first 48 frames for AVI and raw
streams with B-frames, see below) and, only for a file that looks truncated, its last group of
pictures. Frame ``i`` is the ``i``-th frame in presentation order.

Two ways to tell which frame a decoded picture is:

* by pts (MP4, MKV, WebM, ...): the container stores presentation timestamps, so frame order is the
  packets sorted by pts (B-frames) and a decoded frame is matched to the index by its pts.
* by count: containers that store no pts (AVI and raw streams) make FFmpeg guess them. With
  B-frames the guesses are checked against the order of the first decoded frames; where they are
  wrong (DivX/Xvid packed B-frames), frames are identified by counting decoder output from a
  keyframe whose frame number is known. Timestamps come from dts, which those containers do
  store. The first keyframe is frame 0; the frame number of a later keyframe is learnt the first
  time decoding passes it, so seeks only ever start at keyframes whose frame number is certain
  (the first far request in such a file decodes from its start).

Indexes are cached in memory, keyed on (path, size, mtime), so datasets that reopen a file every
step demux it only once per process.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from resaction.errors import VideoOpenError
from resaction.io.container import av_reason
from resaction.io.geometry import normalise_rotation

log = logging.getLogger(__name__)

# Demuxers whose pts FFmpeg guesses rather than reads (dts are reliable there).
_GUESSED_PTS_FORMATS = frozenset(
    {"avi", "h264", "hevc", "m4v", "mpegvideo", "rawvideo", "cavsvideo", "vc1", "h263"}
)
INDEX_CACHE_SIZE = 512
# Frames decoded while indexing a file with guessed pts, to see whether the guesses hold.
PTS_PROBE_FRAMES = 48


@dataclass
class VideoIndex:
    """Frame timestamps and seek points of one video stream.

    Timestamps are integers in ``time_base``. ``packet_ts`` names each kept packet in decode order
    (its pts when matching by pts, else its dts); ``frame_ts`` lists the frames in presentation
    order. ``key_slot[k]`` is the frame number of keyframe ``k`` (at packet ``key_pos[k]``), or -1
    while it is unknown (count mode only). ``guessed_order`` marks B-frame streams whose
    container stores no pts.
    """

    path: str
    codec: str
    pix_fmt: str
    coded_width: int
    coded_height: int
    rotation: int
    time_base: Fraction
    average_rate: Fraction | None
    by_pts: bool
    seekable: bool
    guessed_order: bool
    packet_ts: np.ndarray
    frame_ts: np.ndarray
    key_pos: np.ndarray
    key_seek_ts: np.ndarray
    key_slot: np.ndarray
    truncated: bool = False

    @property
    def num_frames(self) -> int:
        return len(self.frame_ts)

    @cached_property
    def timestamps(self) -> np.ndarray:
        """Seconds from the first frame, one per frame (float64)."""
        if not self.num_frames:
            return np.zeros(0, dtype=np.float64)
        offsets = (self.frame_ts - self.frame_ts[0]).astype(np.float64)
        return offsets * float(self.time_base)

    @cached_property
    def packet_pos(self) -> dict[int, int]:
        """Decode-order position of each packet, by its ``packet_ts``."""
        return {int(ts): pos for pos, ts in enumerate(self.packet_ts)}

    @cached_property
    def key_of_pos(self) -> dict[int, int]:
        """Keyframe number (index into ``key_pos``) of each keyframe packet position."""
        return {int(pos): k for k, pos in enumerate(self.key_pos)}

    @cached_property
    def frame_slot(self) -> dict[int, int]:
        """Frame number of each presentation timestamp (pts mode)."""
        return {int(ts): slot for slot, ts in enumerate(self.frame_ts)}

    def seek_point(self, frame: int) -> int:
        """The keyframe (index into ``key_pos``) to decode from to reach ``frame``: the last one
        at or before it whose frame number is known."""
        known = np.flatnonzero(self.key_slot >= 0)
        slots = self.key_slot[known]
        at = int(np.searchsorted(slots, frame, side="right")) - 1
        return int(known[max(at, 0)])

    def learn_keyframe(self, key: int, frame: int) -> None:
        """Record the frame number of keyframe ``key``, found by counting decoded frames."""
        if self.key_slot[key] < 0:
            self.key_slot[key] = frame


@dataclass
class _Packets:
    pts: list[int | None]
    dts: list[int | None]
    key: list[bool]
    truncated: bool = False


def _decode(codec, packet) -> list[VideoFrame]:
    try:
        return codec.decode(packet)
    except av.FFmpegError:
        return []


def _read_packets(
    container: InputContainer, stream: VideoStream, path: Path
) -> tuple[_Packets, VideoFrame]:
    """Demux every packet of the stream, decoding only until the first frame comes out.

    Returns the kept packets (complete, not discarded, non-empty) and the first decoded frame.
    """
    packets = _Packets([], [], [])
    codec = stream.codec_context
    first: list[VideoFrame] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_corrupt:
                packets.truncated = True
                continue
            if packet.is_discard:
                continue
            packets.pts.append(packet.pts)
            packets.dts.append(packet.dts)
            packets.key.append(bool(packet.is_keyframe))
            if not first:
                first = _decode(codec, packet)
    except av.FFmpegError as error:
        log.info("%s: demuxing stopped early (%s)", path, av_reason(error))
        packets.truncated = True
    if not first and packets.pts:
        first = _decode(codec, None)
    if not first:
        reason = "no frames" if not packets.pts else "no frame could be decoded (corrupt data?)"
        raise VideoOpenError(f"{path}: {reason} in its {codec.name} video stream")
    return packets, first[0]


def _first_decoded_pts(path: Path, count: int) -> list[int | None]:
    """The pts of the first ``count`` frames a fresh decoder puts out, in its output order."""
    seen: list[int | None] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams.video[0]):
                seen.append(frame.pts)
                if len(seen) == count:
                    break
    except av.FFmpegError:
        pass
    return seen


def _strictly_increasing(values: list[int | None]) -> bool:
    if any(v is None for v in values):
        return False
    return all(b > a for a, b in itertools.pairwise(values))


def _guesses_pts(format_name: str) -> bool:
    return any(name in _GUESSED_PTS_FORMATS for name in format_name.split(","))


def _identify_by_pts(packets: _Packets, guessed: bool, path: Path) -> bool:
    """Whether decoded frames can be matched to the index by pts.

    Guessed pts are trusted when they need no reordering, or when the first decoded frames come
    out in the order the guesses give (not so with DivX packed B-frames).
    """
    pts = packets.pts
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return False
    if not guessed or _strictly_increasing(pts):
        return True
    seen = _first_decoded_pts(path, PTS_PROBE_FRAMES)
    return len(seen) > 1 and _strictly_increasing(seen) and seen == sorted(pts)[: len(seen)]


def _index_from_packets(packets: _Packets, base: dict, guessed: bool) -> VideoIndex:
    """Order the packets into frames and pick the seek points.

    Packets before the first keyframe stay in ``packet_ts`` (so packet positions count every
    packet) but are not frames: they cannot be decoded.
    """
    is_key = np.asarray(packets.key, dtype=bool)
    if not is_key.any():
        is_key[0] = True
    key_pos = np.flatnonzero(is_key)
    first_key = int(key_pos[0])
    by_pts = _identify_by_pts(packets, guessed, Path(base["path"]))
    if by_pts:
        packet_ts = np.asarray(packets.pts, dtype=np.int64)
        frame_ts = np.sort(packet_ts[first_key:], kind="stable")
        key_slot = np.searchsorted(frame_ts, packet_ts[key_pos]).astype(np.int64)
        key_dts = [packets.pts[p] if packets.dts[p] is None else packets.dts[p] for p in key_pos]
        key_seek_ts = np.minimum(packet_ts[key_pos], np.asarray(key_dts, dtype=np.int64))
        seekable = True
    else:
        seekable = _strictly_increasing(packets.dts)
        if seekable:
            packet_ts = np.asarray(packets.dts, dtype=np.int64)
        else:
            packet_ts = np.arange(len(packets.dts), dtype=np.int64)
        frame_ts = packet_ts[first_key:].copy()
        key_slot = np.full(len(key_pos), -1, dtype=np.int64)
        key_slot[0] = 0
        key_seek_ts = packet_ts[key_pos]
    return VideoIndex(
        **base,
        by_pts=by_pts,
        seekable=seekable,
        guessed_order=guessed and not _strictly_increasing(packets.pts),
        packet_ts=packet_ts,
        frame_ts=frame_ts,
        key_pos=key_pos,
        key_seek_ts=key_seek_ts,
        key_slot=key_slot,
        truncated=packets.truncated,
    )


def _header_claims_more(container: InputContainer, stream: VideoStream, index: VideoIndex) -> bool:
    """Whether the container header promises clearly more video than the packets hold."""
    if stream.frames and stream.frames > index.num_frames + 1:
        return True
    if index.num_frames < 2:
        return False
    if stream.duration:
        claimed = float(stream.duration * index.time_base)
    elif container.duration:
        claimed = container.duration / av.time_base
    else:
        return False
    span = float(index.timestamps[-1])
    return claimed > 1.1 * span + 3 * span / (index.num_frames - 1)


def _drop_undecodable_tail(
    container: InputContainer, stream: VideoStream, index: VideoIndex
) -> VideoIndex:
    """Decode the last group of pictures and drop the frames of it that do not decode."""
    from resaction.io.decoding import decode_from

    key = index.seek_point(index.num_frames - 1)
    start = int(index.key_slot[key])
    decoded: list[int] = []
    last_is_b = False
    for slot, frame in decode_from(container, stream, index, key):
        decoded.append(slot)
        last_is_b = frame.pict_type == PictureType.B
    if index.guessed_order and decoded and not last_is_b:
        # At the cut the decoder releases the last reference picture; B-pictures shown before
        # it may be missing, and without stored pts its place (guessed or counted) is unsure.
        decoded.pop()
    first_key = int(index.key_pos[0])
    if index.by_pts:
        found = set(decoded)
        lost = {int(index.frame_ts[s]) for s in range(start, index.num_frames) if s not in found}
        keep_packet = np.array([int(ts) not in lost for ts in index.packet_ts], dtype=bool)
        keep_packet[:first_key] = True
    else:
        count = len([s for s in decoded if s >= start])
        keep_packet = np.arange(len(index.packet_ts)) < first_key + start + count
    if keep_packet.all():
        return index
    if not keep_packet[index.key_pos].any():
        raise VideoOpenError(f"{index.path}: no decodable frames")
    log.info("%s: %d frame(s) at the end do not decode", index.path, int((~keep_packet).sum()))
    return _reindex(index, keep_packet)


def _reindex(index: VideoIndex, keep_packet: np.ndarray) -> VideoIndex:
    """The index without the packets where ``keep_packet`` is False (a truncated tail)."""
    packet_ts = index.packet_ts[keep_packet]
    new_pos = np.cumsum(keep_packet) - 1
    kept_keys = keep_packet[index.key_pos]
    key_pos = new_pos[index.key_pos[kept_keys]]
    if index.by_pts:
        frame_ts = np.sort(packet_ts[key_pos[0] :], kind="stable")
        key_slot = np.searchsorted(frame_ts, packet_ts[key_pos]).astype(np.int64)
    else:
        frame_ts = packet_ts[key_pos[0] :].copy()
        key_slot = index.key_slot[kept_keys].copy()
    return replace(
        index,
        packet_ts=packet_ts,
        frame_ts=frame_ts,
        key_pos=key_pos,
        key_seek_ts=index.key_seek_ts[kept_keys],
        key_slot=key_slot,
        truncated=True,
    )


def _display_rotation(stream: VideoStream, first: VideoFrame) -> int:
    """Counter-clockwise display rotation: the display matrix FFmpeg attaches to decoded frames,
    else the legacy ``rotate`` tag (clockwise degrees, still written into some MKV files)."""
    if first.rotation:
        return normalise_rotation(first.rotation)
    tags = {key.lower(): value for key, value in stream.metadata.items()}
    try:
        return normalise_rotation(-float(tags.get("rotate", 0)))
    except ValueError:
        return 0


def build_index(container: InputContainer, stream: VideoStream, path: Path) -> VideoIndex:
    """Index an opened video stream (see the module docstring)."""
    guessed = _guesses_pts(container.format.name)
    packets, first = _read_packets(container, stream, path)
    codec = stream.codec_context
    base = {
        "path": str(path),
        "codec": codec.name,
        "pix_fmt": first.format.name,
        "coded_width": int(first.width),
        "coded_height": int(first.height),
        "rotation": _display_rotation(stream, first),
        "time_base": Fraction(stream.time_base) if stream.time_base else Fraction(1, 1),
        "average_rate": Fraction(stream.average_rate) if stream.average_rate else None,
    }
    index = _index_from_packets(packets, base, guessed)
    if index.truncated or _header_claims_more(container, stream, index):
        index = _drop_undecodable_tail(container, stream, index)
    if not index.num_frames:
        raise VideoOpenError(f"{path}: no decodable frames")
    return index


_CACHE: OrderedDict[tuple[str, int, int], VideoIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def cached_index(container: InputContainer, stream: VideoStream, path: Path) -> VideoIndex:
    """The index of ``path``, from the process-wide LRU cache or built with ``container``."""
    key = _cache_key(path)
    with _CACHE_LOCK:
        index = _CACHE.get(key)
        if index is not None:
            _CACHE.move_to_end(key)
            return index
    index = build_index(container, stream, path)
    with _CACHE_LOCK:
        _CACHE[key] = index
        while len(_CACHE) > INDEX_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index


def clear_index_cache() -> None:
    """Forget every cached index (benchmarks use it to time cold opens)."""
    with _CACHE_LOCK:
        _CACHE.clear()
