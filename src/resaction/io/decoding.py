"""Decode forward from a keyframe, naming every decoded picture by its frame number."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from resaction.errors import VideoOpenError
from resaction.io.container import av_reason
from resaction.io.index import VideoIndex

log = logging.getLogger(__name__)


def _kept(packet: Packet) -> bool:
    """The packets the index counts (keep in step with ``index._read_packets``)."""
    return not (packet.is_corrupt or packet.is_discard)


def _seek_attempts(index: VideoIndex, key: int) -> list[int | None]:
    """Timestamps to seek to, best first; ``None`` means the start of the file."""
    if not index.seekable:
        return [None]
    attempts: list[int | None] = [int(index.key_seek_ts[key])]
    if key:
        attempts.append(int(index.key_seek_ts[0]))
    attempts.append(None)
    return attempts


def _packets_from_key(
    container: InputContainer, stream: VideoStream, index: VideoIndex, key: int
) -> Iterator[Packet | None]:
    """Packets from keyframe ``key`` on, each with ``opaque`` set to its position; ``None`` at the
    end of the stream (flush the decoder).

    The demuxer may land before the keyframe (its seek index differs from ours): the packets up to
    it are skipped without decoding. If it lands after, an earlier seek is tried.
    """
    target = int(index.key_pos[key])
    for seek_ts in _seek_attempts(index, key):
        try:
            if seek_ts is None:
                container.seek(0, backward=True, any_frame=False)
            else:
                container.seek(seek_ts, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError as error:
            log.debug("%s: seek to %s failed (%s)", index.path, seek_ts, av_reason(error))
            continue
        stream.codec_context.flush_buffers()
        pos: int | None = None
        overshot = False
        for packet in container.demux(stream):
            if packet.size == 0:
                if pos is not None and pos >= target:
                    yield None
                break
            if not _kept(packet):
                continue
            if pos is None:
                if seek_ts is None and not index.seekable:
                    pos = 0
                else:
                    found = index.packet_pos.get(packet.pts if index.by_pts else packet.dts)
                    if found is None:
                        continue
                    if found > target:
                        overshot = True
                        break
                    pos = found
            else:
                pos += 1
            if pos < target:
                continue
            # A fresh tuple, not the int: PyAV keys its opaque store by id(), and small ints are
            # shared objects, so decoders in two threads would free each other's entries.
            packet.opaque = (pos,)
            yield packet
        if not overshot:
            return
        log.debug("%s: seek for keyframe %d landed after it; seeking earlier", index.path, key)
    raise VideoOpenError(f"{index.path}: cannot seek to frame {int(index.key_slot[key])}")


def _position(frame: VideoFrame) -> int | None:
    """The packet position ``_packets_from_key`` attached to the frame, if any."""
    opaque = frame.opaque
    return opaque[0] if isinstance(opaque, tuple) else None


def decode_from(
    container: InputContainer,
    stream: VideoStream,
    index: VideoIndex,
    key: int,
) -> Iterator[tuple[int, VideoFrame]]:
    """Yield ``(frame number, frame)`` in presentation order from keyframe ``key`` to the end.

    Matching by pts drops pictures the index does not know and leading pictures of an open GOP
    (decoded without their references). Matching by count starts at the keyframe's own picture
    and learns the frame numbers of the keyframes it passes. Decoding stops at a packet that fails
    to decode: the pictures after it until the next keyframe would be damaged, and counted frame
    numbers would be wrong.
    """
    codec = stream.codec_context
    target_pos = int(index.key_pos[key])
    min_slot = 0 if key == 0 else int(index.key_slot[key])
    counting = False
    last = None
    for packet in _packets_from_key(container, stream, index, key):
        try:
            frames = codec.decode(packet)
        except av.FFmpegError as error:
            log.warning(
                "%s: decoding stopped after frame %s (%s)", index.path, last, av_reason(error)
            )
            return
        for frame in frames:
            if index.by_pts:
                if frame.pts is None:
                    slot = None if last is None else last + 1
                else:
                    slot = index.frame_slot.get(frame.pts)
                if slot is None or slot < min_slot:
                    continue
            else:
                if counting:
                    slot = last + 1
                elif _position(frame) == target_pos and frame.key_frame:
                    counting, slot = True, int(index.key_slot[key])
                else:
                    continue
                pos = _position(frame)
                if frame.key_frame and pos in index.key_of_pos:
                    index.learn_keyframe(index.key_of_pos[pos], slot)
            if slot >= index.num_frames:
                return
            last = slot
            yield slot, frame
