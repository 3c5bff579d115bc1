"""The frame index of a video: each frame's timestamp in presentation order and where to seek.

An index is built once per file (``index_build``) by demuxing packets, without decoding them,
except the first frame (for its size, pixel format and display rotation). Frame ``i`` is the
``i``-th picture a plain decode from the start puts out.

Two ways to tell which frame a decoded picture is:

* by pts (MP4, MKV, WebM, MPEG-TS, ...): the container stores presentation timestamps, so frame
  order is the packets sorted by pts, and a decoded picture is matched to the index by its pts.
  Leading pictures of an open GOP at the very start (a recording cut mid-stream) cannot be decoded
  and are not frames.
* by packet (AVI and raw streams, where FFmpeg guesses pts): the guesses are only trusted for
  codecs that never reorder pictures, or when decoding confirms them (MPEG-4 Part 2, whose parser
  reads real times). Otherwise (H.264 and HEVC in AVI, whose guessed pts are decode order; DivX
  packed B-frames; "drop frame" packets that hold no picture) the whole stream is decoded once,
  and each picture is named by the packet it came from: exact by construction, at the cost of one
  decode per file and process.

Either way, where timestamps after a seek cannot be trusted (MPEG program streams) or there are
none to seek by, a read demuxes from the start of the file (``seekable`` is False); it still
decodes only from the keyframe before the first wanted frame.

Indexes are cached in memory, keyed on (path, size, mtime), so datasets that reopen a file every
step build it only once per process.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from resaction.errors import VideoOpenError
from resaction.io.container import av_reason, ffmpeg_path
from resaction.io.geometry import normalise_rotation

log = logging.getLogger(__name__)

# Demuxers whose pts FFmpeg guesses rather than reads (dts are reliable there). ASF stores pts,
# but with H.264 the first packets read after a seek to the start get others (a frame later, or
# none), so they are trusted no more than guesses.
_GUESSED_PTS_FORMATS = frozenset(
    {"avi", "asf", "h264", "hevc", "m4v", "mpegvideo", "rawvideo", "cavsvideo", "vc1", "h263"}
)
# Demuxers whose timestamps after a seek differ from those read from the start. An MPEG program
# stream (.mpg, .vob, camcorders' .mod/.tod) stamps only the picture that starts a PES packet and
# FFmpeg guesses the others; a seek resumes mid-packet, and every guess after it shifts (by 1.5
# frames in a generated MPEG-2 file, for the rest of the stream). From the start they repeat
# exactly, so reads there demux from the start, decoding only from the keyframe they need.
_SHIFTED_AFTER_SEEK_FORMATS = frozenset({"mpeg"})
# Codecs whose parser leaves guessed pts in decode order, however the pictures are reordered.
_DECODE_ORDER_PTS_CODECS = frozenset({"h264", "hevc"})
# Frames decoded while indexing a file with guessed pts, to see whether the guesses hold.
PTS_PROBE_FRAMES = 48


@dataclass
class VideoIndex:
    """Frame timestamps and seek points of one video stream.

    Timestamps are integers in ``time_base``. ``packet_ts`` names each kept packet in decode order
    (its pts when matching by pts, else its dts, or its position where dts are unusable);
    ``frame_ts`` lists the frames in presentation order. ``key_slot[k]`` is the frame number of
    keyframe ``k`` (at packet ``key_pos[k]``), -1 where it is not a frame. Matching by packet,
    ``pos_slot[p]`` is the frame number of the picture packet ``p`` puts out (-1: none).
    ``guessed_order`` marks B-frame streams whose container stores no pts; ``packet_times`` is
    False where ``packet_ts`` are positions because the dts were unusable; ``keys_decoded`` that
    the keyframes were found by decoding, the container's flags being doubtful.
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
    pos_slot: np.ndarray | None = None
    truncated: bool = False
    packet_times: bool = True
    keys_decoded: bool = False

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
    def reorders(self) -> bool:
        """Whether pictures are shown in another order than decoded (B-frames)."""
        order = self.packet_ts if self.by_pts else self.pos_slot[self.pos_slot >= 0]
        return bool(np.any(np.diff(order) < 0))

    @cached_property
    def packet_pos(self) -> dict[int, int]:
        """Decode-order position of each packet, by its ``packet_ts``."""
        return {int(ts): pos for pos, ts in enumerate(self.packet_ts)}

    @cached_property
    def frame_slot(self) -> dict[int, int]:
        """Frame number of each presentation timestamp (pts mode)."""
        return {int(ts): slot for slot, ts in enumerate(self.frame_ts)}

    @cached_property
    def first_packet_from(self) -> list[int]:
        """``first_packet_from[f]``: the first packet (decode-order position) that puts out a
        picture numbered ``f`` or later; the packet count past the last frame. The packets
        before it put out only earlier pictures, so on the way to frame ``f`` the pictures they
        hold that no other picture refers to need not be decoded. (Skipping only before that
        packet, never between it and frame ``f``, keeps every B-picture run that holds a wanted
        frame whole: in DivX packed AVIs a B-picture is lost when the one before it in its run
        was skipped.)"""
        if self.by_pts:
            slots = np.array([self.frame_slot.get(int(ts), -1) for ts in self.packet_ts])
        else:
            slots = self.pos_slot
        first = np.full(self.num_frames + 1, len(self.packet_ts), dtype=np.int64)
        named = np.flatnonzero(slots >= 0)
        np.minimum.at(first, slots[named], named)
        return np.minimum.accumulate(first[::-1])[::-1].tolist()

    @cached_property
    def _seek_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """The keyframes that are frames, and their frame numbers."""
        known = np.flatnonzero(self.key_slot >= 0)
        return known, self.key_slot[known]

    def seek_point(self, frame: int, back: int = 0) -> int:
        """The keyframe (index into ``key_pos``) to decode from to reach ``frame``: the last one
        at or before it that is a frame, or the one ``back`` such keyframes before that."""
        known, slots = self._seek_keys
        at = int(np.searchsorted(slots, frame, side="right")) - 1
        return int(known[max(at - back, 0)])


