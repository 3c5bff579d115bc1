from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import resaction.data.dataset as dataset_module
from resaction.data.dataset import SkippedVideo, VideoClipDataset
from resaction.data.loader import make_loader
from resaction.data.manifests import VideoEntry, read_manifest
from resaction.data.sampling import UniformClipSampler, build_sampler
from resaction.data.transforms import build_transform
from resaction.io import VideoReader
from tests.io.videogen import replace_packet, write_video

PREPROCESS = {"clip_len": 4, "resize": 64, "crop": 56, "mean": [0.5] * 3, "std": [0.25] * 3}


@pytest.fixture(scope="module")
def hockey(videos_dir: Path) -> list[VideoEntry]:
    manifest = read_manifest(videos_dir / "hockey_fight")
    return [manifest.entries[i] for i in (0, 1, 80, 81)]


@pytest.fixture()
def broken_copies(tmp_path: Path, videos_dir: Path) -> list[VideoEntry]:
    """A real video cut to its first 2 kB, and a copy with garbage in place of its bytes."""
    source = videos_dir / "surveillance_camera_fight" / "fight" / "fi001.mp4"
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(source.read_bytes()[:2048])
    garbage = tmp_path / "garbage.avi"
    shutil.copyfile(source, garbage)
    garbage.write_bytes(np.random.default_rng(0).bytes(garbage.stat().st_size))
    return [VideoEntry(truncated, 0), VideoEntry(garbage, 1)]


def test_construction_opens_no_video(monkeypatch, tmp_path: Path) -> None:
    opened: list[Path] = []

    def counting_reader(path, **options):
        opened.append(path)
        return VideoReader(path, **options)

    monkeypatch.setattr(dataset_module, "VideoReader", counting_reader)
    entries = [VideoEntry(tmp_path / f"not_yet_{i}.mp4", 0) for i in range(1000)]
    dataset = VideoClipDataset(entries, build_sampler(PREPROCESS), build_transform(PREPROCESS))
    assert len(dataset) == 1000 and opened == []
    assert isinstance(dataset[3], SkippedVideo) and opened == [entries[3].path]


def test_training_item_shape_label_and_index(hockey) -> None:
    dataset = VideoClipDataset(
        hockey, build_sampler(PREPROCESS, train=True), build_transform(PREPROCESS, train=True)
    )
    clip, label, index = dataset[2]
    assert clip.shape == (3, 4, 56, 56) and clip.dtype == torch.float32
    assert (label, index) == (hockey[2].label, 2)


def test_evaluation_item_stacks_clips_and_crops_in_order(hockey) -> None:
    sampler = build_sampler(PREPROCESS, {"num_clips": 2})
    transform = build_transform(PREPROCESS, num_crops=3)
    views, _, _ = VideoClipDataset(hockey, sampler, transform)[0]
    assert views.shape == (6, 3, 4, 56, 56)
    with VideoReader(hockey[0].path, short_side=64) as reader:
        clips = sampler(reader.num_frames, reader.fps, np.random.default_rng())
        expected = [transform(reader.get_frames(clip.tolist())) for clip in clips]
    assert torch.equal(views, torch.cat(expected))


def test_random_draws_depend_on_seed_epoch_and_index_only(hockey) -> None:
    def item(key, seed: int = 0) -> torch.Tensor:
        dataset = VideoClipDataset(
            hockey,
            build_sampler(PREPROCESS, train=True),
            build_transform(PREPROCESS, train=True),
            seed=seed,
        )
        return dataset[key][0]

    assert torch.equal(item((1, 0)), item((1, 0)))
    assert not torch.equal(item((1, 0)), item((1, 1)))
    assert not torch.equal(item((1, 0)), item((1, 0), seed=1))


def test_short_video_is_looped_not_an_error(hockey) -> None:
    sampler = UniformClipSampler(64, num_clips=1)
    clip, _, _ = VideoClipDataset(hockey[:1], sampler, build_transform(PREPROCESS))[0]
    assert clip.shape == (3, 64, 56, 56)
    assert torch.equal(clip[:, 0], clip[:, hockey_frames(hockey[0])])


