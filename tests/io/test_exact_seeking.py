"""Random access is frame-exact on every container and codec a recorder or phone produces.

Each video is generated with PyAV, every frame showing its own number. Random, unsorted, repeated
index lists and runs across keyframes are read, each from a fresh seek, and compared with PyAV's
sequential decode and with the numbers drawn in the frames; ``iter_frames`` reads every frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from resaction.errors import VideoOpenError
from resaction.io import VideoReader
from resaction.io.exactness import check_exactness
from resaction.io.index_build import keyframe_flags_doubtful
from tests.io.videogen import (
    cut_at,
    read_code,
    remux_dropping_frames,
    remux_flagging_keyframes,
    remux_from,
    remux_with_decode_times_as_pts,
    trim_without_reencoding,
    write_video,
)

FRAMES = 90
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
GOP = 12
X264 = f"keyint={GOP}:min-keyint={GOP}:scenecut=0"


X265_GOP = f"keyint={GOP}:min-keyint={GOP}:scenecut=0:log-level=error"
PTS_NEAR_WRAP = [2**33 - 3600 * 40 + 3600 * i for i in range(FRAMES)]


def x264(params: str = "") -> dict:
    return {"codec": "libx264", "options": {"x264-params": f"{X264}:{params}".rstrip(":")}}


# name -> (file name, write_video arguments, seek mode the reader must choose)
COMBINATIONS: dict[str, tuple[str, dict, str]] = {
    "mp4_h264_bframes": ("a.mp4", x264("bframes=2"), "pts"),
    "mov_h264_bframes": ("a.mov", x264("bframes=3"), "pts"),
    "mkv_h264_open_gop": ("a.mkv", x264("bframes=3:open-gop=1"), "pts"),
    "webm_vp9_alt_ref": (
        "a.webm",
        {"codec": "libvpx-vp9", "options": {"auto-alt-ref": "1"}},
        "pts",
    ),
    "avi_mpeg4_bframes": ("a.avi", {"codec": "mpeg4", "max_b_frames": 2}, "pts"),
    "avi_mpeg4_no_bframes": ("a.avi", {"codec": "mpeg4"}, "pts"),
    "avi_h264_bframes": ("a.avi", x264("bframes=2"), "packet"),
    "avi_h264_open_gop": ("a.avi", x264("bframes=3:open-gop=1"), "packet"),
    "avi_h264_no_bframes": ("a.avi", x264("bframes=0"), "packet"),
    "avi_mjpeg": ("a.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}, "pts"),
    "avi_mpeg2_bframes": ("a.avi", {"codec": "mpeg2video", "max_b_frames": 2}, "pts"),
    "ts_h264_bframes": ("a.ts", x264("bframes=2"), "pts"),
    "ts_mpeg2_bframes": ("a.ts", {"codec": "mpeg2video", "max_b_frames": 2}, "pts"),
    "flv_h264_bframes": ("a.flv", x264("bframes=2"), "pts"),
    "mpg_mpeg2_bframes": ("a.mpg", {"codec": "mpeg2video", "max_b_frames": 2}, "pts from start"),
    "mpg_mpeg1_bframes": ("a.mpg", {"codec": "mpeg1video", "max_b_frames": 2}, "pts from start"),
    "vob_mpeg2_no_bframes": ("a.vob", {"codec": "mpeg2video"}, "pts from start"),
    "mpg_h264_bframes": ("a.mpg", x264("bframes=2"), "packet from start"),
    "m4v_raw_mpeg4": ("a.m4v", {"codec": "mpeg4", "max_b_frames": 2}, "pts"),
    # ASF/WMV (older DVR exports): with H.264 the first packets after a seek to the start got
    # other pts than a read from the start, and frames 0-24 could not be read.
    "asf_h264_no_bframes": ("a.asf", x264("bframes=0"), "packet"),
    "wmv_h264_bframes": ("a.wmv", x264("bframes=2"), "packet"),
    "wmv_mpeg4_bframes": ("a.wmv", {"codec": "mpeg4", "max_b_frames": 2}, "pts"),
    "wmv_wmv2": ("a.wmv", {"codec": "wmv2"}, "pts"),
    # A live recording whose 33-bit MPEG clock wraps around in the middle.
    "ts_h264_pts_wrap": (
        "a.ts",
        {**x264("bframes=2"), "pts": PTS_NEAR_WRAP, "time_base": Fraction(1, 90000)},
        "pts",
    ),
    "ts_h264_interlaced": ("a.ts", x264("bframes=2:interlaced=1:tff=1"), "pts"),
    "mkv_hevc_open_gop": (
        "a.mkv",
        {"codec": "libx265", "options": {"x265-params": f"{X265_GOP}:open-gop=1:bframes=4"}},
        "pts",
    ),
    "mxf_mpeg2_bframes": ("a.mxf", {"codec": "mpeg2video", "max_b_frames": 2}, "pts"),
    "mov_mjpeg": ("a.mov", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}, "pts"),
    "avi_dv": ("a.avi", {"codec": "dvvideo", "width": 720, "height": 576}, "pts"),
    # Periodic intra refresh (low-latency cameras): the keyframes are recovery points, after
    # which the decoder shows nothing until the picture is refreshed; reads decode from earlier.
    "mp4_h264_intra_refresh": ("a.mp4", x264("bframes=0:intra-refresh=1"), "pts"),
    "ts_h264_intra_refresh": ("a.ts", x264("bframes=0:intra-refresh=1"), "pts"),
}


def frame_numbers(reader: VideoReader) -> list[int]:
    return [read_code(frame) for frame in reader.get_frames(range(reader.num_frames)).numpy()]


def assert_exact(path: Path, first_number: int = 0) -> VideoReader:
    report = check_exactness(path, reads=9, seed=3)
    assert report.error is None, report.error
    assert report.exact, f"{path.name}: wrong frames {report.wrong}"
    assert report.reads > 9 * 5
    with VideoReader(path) as reader:
        numbers = frame_numbers(reader)
        assert numbers == list(range(first_number, first_number + reader.num_frames))
        assert [i for i, _, _ in reader.iter_frames()] == list(range(reader.num_frames))
        assert np.all(np.diff(reader.timestamps) > 0)
    return reader


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_random_reads_equal_sequential_decoding(tmp_path: Path, name: str) -> None:
    file_name, kwargs, mode = COMBINATIONS[name]
    path = write_video(tmp_path / file_name, num_frames=FRAMES, gop=GOP, **kwargs)
    reader = assert_exact(path)
    assert reader.num_frames == FRAMES
    assert reader.seek_mode == mode
    assert reader.fps == pytest.approx(25, rel=1e-3)


H263 = {"codec": "h263", "width": 128, "height": 96}
# name -> (file name, write_video arguments, remuxed with every packet flagged a keyframe)
EVERY_PACKET_KEY: dict[str, tuple[str, dict, bool]] = {
    "avi_h263": ("a.avi", H263, False),
    "3gp_h263": ("a.3gp", H263, True),
    "mp4_hevc_bframes": ("a.mp4", {"codec": "libx265", "options": {"x265-params": X265_GOP}}, True),
    "mkv_hevc_bframes": ("a.mkv", {"codec": "libx265", "options": {"x265-params": X265_GOP}}, True),
    "mov_mpeg4_bframes": ("a.mov", {"codec": "mpeg4", "max_b_frames": 2}, True),
    "mp4_mpeg2_bframes": ("a.mp4", {"codec": "mpeg2video", "max_b_frames": 2}, True),
}


@pytest.mark.parametrize("name", sorted(EVERY_PACKET_KEY))
def test_keyframe_flags_on_every_packet_are_checked_by_decoding(tmp_path: Path, name: str) -> None:
    """H.263 in AVI as FFmpeg writes it flags every packet a keyframe, and so does an MP4 or MOV
    without a sync-sample table, or a remux that flags every packet. A seek to a picture that is
    not one decoded a wrong picture (H.263) or failed (HEVC, MPEG-4 and MPEG-2 in MP4, MOV and
    MKV); the real keyframes are found by decoding the file once."""
    file_name, kwargs, remux = EVERY_PACKET_KEY[name]
    path = write_video(tmp_path / file_name, num_frames=FRAMES, gop=GOP, **kwargs)
    if remux:
        path = remux_flagging_keyframes(path, tmp_path / f"every_key{path.suffix}")
    with av.open(str(path)) as container:
        assert all(p.is_keyframe for p in container.demux(video=0) if p.size)
    reader = assert_exact(path)
    assert reader.num_frames == FRAMES
    assert reader.seek_mode == "pts, keyframes decoded"
    assert 1 < len(reader._index.key_pos) <= FRAMES // 4


@pytest.mark.parametrize("name", ["mov_mpeg4_bframes", "mov_h263"])
def test_a_few_packets_wrongly_flagged_keyframes_are_not_decoded_from(
    tmp_path: Path, name: str
) -> None:
    """Every 7th packet flagged a keyframe, too few to doubt the flags as a whole. MPEG-4 Part 2
    and H.263 decoders show a picture over grey references after a seek to one that is not: a
    wrong frame without an error. A seek whose first picture is not a keyframe now goes on to
    the keyframe before it."""
    kwargs = H263 if name == "mov_h263" else {"codec": "mpeg4", "max_b_frames": 2}
    source = write_video(tmp_path / "source.mov", num_frames=FRAMES, gop=GOP, **kwargs)
    path = remux_flagging_keyframes(source, tmp_path / "a.mov", every=7)
    with av.open(str(path)) as container:
        flags = [p.is_keyframe for p in container.demux(video=0) if p.size]
    assert FRAMES // 7 < sum(flags) < FRAMES // 2
    reader = assert_exact(path)
    assert reader.seek_mode == "pts"


def test_keyframe_flags_are_trusted_where_they_can_be() -> None:
    """Only doubtful flags cost a decode: those of intra-only codecs and sparse ones are kept."""
    h264, mjpeg = av.Codec("h264", "r"), av.Codec("mjpeg", "r")
    assert keyframe_flags_doubtful([True] * 10, h264)
    assert not keyframe_flags_doubtful([True] * 10, mjpeg)
    assert not keyframe_flags_doubtful([True, False, False, True, False, False], h264)


@pytest.mark.parametrize("params", ["bframes=2", "bframes=3:open-gop=1"])
@pytest.mark.parametrize("skip", [5, 2 * GOP + 3])
@pytest.mark.parametrize("suffix", [".ts", ".mp4"])
def test_stream_recording_starting_mid_gop(
    tmp_path: Path, params: str, skip: int, suffix: str
) -> None:
    """The first packets are not a keyframe (and with an open GOP, the pictures shown before the
    first keyframe cannot be decoded): the video starts at the first keyframe's picture. In MP4,
    once a read had reached the end of such a file, the demuxer's seek to the first keyframe
    stayed at the end, and ``iter_frames`` gave nothing; an earlier seek is tried now."""
    full = write_video(tmp_path / f"full{suffix}", num_frames=FRAMES, gop=GOP, **x264(params))
    path = remux_from(full, tmp_path / f"cut{suffix}", skip)
    with av.open(str(path)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
        assert not first.is_keyframe
    first_number = (skip // GOP + 1) * GOP
    reader = assert_exact(path, first_number)
    assert reader.num_frames == FRAMES - first_number


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_mpeg4_recording_starting_mid_gop_starts_at_its_first_keyframe(
    tmp_path: Path, suffix: str
) -> None:
    """MPEG-4 Part 2 with B-frames, cut mid-GOP: the B-pictures decoded after the first keyframe
    but shown before it refer to a picture before the cut, and this decoder shows them anyway,
    over grey (a plain decode put out 9 such pictures first). They are not frames: the video
    starts at the first keyframe's picture, as with H.264 (every read failed with "frame 0 of 56
    could not be decoded")."""
    source = write_video(tmp_path / "full.mkv", "mpeg4", num_frames=FRAMES, gop=GOP, max_b_frames=2)
    path = remux_from(source, tmp_path / f"cut{suffix}", 2 * GOP + 3)
    reader = assert_exact(path, 3 * GOP)
    assert reader.num_frames == FRAMES - 3 * GOP