@dataclass
class _Packets:
    pts: list[int | None]
    dts: list[int | None]
    key: list[bool]
    truncated: bool = False


def decode_packet(codec, packet) -> list[VideoFrame]:
    """The pictures ``packet`` completes (``None`` flushes), none if it does not decode."""
    try:
        return codec.decode(packet)
    except av.FFmpegError:
        return []


def read_packets(
    container: InputContainer, stream: VideoStream, path: Path
) -> tuple[_Packets, VideoFrame]:
    """Demux every packet of the stream, decoding only until the first frame comes out.

    Returns the kept packets (non-empty, and not the incomplete packets of a cut end) and the
    first decoded frame. Packets flagged corrupt elsewhere are kept, as a plain decode keeps
    them: MPEG-TS flags a packet after a continuity-counter jump, which files joined with ``cat``
    have at every join although nothing is lost. So are packets flagged to be discarded (before
    the start of an MP4 edit list): the decoder needs them and shows nothing of them.
    """
    packets = _Packets([], [], [])
    codec = stream.codec_context
    first: list[VideoFrame] = []
    corrupt_tail = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            corrupt_tail = corrupt_tail + 1 if packet.is_corrupt else 0
            packets.pts.append(packet.pts)
            packets.dts.append(packet.dts)
            packets.key.append(bool(packet.is_keyframe))
            if not first:
                first = decode_packet(codec, packet)
    except av.FFmpegError as error:
        log.info("%s: demuxing stopped early (%s)", path, av_reason(error))
        packets.truncated = True
    if corrupt_tail:
        for kept in (packets.pts, packets.dts, packets.key):
            del kept[len(kept) - corrupt_tail :]
        packets.truncated = True
    if not first and packets.pts:
        first = decode_packet(codec, None)
    if not first:
        reason = "no frames" if not packets.pts else "no frame could be decoded (corrupt data?)"
        raise VideoOpenError(f"{path}: {reason} in its {codec.name} video stream")
    return packets, first[0]


def _first_decoded_pts(path: Path, count: int) -> list[int | None]:
    """The pts of the first ``count`` frames a fresh decoder puts out, in its output order."""
    seen: list[int | None] = []
    try:
        with av.open(ffmpeg_path(path)) as container:
            for frame in container.decode(container.streams.best("video")):
                seen.append(frame.pts)
                if len(seen) == count:
                    break
    except av.FFmpegError:
        pass
    return seen


def strictly_increasing(values: list[int | None]) -> bool:
    if any(v is None for v in values):
        return False
    return all(b > a for a, b in itertools.pairwise(values))