def hockey_frames(entry: VideoEntry) -> int:
    with VideoReader(entry.path) as reader:
        return reader.num_frames


def test_without_transform_items_are_uint8_clips(hockey) -> None:
    clip, _, _ = VideoClipDataset(hockey[:1], UniformClipSampler(3, num_clips=1), None)[0]
    assert clip.dtype == torch.uint8 and clip.shape == (3, 3, 288, 360)


def test_bad_video_is_reported_once_and_skipped(hockey, broken_copies, caplog) -> None:
    dataset = VideoClipDataset(
        [hockey[0], *broken_copies], build_sampler(PREPROCESS), build_transform(PREPROCESS)
    )
    with caplog.at_level(logging.WARNING, logger="resaction.data.dataset"):
        for _ in range(2):
            items = [dataset[i] for i in range(len(dataset))]
    assert isinstance(items[0], tuple)
    assert [type(item) for item in items[1:]] == [SkippedVideo, SkippedVideo]
    assert dataset.skipped.paths == [str(entry.path) for entry in broken_copies]
    assert all(item.reason for item in dataset.skipped)
    warned = [r.getMessage() for r in caplog.records if "skipping video" in r.getMessage()]
    assert len(warned) == 2 and "truncated.mp4" in warned[0] and "garbage.avi" in warned[1]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bad_videos_are_skipped_through_loader_workers(
    hockey, broken_copies, num_workers: int
) -> None:
    entries = [broken_copies[0], *hockey, broken_copies[1]]
    dataset = VideoClipDataset(entries, build_sampler(PREPROCESS), build_transform(PREPROCESS))
    loader = make_loader(dataset, batch_size=2, train=False, num_workers=num_workers)
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = []
        for clips, labels, indices in loader:
            assert clips.shape[1:] == (3, 4, 56, 56) and len(labels) == len(clips)
            seen += indices.tolist()
        assert seen == [1, 2, 3, 4]
    assert sorted(dataset.skipped.paths) == sorted(str(e.path) for e in broken_copies)
    assert {item.index for item in dataset.skipped} == {0, 5}


def test_real_videos_of_every_shared_dataset_give_clips(videos_dir: Path) -> None:
    entries = []
    for folder in sorted(p for p in videos_dir.iterdir() if p.is_dir()):
        entries += read_manifest(folder).entries[:1]
    sampler = build_sampler({**PREPROCESS, "target_fps": 15}, {"num_clips": 2})
    dataset = VideoClipDataset(entries, sampler, build_transform(PREPROCESS))
    for i in range(len(dataset)):
        views, label, index = dataset[i]
        assert views.shape == (2, 3, 4, 56, 56) and torch.isfinite(views).all()
        assert (label, index) == (entries[i].label, i)
    assert len(dataset.skipped) == 0


def test_a_damaged_stretch_draws_other_clips_before_skipping_the_video(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One packet of garbage in a 90-frame recording loses the frames up to the next keyframe.
    A training clip that needs them is drawn again elsewhere in the video (the whole video used
    to be skipped for the rest of the run); a clip that every draw puts there (evaluation's
    fixed clips) still skips the video, naming the lost frame."""
    source = write_video(tmp_path / "source.avi", "mpeg4", num_frames=90, gop=10)
    damaged = replace_packet(source, tmp_path / "damaged.avi", 40, bytes(range(256)) * 8)
    preprocess = {**PREPROCESS, "clip_len": 8}
    train = VideoClipDataset(
        [VideoEntry(damaged, 0)],
        build_sampler(preprocess, train=True),
        build_transform(preprocess, train=True),
    )
    with caplog.at_level(logging.INFO, logger="resaction.data.dataset"):
        items = [train[(0, draw_key)] for draw_key in range(30)]
    assert all(isinstance(item, tuple) for item in items)
    assert any("drawing again" in record.getMessage() for record in caplog.records)
    assert not train.skipped.paths
    fixed = VideoClipDataset([VideoEntry(damaged, 0)], UniformClipSampler(8, num_clips=9), None)
    skipped = fixed[0]
    assert isinstance(skipped, SkippedVideo) and "could not be decoded" in skipped.reason
