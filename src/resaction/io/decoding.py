"""Decode forward from a keyframe, naming every decoded picture by its frame number."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
from av.container import InputContainer
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from resaction.errors import VideoOpenError
from resaction.io.container import av_reason
from resaction.io.index import VideoIndex

log = logging.getLogger(__name__)

# Codecs whose decoder shows a picture whose references it never saw (over grey ones) rather
# than dropping it: after a seek to a packet wrongly flagged a keyframe they give a wrong frame.
SHOWN_WITHOUT_REFERENCES = frozenset(
    {"mpeg4", "h263", "h263p", "h263i", "flv", "msmpeg4v1", "msmpeg4v2", "msmpeg4", "wmv1", "wmv2"}
)


def _seek_attempts(index: VideoIndex, key: int) -> list[int | None]:
    """Timestamps to seek to, best first; ``None`` means the start of the file."""
    if not index.seekable:
        return [None]
    attempts: list[int | None] = [int(index.key_seek_ts[key])]
    if key:
        attempts.append(int(index.key_seek_ts[0]))
    attempts.append(None)
    return attempts


def _landing(
    packets: Iterator[Packet], index: VideoIndex, from_start: bool
) -> tuple[int, Packet] | None:
    """Position and packet of the first kept packet after a seek whose position the index knows
    (``None`` at the end of the stream)."""
    for packet in packets:
        if packet.size == 0:
            return None
        if from_start:
            return 0, packet
        found = index.packet_pos.get(packet.pts if index.by_pts else packet.dts)
        if found is not None:
            return found, packet
    return None


def _from_landing(
    packets: Iterator[Packet], index: VideoIndex, landing: tuple[int, Packet], target: int
) -> Iterator[Packet | None]:
    """The packets from ``target`` on, counting positions from the landing packet; positions are
    attached only where pictures are matched by packet. The packets past the last one the index
    knows (the incomplete end of a cut file) are not decoded, as in ``index.read_packets``, which
    numbered them."""
    pos, packet = landing
    label = not index.by_pts
    known = len(index.packet_ts)
    if pos >= target:
        if label:
            # A fresh tuple, not the int: PyAV keys its opaque store by id(), and small ints
            # are shared objects, so decoders in two threads would free each other's entries.
            packet.opaque = (pos,)
        yield packet
    for packet in packets:
        if packet.size == 0:
            break
        pos += 1
        if pos >= known:
            break
        if pos >= target:
            if label:
                packet.opaque = (pos,)
            yield packet
    if pos >= target:
        yield None


def packets_from_key(
    container: InputContainer, stream: VideoStream, index: VideoIndex, key: int
) -> Iterator[Packet | None]:
    """Packets from keyframe ``key`` on, each with ``opaque`` set to its position; ``None`` at the
    end of the stream (flush the decoder).

    The demuxer may land before the keyframe (its seek index differs from ours): the packets up to
    it are skipped without decoding. If it lands after, or at the end of the file (MP4's demuxer,
    once it has read to the end of a file whose first packets are not keyframes), an earlier seek
    is tried.
    """
    target = int(index.key_pos[key])
    refused = ended = 0
    for seek_ts in _seek_attempts(index, key):
        try:
            if seek_ts is None:
                container.seek(0, backward=True, any_frame=False)
            else:
                container.seek(seek_ts, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError as error:
            log.debug("%s: seek to %s failed (%s)", index.path, seek_ts, av_reason(error))
            refused += 1
            continue
        stream.codec_context.flush_buffers()
        packets = container.demux(stream)
        landing = _landing(packets, index, seek_ts is None and not index.seekable)
        if landing is None:
            log.debug("%s: seek to %s found nothing after it; seeking earlier", index.path, seek_ts)
            ended += 1
            continue
        if landing[0] <= target:
            yield from _from_landing(packets, index, landing, target)
            return
        log.debug("%s: seek for keyframe %d landed after it; seeking earlier", index.path, key)
    if ended and refused + ended == len(_seek_attempts(index, key)):
        return
    if refused == len(_seek_attempts(index, key)):
        raise VideoOpenError(
            f"{index.path}: its container cannot seek (a raw {index.codec} stream?); remux it "
            f"into MP4 or MKV first, e.g. ffmpeg -i {Path(index.path).name} -c copy out.mp4"
        )
    raise VideoOpenError(f"{index.path}: cannot seek to frame {int(index.key_slot[key])}")


def decode(codec: VideoCodecContext, packet: Packet | None) -> list[VideoFrame]:
    """The pictures ``packet`` completes (``None`` flushes). A packet the demuxer flagged corrupt
    that fails to decode gives none, its picture lost (such packets used to be skipped whole);
    any other failure raises."""
    try:
        return codec.decode(packet)
    except av.FFmpegError:
        if packet is not None and packet.is_corrupt:
            return []
        raise


def packet_position(frame: VideoFrame) -> int | None:
    """The packet position ``packets_from_key`` attached to the frame, if any."""
    opaque = frame.opaque
    return opaque[0] if isinstance(opaque, tuple) else None


def _slot(index: VideoIndex, frame: VideoFrame, last: int | None) -> int | None:
    """The frame number of a decoded picture, ``None`` if it is not one of the index's frames."""
    if index.by_pts:
        pts = frame.pts
        if pts is None:
            return None if last is None else last + 1
        return index.frame_slot.get(pts)
    position = packet_position(frame)
    if position is None or index.pos_slot is None:
        return None
    slot = int(index.pos_slot[position])
    return slot if slot >= 0 else None