def guesses_pts(format_name: str) -> bool:
    return any(name in _GUESSED_PTS_FORMATS for name in format_name.split(","))


def pts_in_decode_order(packets: _Packets, decoder: VideoCodecContext) -> bool:
    """Whether stored pts rise in decode order although the decoder reorders pictures: the muxer
    wrote decode times as pts (an MP4 without ``ctts``, an FLV without composition times, an MKV
    remuxed from one, H.264 in MXF as FFmpeg writes it), so they say nothing of the display
    order and are treated as guesses. (With pictures reordered, true pts go back somewhere.)"""
    return bool(decoder.has_b_frames) and strictly_increasing(packets.pts)


def seeks_exactly(format_name: str) -> bool:
    """Whether packets after a seek carry the timestamps a read from the start gives them."""
    return not any(name in _SHIFTED_AFTER_SEEK_FORMATS for name in format_name.split(","))


def identify_by_pts(packets: _Packets, guessed: bool, path: Path, codec: av.Codec) -> bool:
    """Whether decoded frames can be matched to the index by pts.

    Stored pts are trusted unless the decode times go back somewhere (recordings joined end to
    end). Guessed ones are trusted when the codec never reorders pictures, and otherwise only
    when the first decoded frames come out in the order the guesses give (not so with DivX packed
    B-frames); never for H.264 and HEVC, whose parsers leave them in decode order (a stream may
    start without B-frames and use them later).
    """
    pts = packets.pts
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return False
    dts = [d for d in packets.dts if d is not None]
    if any(b < a for a, b in itertools.pairwise(dts)):
        return False
    if not guessed or not codec.reorder:
        return True
    if codec.name in _DECODE_ORDER_PTS_CODECS:
        return False
    seen = _first_decoded_pts(path, PTS_PROBE_FRAMES)
    return len(seen) > 1 and strictly_increasing(seen) and seen == sorted(pts)[: len(seen)]


def index_from_packets(
    packets: _Packets, base: dict, guessed: bool, by_pts: bool, first_pts: int | None
) -> VideoIndex:
    """Order the packets into frames and pick the seek points.

    Packets before the first keyframe stay in ``packet_ts`` (so packet positions count every
    packet) but are not frames: they cannot be decoded, nor can pictures shown before that
    keyframe (they refer to pictures before the start; an MPEG-4 Part 2 decoder shows them
    anyway, over grey) or before the first decoded one (``first_pts``: leading pictures of an
    open GOP). Matching by packet, frames and keyframe numbers are provisional until the
    decode-order scan.
    """
    is_key = np.asarray(packets.key, dtype=bool)
    if not is_key.any():
        is_key[0] = True
    key_pos = np.flatnonzero(is_key)
    first_key = int(key_pos[0])
    if by_pts:
        packet_ts = np.asarray(packets.pts, dtype=np.int64)
        frame_ts = np.sort(packet_ts[first_key:], kind="stable")
        if first_key:
            frame_ts = frame_ts[frame_ts >= packet_ts[first_key]]
        if first_pts is not None and first_pts in frame_ts:
            frame_ts = frame_ts[frame_ts >= first_pts]
        key_slot = _key_slots(frame_ts, packet_ts[key_pos])
        key_dts = [packets.pts[p] if packets.dts[p] is None else packets.dts[p] for p in key_pos]
        key_seek_ts = np.minimum(packet_ts[key_pos], np.asarray(key_dts, dtype=np.int64))
        seekable = True
    else:
        seekable = strictly_increasing(packets.dts)
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
        guessed_order=guessed and not strictly_increasing(packets.pts),
        packet_times=by_pts or seekable,
        packet_ts=packet_ts,
        frame_ts=frame_ts,
        key_pos=key_pos,
        key_seek_ts=key_seek_ts,
        key_slot=key_slot,
        truncated=packets.truncated,
    )


def _key_slots(frame_ts: np.ndarray, key_ts: np.ndarray) -> np.ndarray:
    """Frame numbers of keyframes matched by pts: where decoding from each reaches first.

    A keyframe shown before the first frame is not a frame (-1). Where the first frame is not a
    keyframe itself, the last keyframe before it is where the first frames decode from (0): an
    MP4 trimmed without re-encoding starts its edit list after a keyframe, whose packets the
    demuxer marks to be decoded but not shown. (Where the first frame is a keyframe, the ones
    before it did not decode: a damaged start.)
    """
    key_slot = np.searchsorted(frame_ts, key_ts).astype(np.int64)
    before = np.flatnonzero(key_ts < frame_ts[0])
    key_slot[before] = -1
    if before.size and frame_ts[0] not in key_ts:
        key_slot[before[-1]] = 0
    return key_slot


