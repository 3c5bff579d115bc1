"""Build a video's frame index (see ``index``), and keep built indexes in a process-wide cache."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import PictureType
from av.video.stream import VideoStream

from resaction.errors import VideoOpenError
from resaction.io.container import av_reason, open_container
from resaction.io.decoding import ForwardDecode, decode, packet_position, packets_from_key
from resaction.io.index import (
    VideoIndex,
    decode_packet,
    display_rotation,
    guesses_pts,
    header_claims_more,
    header_counts_more,
    identify_by_pts,
    index_from_packets,
    numbered_by_packet,
    pts_in_decode_order,
    read_packets,
    seeks_exactly,
    without_packets,
)

log = logging.getLogger(__name__)

INDEX_CACHE_SIZE = 512


def build_index(container: InputContainer, stream: VideoStream, path: Path) -> VideoIndex:
    """Index an opened video stream (see ``index``'s module docstring)."""
    packets, first = read_packets(container, stream, path)
    codec = stream.codec_context
    base = {
        "path": str(path),
        "codec": codec.name,
        "pix_fmt": first.format.name,
        "coded_width": int(first.width),
        "coded_height": int(first.height),
        "rotation": display_rotation(stream, first),
        "time_base": Fraction(stream.time_base) if stream.time_base else Fraction(1, 1),
        "average_rate": Fraction(stream.average_rate) if stream.average_rate else None,
    }
    keys_decoded = keyframe_flags_doubtful(packets.key, codec.codec)
    if keys_decoded:
        packets = replace(packets, key=_decoded_keyframes(path, stream, len(packets.key)))
    guessed = guesses_pts(container.format.name) or pts_in_decode_order(packets, codec)
    by_pts = identify_by_pts(packets, guessed, path, codec.codec)
    index = index_from_packets(packets, base, guessed, by_pts, first.pts)
    index = replace(index, keys_decoded=keys_decoded)
    if not seeks_exactly(container.format.name):
        index = replace(index, seekable=False)
    if not by_pts:
        index = _number_by_decoding(container, stream, index)
    elif index.truncated or header_claims_more(container, stream, index):
        index = _drop_undecodable_tail(container, stream, index)
    if not index.num_frames:
        raise VideoOpenError(f"{path}: no decodable frames")
    return index


def keyframe_flags_doubtful(flags: list[bool], codec: av.Codec) -> bool:
    """Whether a container's keyframe flags must be checked by decoding: more than half the
    packets of a codec whose pictures may refer to others are flagged. Some files flag every
    packet (H.263 in AVI as FFmpeg writes it; an MP4 or MOV without a sync-sample table, which
    says every sample is one; remuxes by some DVRs), and a seek to a picture that is not a
    keyframe decodes a wrong picture or none."""
    return not codec.intra_only and len(flags) > 2 and 2 * sum(flags) > len(flags)


def _decoded_keyframes(path: Path, stream: VideoStream, count: int) -> list[bool]:
    """Which of the first ``count`` kept packets (as ``read_packets`` keeps them) hold a picture
    that the decoder calls a keyframe, by one decode of the stream from its start."""
    keys = [False] * count

    def mark(frames: list) -> None:
        for frame in frames:
            tag = packet_position(frame)
            if tag is not None and frame.key_frame:
                keys[tag] = True

    container, fresh = open_container(path, stream.codec_context.thread_count)
    with container:
        position = 0
        try:
            for packet in container.demux(fresh):
                if packet.size == 0:
                    continue
                if position == count:
                    break
                packet.opaque = (position,)
                position += 1
                mark(decode_packet(fresh.codec_context, packet))
        except av.FFmpegError:
            pass  # the demuxing stops where ``read_packets`` stopped it: a cut file
        mark(decode_packet(fresh.codec_context, None))
    log.info(
        "%s: most packets are flagged keyframes; %d of %d decode as ones", path, sum(keys), count
    )
    return keys


def _number_by_decoding(
    container: InputContainer, stream: VideoStream, index: VideoIndex
) -> VideoIndex:
    """Decode the whole stream once and name each picture by the packet it came from.

    Numbering starts at the first keyframe's picture; a packet that fails to decode ends the
    stream (the pictures after it until the next keyframe would be damaged).
    """
    codec = stream.codec_context
    first_key = int(index.key_pos[0])
    positions: list[int] = []
    pts: list[int | None] = []
    complete = True
    last_is_b = False
    for packet in packets_from_key(container, stream, index, 0):
        try:
            frames = decode(codec, packet)
        except av.FFmpegError as error:
            log.info(
                "%s: decoding stopped at frame %d (%s)", index.path, len(pts), av_reason(error)
            )
            complete = False
            break
        for frame in frames:
            position = packet_position(frame)
            if position is None or (not positions and position != first_key):
                continue
            positions.append(position)
            pts.append(frame.pts)
            last_is_b = frame.pict_type == PictureType.B
    if not positions:
        raise VideoOpenError(f"{index.path}: no decodable frames")
    numbered = numbered_by_packet(index, positions, pts, complete)
    if (
        (numbered.truncated or header_counts_more(container, stream, index))
        and codec.codec.reorder
        and not last_is_b
        and len(positions) > 1
    ):
        numbered = numbered_by_packet(index, positions[:-1], pts[:-1], complete=False)
        log.info("%s: the last picture before the cut is dropped (its place is unsure)", index.path)
    return numbered


def _drop_undecodable_tail(
    container: InputContainer, stream: VideoStream, index: VideoIndex
) -> VideoIndex:
    """Decode the last group of pictures of a pts-matched index and drop the frames of it that
    do not decode. Decoding starts a keyframe earlier: after a seek to a recovery point of H.264
    with periodic intra refresh, the decoder shows nothing until the refresh completes, and those
    pictures would be taken for lost."""
    start = int(index.key_slot[index.seek_point(index.num_frames - 1)])
    key = index.seek_point(index.num_frames - 1, back=1)
    decoded: list[int] = []
    last_is_b = False
    for slot, frame in ForwardDecode(container, stream, index, key):
        decoded.append(slot)
        last_is_b = frame.pict_type == PictureType.B
    if index.guessed_order and decoded and not last_is_b:
        # At the cut the decoder releases the last reference picture; B-pictures shown before
        # it may be missing, and without stored pts its guessed place is unsure.
        decoded.pop()
    found = set(decoded)
    lost = {int(index.frame_ts[s]) for s in range(start, index.num_frames) if s not in found}
    keep_packet = np.array([int(ts) not in lost for ts in index.packet_ts], dtype=bool)
    keep_packet[: int(index.key_pos[0])] = True
    if keep_packet.all():
        return index
    if not keep_packet[index.key_pos].any():
        raise VideoOpenError(f"{index.path}: no decodable frames")
    log.info("%s: %d frame(s) at the end do not decode", index.path, int((~keep_packet).sum()))
    return without_packets(index, keep_packet)


_CACHE: OrderedDict[tuple[str, int, int], VideoIndex] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def index_in_cache(path: Path) -> VideoIndex | None:
    """The index of ``path`` if it was built before (and the file has not changed since)."""
    key = _cache_key(path)
    with _CACHE_LOCK:
        index = _CACHE.get(key)
        if index is not None:
            _CACHE.move_to_end(key)
        return index


def cached_index(container: InputContainer, stream: VideoStream, path: Path) -> VideoIndex:
    """The index of ``path``, from the process-wide LRU cache or built with ``container``."""
    index = index_in_cache(path)
    if index is not None:
        return index
    key = _cache_key(path)
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