def _packet_position(index: VideoIndex, packet: Packet) -> int | None:
    """The decode-order position of a packet ``packets_from_key`` gave out."""
    if index.by_pts:
        return index.packet_pos.get(packet.pts)
    return packet.opaque[0]


class ForwardDecode:
    """Decoding forward from keyframe ``key``: iterates ``(frame number, frame)`` in
    presentation order to the end of the stream, from frame ``first_wanted`` on.

    Pictures the index does not know are dropped, and so are pictures shown before the keyframe
    (leading pictures of an open GOP, decoded without their references). Pictures before
    ``first_wanted`` are not given out, and those of them that no other picture refers to are not
    decoded at all while they lie before ``VideoIndex.first_packet_from[first_wanted]``; a reader
    may raise ``first_wanted`` between frames to go on to a later frame without a new seek.
    ``last`` is the frame number last decoded, ``finished`` whether the stream ended. Decoding
    stops at a packet that fails to decode: the pictures after it until the next keyframe would
    be damaged. With ``check_key``, it also stops before the first picture when that is not a
    keyframe and the codec would show it anyway, over grey references (see
    ``SHOWN_WITHOUT_REFERENCES``): the container flagged a picture that is not one.
    """

    def __init__(
        self,
        container: InputContainer,
        stream: VideoStream,
        index: VideoIndex,
        key: int,
        first_wanted: int = 0,
        check_key: bool = False,
    ) -> None:
        self.first_wanted = first_wanted
        self._check_key = check_key and key > 0 and index.codec in SHOWN_WITHOUT_REFERENCES
        self.last: int | None = None
        self.finished = False
        self._frames = self._decode(container, stream, index, key)

    def __iter__(self) -> Iterator[tuple[int, VideoFrame]]:
        return self._frames

    def close(self) -> None:
        """Stop decoding (and restore the decoder's settings) before the container seeks again."""
        self._frames.close()
        self.finished = True

    def _decode(
        self, container: InputContainer, stream: VideoStream, index: VideoIndex, key: int
    ) -> Iterator[tuple[int, VideoFrame]]:
        codec = stream.codec_context
        min_slot = 0 if key == 0 else int(index.key_slot[key])
        count = index.num_frames
        reorders = index.reorders
        first_packet = index.first_packet_from if reorders else []
        last = None
        skipping = False
        try:
            for packet in packets_from_key(container, stream, index, key):
                if reorders and (skipping or self.first_wanted > min_slot):
                    pos = None if packet is None else _packet_position(index, packet)
                    skip = pos is not None and pos < first_packet[self.first_wanted]
                    if skip != skipping:
                        codec.skip_frame = "NONREF" if skip else "DEFAULT"
                        skipping = skip
                try:
                    frames = decode(codec, packet)
                except av.FFmpegError as error:
                    log.warning(
                        "%s: decoding stopped after frame %s (%s)",
                        index.path,
                        last,
                        av_reason(error),
                    )
                    return
                for frame in frames:
                    slot = _slot(index, frame, last)
                    if slot is None or slot < min_slot:
                        continue
                    if self._check_key:
                        if not frame.key_frame:
                            log.debug("%s: keyframe %d is not one", index.path, key)
                            return
                        self._check_key = False
                    if slot >= count:
                        return
                    last = self.last = slot
                    if slot >= self.first_wanted:
                        yield slot, frame
        finally:
            self.finished = True
            if skipping:
                codec.skip_frame = "DEFAULT"