def numbered_by_packet(
    index: VideoIndex, positions: list[int], pts: list[int | None], complete: bool
) -> VideoIndex:
    """The index of a stream matched by packet, from a full decode: ``positions[i]`` is the packet
    that put out frame ``i``, ``pts[i]`` that picture's pts."""
    count = len(positions)
    if len(set(positions)) != count:
        raise VideoOpenError(
            f"{index.path}: a packet holds more than one picture; its frames cannot be numbered"
        )
    pos_slot = np.full(len(index.packet_ts), -1, dtype=np.int64)
    pos_slot[positions] = np.arange(count)
    return replace(
        index,
        frame_ts=_presentation_times(index, positions, pts),
        key_slot=pos_slot[index.key_pos],
        pos_slot=pos_slot,
        truncated=index.truncated or not complete,
    )


def _presentation_times(
    index: VideoIndex, positions: list[int], pts: list[int | None]
) -> np.ndarray:
    """Times of frames numbered by packet: the pictures' own pts where they are distinct (in
    presentation order; gaps where a packet held no picture), else their packets' dts, else
    (some pictures without pts, as H.264 in an MPEG program stream) evenly spaced at the
    stream's average rate from the first picture that has one."""
    candidates = [pts]
    if index.packet_times:
        candidates.append([int(index.packet_ts[p]) for p in positions])
    for times in candidates:
        if not any(t is None for t in times) and len(set(times)) == len(times):
            return np.sort(np.asarray(times, dtype=np.int64))
    step = 1
    if index.average_rate:
        step = max(1, round(1 / (index.average_rate * index.time_base)))
    known = next(((i, t) for i, t in enumerate(pts) if t is not None), (0, 0))
    return known[1] + (np.arange(len(positions), dtype=np.int64) - known[0]) * step


def _frames_packets_span(container: InputContainer, index: VideoIndex) -> int:
    """How many frames a container header counts for the packets read: one a packet, but in AVI
    one a chunk, and a recorder that drops a frame writes an empty chunk, which the header counts
    and the demuxer passes over (its time stays in the next packets' timestamps)."""
    count = len(index.packet_ts)
    if count and index.packet_times and "avi" in container.format.name.split(","):
        return max(count, int(index.packet_ts.max()) + 1)
    return count


def header_counts_more(container: InputContainer, stream: VideoStream, index: VideoIndex) -> bool:
    """Whether the container header counts clearly more frames than the packets hold."""
    return bool(stream.frames) and stream.frames > _frames_packets_span(container, index) + 1


def header_claims_more(container: InputContainer, stream: VideoStream, index: VideoIndex) -> bool:
    """Whether the container header promises clearly more video than the packets hold."""
    if header_counts_more(container, stream, index):
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


def without_packets(index: VideoIndex, keep_packet: np.ndarray) -> VideoIndex:
    """The pts-matched index without the packets where ``keep_packet`` is False (a truncated
    tail)."""
    packet_ts = index.packet_ts[keep_packet]
    new_pos = np.cumsum(keep_packet) - 1
    kept_keys = keep_packet[index.key_pos]
    key_pos = new_pos[index.key_pos[kept_keys]]
    frame_ts = index.frame_ts[np.isin(index.frame_ts, packet_ts)]
    key_slot = _key_slots(frame_ts, packet_ts[key_pos])
    return replace(
        index,
        packet_ts=packet_ts,
        frame_ts=frame_ts,
        key_pos=key_pos,
        key_seek_ts=index.key_seek_ts[kept_keys],
        key_slot=key_slot,
        truncated=True,
    )


def display_rotation(stream: VideoStream, first: VideoFrame) -> int:
    """Counter-clockwise display rotation: the display matrix FFmpeg attaches to decoded frames,
    else the legacy ``rotate`` tag (clockwise degrees, still written into some MKV files)."""
    if first.rotation:
        return normalise_rotation(first.rotation)
    tags = {key.lower(): value for key, value in stream.metadata.items()}
    try:
        return normalise_rotation(-float(tags.get("rotate", 0)))
    except ValueError:
        return 0