@pytest.mark.parametrize("skip", [5, 2 * GOP + 3])
def test_intra_refresh_recording_starting_mid_stream(tmp_path: Path, skip: int) -> None:
    """A recording of a periodic-intra-refresh stream cut anywhere has no IDR picture: decoding
    shows its first picture only once the first refresh after the cut completes, and the pictures
    after the last recovery point come out only when decoding started before it (they used to be
    taken for lost at the end of the file and dropped: 70 frames of 74)."""
    full = write_video(
        tmp_path / "full.ts", num_frames=FRAMES, gop=GOP, **x264("bframes=0:intra-refresh=1")
    )
    path = remux_from(full, tmp_path / "cut.ts", skip)
    with av.open(str(path)) as container:
        first_number = read_code(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    assert first_number > (skip // GOP + 1) * GOP
    reader = assert_exact(path, first_number)
    assert reader.num_frames == FRAMES - first_number


def test_variable_frame_rate_with_bframes(tmp_path: Path) -> None:
    """Variable frame rate with B-frames in MP4: times come from the stored pts."""
    gaps = np.random.default_rng(2).choice([20, 40, 100], size=FRAMES - 1)
    pts = np.concatenate([[0], np.cumsum(gaps)])
    path = write_video(
        tmp_path / "vfr.mp4",
        num_frames=FRAMES,
        gop=GOP,
        pts=pts,
        time_base=Fraction(1, 1000),
        **x264("bframes=2"),
    )
    reader = assert_exact(path)
    np.testing.assert_allclose(reader.timestamps, pts / 1000, atol=1e-6)


def test_h264_in_avi_keyframes_known_without_decoding_from_start(tmp_path: Path) -> None:
    """Numbered by packet, H.264 in AVI still seeks to the keyframe before a wanted frame."""
    path = write_video(tmp_path / "a.avi", num_frames=FRAMES, gop=GOP, **x264("bframes=2"))
    with VideoReader(path) as reader:
        keys = reader._index.key_slot
        assert keys.tolist() == list(range(0, FRAMES, GOP))
        assert reader.timestamps[-1] == pytest.approx((FRAMES - 1) / 25)


@pytest.mark.parametrize(
    "kwargs", [x264("bframes=0"), x264("bframes=2"), {"codec": "mpeg4", "max_b_frames": 2}]
)
def test_avi_with_dropped_frames_keeps_every_picture(tmp_path: Path, kwargs: dict) -> None:
    """A recorder that drops frames writes empty chunks in their place: the header counts 97
    frames, the file holds 90 pictures. H.264 (numbered by packet) took the difference for a cut
    end and dropped the last picture; the frames' times keep the gaps."""
    source = write_video(tmp_path / "source.avi", num_frames=FRAMES, gop=GOP, **kwargs)
    path = remux_dropping_frames(source, tmp_path / "dropped.avi", every=13)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == FRAMES + (FRAMES - 1) // 13
    reader = assert_exact(path)
    assert reader.num_frames == FRAMES
    gaps = np.flatnonzero(np.round(np.diff(reader.timestamps) * 25) > 1)
    assert len(gaps) == (FRAMES - 1) // 13
    assert reader.timestamps[-1] == pytest.approx((FRAMES - 1 + (FRAMES - 1) // 13) / 25)


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [
        (".mp4", x264("bframes=2")),
        (".flv", x264("bframes=2")),
        (".mkv", x264("bframes=2")),
        (".mxf", x264("bframes=2")),
        (".mov", {"codec": "mpeg4", "max_b_frames": 2}),
    ],
)
def test_pts_written_in_decode_order_are_not_trusted(
    tmp_path: Path, suffix: str, kwargs: dict
) -> None:
    """A muxer that writes no composition offsets (MP4 without ``ctts``, FLV without composition
    times, H.264 in MXF as FFmpeg writes it) leaves B-frame pictures with pts that rise in decode
    order. Every read failed ("frame 1 of 90 could not be decoded"); the pictures are now named
    by the packet they come from, as in AVI."""
    source = write_video(tmp_path / "source.mp4", num_frames=FRAMES, gop=GOP, **kwargs)
    path = remux_with_decode_times_as_pts(source, tmp_path / f"a{suffix}")
    with av.open(str(path)) as container:
        pts = [packet.pts for packet in container.demux(video=0) if packet.size]
    assert pts == sorted(pts)
    reader = assert_exact(path)
    assert reader.num_frames == FRAMES
    assert reader.seek_mode.startswith("packet")
    assert reader.timestamps[-1] == pytest.approx((FRAMES - 1) / 25)


def test_raw_stream_that_cannot_seek_says_what_to_do(tmp_path: Path) -> None:
    path = write_video(tmp_path / "camera.h264", num_frames=30, gop=GOP, **x264("bframes=2"))
    with pytest.raises(VideoOpenError, match=r"camera\.h264: .*cannot seek.*remux"):
        VideoReader(path)


@pytest.mark.parametrize("first_starts_at", [0, 200])
def test_transport_streams_joined_with_cat_read_every_frame(
    tmp_path: Path, first_starts_at: int
) -> None:
    """Two recordings joined byte for byte (``cat a.ts b.ts``): the clock restarts at the join
    (to the same times, or to earlier ones when the first recording started at frame 200's time)
    and MPEG-TS flags the packet after it corrupt (continuity counter), yet nothing is lost. Every
    picture a plain decode shows is a frame, in that order (a flagged packet used to be dropped,
    and a frame with it; a clock going back to earlier times lost the whole second part)."""
    clock = {"pts": [(first_starts_at + i) * 40 for i in range(40)], "time_base": Fraction(1, 1000)}
    parts = [
        write_video(tmp_path / "a.ts", num_frames=40, gop=GOP, **clock, **x264("bframes=2")),
        write_video(tmp_path / "b.ts", num_frames=40, gop=GOP, **x264("bframes=2")),
    ]
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    report = check_exactness(joined, reads=9, seed=3)
    assert report.error is None and report.exact, report.wrong
    with VideoReader(joined) as reader:
        assert frame_numbers(reader) == [*range(40), *range(40)]
        assert [i for i, _, _ in reader.iter_frames()] == list(range(80))
        assert frame_numbers_of(reader, [45, 38, 3, 79]) == [5, 38, 3, 39]


def test_a_recording_that_lost_packets_reads_every_picture_a_plain_decode_shows(
    tmp_path: Path,
) -> None:
    """Three 188-byte transport packets lost in the middle of a live recording: the demuxer
    flags the video packet they belonged to corrupt, and the decoder conceals the damage. Its
    picture is still a frame (it was dropped, and the frame count fell short of a plain decode)."""
    source = write_video(
        tmp_path / "a.ts", num_frames=60, gop=GOP, width=320, height=240, **x264("bframes=2")
    )
    data = source.read_bytes()
    cut = len(data) // 188 // 2 * 188
    damaged = tmp_path / "lost.ts"
    damaged.write_bytes(data[:cut] + data[cut + 3 * 188 :])
    with av.open(str(damaged)) as container:
        stream = container.streams.video[0]
        assert sum(packet.is_corrupt for packet in container.demux(stream)) == 1
    report = check_exactness(damaged, reads=9, seed=3)
    assert report.error is None and report.exact, report.wrong
    with VideoReader(damaged) as reader:
        assert reader.num_frames == 60


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("a.flv", x264("bframes=2")),
        ("frag.mp4", {**x264("bframes=2"), "container_options": {"movflags": FRAGMENTED}}),
    ],
)
@pytest.mark.parametrize("fraction", [0.31, 0.77])
def test_a_cut_recording_reads_the_pictures_before_the_cut(
    tmp_path: Path, name: str, kwargs: dict, fraction: float
) -> None:
    """A recording cut mid-write (FLV, fragmented MP4 as a camera writes it): its last packet is
    incomplete and fails to decode. The reader leaves it out and keeps every picture before it,
    the ones the decoder still held included; so does the reference decode now (it stopped at the
    failing packet, and the check reported 24 frames against the reader's 26)."""
    full = write_video(
        tmp_path / f"full_{name}", num_frames=FRAMES, gop=GOP, width=160, height=96, **kwargs
    )
    path = cut_at(full, tmp_path / name, fraction)
    report = check_exactness(path, reads=9, seed=3)
    assert report.error is None and report.exact, report.wrong
    with VideoReader(path) as reader:
        numbers = frame_numbers(reader)
    assert FRAMES * fraction * 0.5 < len(numbers) < FRAMES * fraction
    assert numbers == sorted(set(numbers)) and numbers[0] == 0
    assert numbers[-2] == len(numbers) - 2  # only B-pictures whose packets were cut are missing


@pytest.mark.parametrize("fraction", [0.5, 0.93])
def test_a_picture_damaged_by_the_cut_is_counted_but_not_compared(
    tmp_path: Path, fraction: float
) -> None:
    """An MPEG-TS recording cut mid-picture: the decoder conceals what is missing and flags the
    picture corrupt. It is a frame, as in a plain decode, but its pixels depend on the decoder's
    threads and on which pictures it decoded before (they differed between a random read and a
    sequential decode), so the check reports it as damaged rather than wrong."""
    full = write_video(
        tmp_path / "full.ts", num_frames=FRAMES, gop=GOP, width=160, height=96, **x264("bframes=2")
    )
    path = cut_at(full, tmp_path / "cut.ts", fraction)
    report = check_exactness(path, reads=9, seed=3)
    assert report.error is None and report.exact, report.wrong
    assert report.damaged and max(report.damaged) >= report.frames - 3
    with VideoReader(path) as reader:
        assert reader.num_frames == report.frames


@pytest.mark.parametrize("first_frame", [30, 26])
def test_mp4_trimmed_without_reencoding_starts_at_the_cut(tmp_path: Path, first_frame: int) -> None:
    """An edit list that starts after a keyframe (``ffmpeg -ss 1.2 -c copy``, a phone's trim):
    the demuxer marks the packets before the cut to be decoded but not shown. Frame 0 is the
    picture at the cut, as in a plain decode (the frames up to the next keyframe were lost, and
    every frame number was off by that many)."""
    source = write_video(tmp_path / "a.mp4", num_frames=FRAMES, gop=GOP, **x264("bframes=2"))
    trimmed = trim_without_reencoding(source, tmp_path / "trim.mp4", first_frame, GOP)
    reader = assert_exact(trimmed, first_number=first_frame)
    assert reader.num_frames == FRAMES - first_frame
    assert reader.timestamps[0] == 0
    with VideoReader(trimmed) as again:
        assert frame_numbers_of(again, [3, 0, 40]) == [
            first_frame + 3,
            first_frame,
            first_frame + 40,
        ]


def test_program_stream_demuxes_from_the_start_but_decodes_from_the_keyframe(
    tmp_path: Path, decoded_slots: list[int]
) -> None:
    """After a seek an MPEG program stream's guessed timestamps shift (reads used to fail with
    "could not be decoded"), so a read demuxes from the start; it decodes only from the keyframe
    before the wanted frame."""
    path = write_video(
        tmp_path / "dvd.mpg", num_frames=FRAMES, gop=GOP, codec="mpeg2video", max_b_frames=2
    )
    with VideoReader(path) as reader:
        keys = reader._index.key_slot
        wanted = [83, 61]
        decoded_slots.clear()
        assert frame_numbers_of(reader, wanted) == wanted
        before_first = max(int(k) for k in keys if k <= 61)
        assert min(decoded_slots) >= before_first - 2
        assert len(decoded_slots) < FRAMES // 2


@pytest.mark.parametrize(("codec", "suffix"), [("mpeg4", ".avi"), ("mjpeg", ".avi")])
def test_reduced_decoding_reads_the_same_frames(tmp_path: Path, codec: str, suffix: str) -> None:
    """A small output from a codec that decodes at a fraction of its size: the same frames, close
    to a full decode scaled down, at a quarter of the size."""
    kwargs = {"codec": codec, "pix_fmt": "yuvj420p"} if codec == "mjpeg" else {"codec": codec}
    path = write_video(
        tmp_path / f"a{suffix}", num_frames=60, gop=GOP, width=192, height=128, **kwargs
    )
    wanted = [41, 3, 3, 17, 59, 30, 31, 32]
    with VideoReader(path, short_side=32) as reduced:
        assert reduced.decode_scale == 0.25
        small = reduced.get_frames(wanted).numpy()
    with VideoReader(path, short_side=32, reduced_decoding=False) as full:
        assert full.decode_scale == 1
        reference = full.get_frames(wanted).numpy()
    assert small.shape == reference.shape == (len(wanted), 32, 48, 3)
    assert [read_code(frame) for frame in small] == wanted
    assert np.abs(small.astype(int) - reference).mean() < 6
    with VideoReader(path, short_side=64) as half:
        assert half.decode_scale == 1  # at half size a reduced decode costs what it saves


def test_a_later_clip_continues_decoding_without_a_new_seek(
    tmp_path: Path, decoded_slots: list[int]
) -> None:
    """Clips of one video read in order (multi-clip test views, timelines): the second goes on
    from where the first stopped when no keyframe lies between, and a read behind it seeks."""
    decoded = decoded_slots
    path = write_video(tmp_path / "a.mp4", num_frames=FRAMES, gop=45, **x264("bframes=2"))
    with VideoReader(path) as reader:
        assert frame_numbers_of(reader, range(20, 28)) == list(range(20, 28))
        decoded.clear()
        assert frame_numbers_of(reader, range(30, 38)) == list(range(30, 38))
        assert min(decoded) > 27
        decoded.clear()
        assert frame_numbers_of(reader, [25, 26]) == [25, 26]
        assert min(decoded) < 25


def frame_numbers_of(reader: VideoReader, indices) -> list[int]:
    return [read_code(frame) for frame in reader.get_frames(list(indices)).numpy()]


def test_intra_refresh_reads_just_after_a_recovery_point(tmp_path: Path) -> None:
    """With periodic intra refresh the decoder shows nothing for a while after a seek to a
    flagged keyframe (a recovery point); the frames just after one still read, one at a time
    from fresh readers and streamed, from an earlier keyframe."""
    path = write_video(
        tmp_path / "a.mp4", num_frames=FRAMES, gop=GOP, **x264("bframes=0:intra-refresh=1")
    )
    with VideoReader(path) as reader:
        keys = reader._index.key_slot
        assert len(keys) > 3
        after = [int(keys[3]) + 1, int(keys[3]) + 2, int(keys[-1]) + 1]
    for frame in after:
        with VideoReader(path) as reader:
            assert frame_numbers_of(reader, [frame]) == [frame]
        with VideoReader(path) as reader:
            streamed = [
                (i, read_code(image)) for i, _, image in reader.iter_frames(frame, frame + 3)
            ]
            assert streamed == [(i, i) for i in range(frame, frame + 3)]
