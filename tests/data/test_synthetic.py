from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from resaction.data.manifests import read_manifest
from resaction.data.synthetic import (
    REVERSED_PAIRS,
    SYNTHETIC_CLASSES,
    generate_dataset,
    read_boxes,
    read_occluded,
    render_video,
)
from resaction.errors import ConfigError

KNOBS = {"clutter": 0.5, "camera_motion": 0.5, "occlusion": 0.5}
SMALL = {"size": 48, "num_frames": 8, "fps": 15, "progress": False}


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def actor_tracks(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: the actor's centroid and area, and the angle of its marker dot around it.

    Without difficulties the background is dim (value <= 0.45), the actor bright (value >=
    0.6) and its marker pure black or white, which the background never is.
    """
    value = frames.max(axis=3)
    actor = value > 140
    marker = (value < 8) | (frames.min(axis=3) > 247)
    ys, xs = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    area = actor.sum(axis=(1, 2)) + marker.sum(axis=(1, 2))
    body = actor | marker
    cx = (body * xs).sum(axis=(1, 2)) / area
    cy = (body * ys).sum(axis=(1, 2)) / area
    mx = (marker * xs).sum(axis=(1, 2)) / np.maximum(marker.sum(axis=(1, 2)), 1)
    my = (marker * ys).sum(axis=(1, 2)) / np.maximum(marker.sum(axis=(1, 2)), 1)
    angle = np.unwrap(np.arctan2(my - cy, mx - cx))
    return {"x": cx, "y": cy, "area": area.astype(float), "angle": angle}


def test_classes_are_sorted_and_pairs_cover_the_reversible_ones() -> None:
    assert sorted(set(SYNTHETIC_CLASSES)) == SYNTHETIC_CLASSES
    paired = [name for pair in REVERSED_PAIRS for name in pair]
    assert len(paired) == len(set(paired)) == 8
    assert set(SYNTHETIC_CLASSES) - set(paired) == {"bounce", "still"}


@pytest.mark.parametrize(("forward", "backward"), REVERSED_PAIRS)
def test_reversed_class_is_the_same_frames_in_reverse(forward: str, backward: str) -> None:
    ahead = render_video(forward, rng(3), size=64, num_frames=12, **KNOBS)
    behind = render_video(backward, rng(3), size=64, num_frames=12, **KNOBS)
    np.testing.assert_array_equal(behind, ahead[::-1])
    assert sorted(f.tobytes() for f in ahead) == sorted(f.tobytes() for f in behind)
    assert not np.array_equal(ahead, behind)


def test_same_seed_gives_identical_frames_and_another_seed_does_not() -> None:
    first = render_video("bounce", rng(7), size=64, num_frames=10, **KNOBS)
    again = render_video("bounce", rng(7), size=64, num_frames=10, **KNOBS)
    other = render_video("bounce", rng(8), size=64, num_frames=10, **KNOBS)
    assert first.dtype == np.uint8 and first.shape == (10, 64, 64, 3)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_class_shows_its_motion(seed: int) -> None:
    tracks = {
        cls: actor_tracks(render_video(cls, rng(seed), size=(96, 128), num_frames=16))
        for cls in SYNTHETIC_CLASSES
    }
    width, height = 128, 96
    assert tracks["move_right"]["x"][-1] - tracks["move_right"]["x"][0] > 0.3 * width
    assert tracks["move_left"]["x"][-1] - tracks["move_left"]["x"][0] < -0.3 * width
    assert tracks["move_down"]["y"][-1] - tracks["move_down"]["y"][0] > 0.3 * height
    assert tracks["move_up"]["y"][-1] - tracks["move_up"]["y"][0] < -0.3 * height
    assert tracks["grow"]["area"][-1] > 2.5 * tracks["grow"]["area"][0]
    assert tracks["shrink"]["area"][-1] < tracks["shrink"]["area"][0] / 2.5
    assert np.ptp(tracks["still"]["x"]) < 0.5 and np.ptp(tracks["still"]["y"]) < 0.5
    bounce_steps = np.sign(np.diff(tracks["bounce"]["y"]))
    assert (np.diff(bounce_steps[bounce_steps != 0]) != 0).sum() >= 2
    assert np.ptp(tracks["bounce"]["y"]) > 0.25 * height
    for cls, turn in (("rotate_clockwise", 1), ("rotate_anticlockwise", -1)):
        angles = tracks[cls]["angle"]
        assert turn * (angles[-1] - angles[0]) > np.deg2rad(90)
        assert np.ptp(tracks[cls]["x"]) < 1.5 and np.ptp(tracks[cls]["y"]) < 1.5


@pytest.mark.parametrize("knob", ["clutter", "camera_motion", "occlusion"])
def test_each_difficulty_changes_the_video(knob: str) -> None:
    plain = render_video("move_right", rng(5), size=64, num_frames=12)
    hard = render_video("move_right", rng(5), size=64, num_frames=12, **{knob: 1.0})
    assert np.abs(hard.astype(np.int16) - plain).mean() > 3


def test_clutter_goes_behind_the_same_actor() -> None:
    plain = render_video("rotate_clockwise", rng(4), size=64, num_frames=12)
    cluttered = render_video("rotate_clockwise", rng(4), size=64, num_frames=12, clutter=1.0)
    body = plain.max(axis=3) > 140
    inside = body[:, 1:-1, 1:-1] & body[:, :-2, 1:-1] & body[:, 2:, 1:-1]
    inside &= body[:, 1:-1, :-2] & body[:, 1:-1, 2:]
    assert inside.sum() > 100
    core = np.pad(inside, ((0, 0), (1, 1), (1, 1)))
    np.testing.assert_array_equal(cluttered[core], plain[core])
    assert np.abs(cluttered[~body].astype(np.int16) - plain[~body]).mean() > 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clutter": 1.5}, "clutter must be between 0 and 1"),
        ({"camera_motion": -0.1}, "--camera-motion must be between 0 and 1"),
        ({"classes": ["move_left", "jump"]}, "unknown synthetic class 'jump'"),
        ({"classes": []}, "no synthetic classes"),
        ({"size": 8}, "too small"),
        ({"size": 33}, "--size 33x33: give even sides"),
        ({"num_frames": 1}, "frames"),
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_dataset(tmp_path / "out", 1, **{**SMALL, **options})
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "data"
    return generate_dataset(out, 2, seed=11, **KNOBS, **SMALL)


def test_dataset_has_decodable_mp4s_in_class_folders(small_dataset: Path) -> None:
    with small_dataset.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(SYNTHETIC_CLASSES)
    assert list(rows[0]) == ["path", "label", "group"]
    for row in rows:
        path = small_dataset.parent / row["path"]
        assert path.parent.name == row["label"]
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 48, 48)
            assert stream.average_rate == 15
            assert sum(1 for _ in container.decode(stream)) == 8

    manifest = read_manifest(small_dataset)
    assert manifest.classes == SYNTHETIC_CLASSES
    assert set(manifest.class_counts().values()) == {2}
    folder = read_manifest(small_dataset.parent)
    assert [(e.path.name, e.group) for e in folder] == [(e.path.name, e.group) for e in manifest]


def test_every_video_has_its_actor_boxes_beside_it(small_dataset: Path) -> None:
    root = small_dataset.parent
    videos = sorted(root.rglob("*.mp4"))
    assert len(videos) == 2 * len(SYNTHETIC_CLASSES)
    assert len(list(root.rglob("*.boxes.json"))) == len(videos)
    for video in videos:
        boxes = read_boxes(video)
        assert boxes.shape == (8, 4) and len(read_occluded(video)) == 8
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all()
        assert (boxes[:, 2:] >= boxes[:, :2]).all()
    right = read_boxes(root / "move_right" / "move_right_0001.mp4")
    left = read_boxes(root / "move_left" / "move_left_0001.mp4")
    np.testing.assert_array_equal(left, right[::-1])
    assert (right[-1, 0] + right[-1, 2]) > (right[0, 0] + right[0, 2])


def test_reversed_pairs_share_a_group_and_nothing_else_does(small_dataset: Path) -> None:
    manifest = read_manifest(small_dataset)
    members: dict[str, list[str]] = {}
    for entry in manifest:
        members.setdefault(entry.group, []).append(manifest.classes[entry.label])
    pairs = {frozenset(pair) for pair in REVERSED_PAIRS}
    for classes in members.values():
        if len(classes) == 2:
            assert frozenset(classes) in pairs
        else:
            assert classes in (["bounce"], ["still"])
    assert len(members) == 2 * (len(SYNTHETIC_CLASSES) - len(REVERSED_PAIRS))


def test_pair_files_hold_reversed_frames(small_dataset: Path) -> None:
    root = small_dataset.parent
    left = decode(root / "move_left" / "move_left_0001.mp4").astype(np.int16)
    right = decode(root / "move_right" / "move_right_0001.mp4").astype(np.int16)
    assert np.abs(left - right[::-1]).mean() < 4
    assert np.abs(left - right).mean() > 2 * np.abs(left - right[::-1]).mean()


@pytest.mark.slow
def test_same_seed_gives_byte_identical_files_in_another_process(tmp_path: Path) -> None:
    # A second process, because an encoder that reads uninitialised memory can repeat itself
    # within one; 16 frames at 64 pixels is where x264's macroblock tree did that.
    options = {"seed": 11, "size": 64, "num_frames": 16, "progress": False, **KNOBS}
    options["classes"] = ["bounce", "move_left", "move_right"]
    here = generate_dataset(tmp_path / "here", 2, **options).parent
    there = tmp_path / "there"
    code = (
        "from resaction.data.synthetic import generate_dataset\n"
        f"generate_dataset({str(there)!r}, 2, **{options!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert digests(there) == digests(here)


def test_video_depends_on_seed_and_index_only(small_dataset: Path, tmp_path: Path) -> None:
    name = "move_left/move_left_0000.mp4"
    subset = generate_dataset(
        tmp_path / "subset", 1, seed=11, classes=["move_left"], **KNOBS, **SMALL
    )
    assert digests(subset.parent)[name] == digests(small_dataset.parent)[name]
    other = generate_dataset(
        tmp_path / "other", 1, seed=12, classes=["move_left"], **KNOBS, **SMALL
    )
    assert digests(other.parent)[name] != digests(small_dataset.parent)[name]


def test_output_folder_rules(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no synthetic dataset"):
        generate_dataset(foreign, 1, overwrite=True, **SMALL)

    out = tmp_path / "out"
    generate_dataset(out, 2, classes=["move_left", "still"], **SMALL)
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="--overwrite"):
        generate_dataset(out, 1, classes=["grow"], **SMALL)
    generate_dataset(out, 1, classes=["grow"], overwrite=True, **SMALL)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "groups.csv",
        "grow/grow_0000.boxes.json",
        "grow/grow_0000.mp4",
        "manifest.csv",
        "notes.txt",
        "synth.json",
    ]

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write to output folder"):
        generate_dataset(blocker / "data", 1, **SMALL)
