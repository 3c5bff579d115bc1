from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from resaction.data.synthetic import SYNTHETIC_CLASSES, render_scene, render_video
from resaction.data.synthetic_actor import boxes_path, read_boxes, write_boxes
from resaction.errors import DatasetError

SIZE = (48, 64)
FRAMES = 8
BRIGHT = 140
"""Without clutter the background is dim (value <= 0.45 * 255) and the actor bright (>= 0.6)."""


def scene(cls: str, seed: int, **knobs: float):
    return render_scene(cls, np.random.default_rng(seed), size=SIZE, num_frames=FRAMES, **knobs)


def centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]], axis=1) / 2


def test_scene_frames_are_render_video_frames_unchanged() -> None:
    # Pinned before the boxes existed: computing them must not move a single byte of the video.
    knobs = {"clutter": 1.0, "camera_motion": 1.0, "occlusion": 1.0}
    frames = render_video("move_left", np.random.default_rng(21), size=SIZE, num_frames=8, **knobs)
    digest = hashlib.sha256(frames.tobytes()).hexdigest()
    assert digest == "84d1298b2792c236e564f8acd0cf62664e2bbc9205a837a55a918d103421b645"
    np.testing.assert_array_equal(scene("move_left", 21, **knobs).frames, frames)


@pytest.mark.parametrize("camera_motion", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_box_holds_the_actor_and_little_else(seed: int, camera_motion: float) -> None:
    slack = 3 if camera_motion == 0 else 5
    for cls in SYNTHETIC_CLASSES:
        found = scene(cls, seed, camera_motion=camera_motion)
        assert found.boxes.shape == (FRAMES, 4) and found.boxes.dtype == np.int64
        assert found.occluded.shape == (FRAMES,) and not found.occluded.any()
        bright = found.frames.max(axis=3) > BRIGHT
        for t, (x0, y0, x1, y1) in enumerate(found.boxes):
            assert 0 <= x0 < x1 <= SIZE[1] and 0 <= y0 < y1 <= SIZE[0]
            inside = np.zeros(SIZE, bool)
            inside[y0:y1, x0:x1] = True
            assert bright[t].sum() > 5
            assert not (bright[t] & ~inside).any(), f"{cls} frame {t}: actor outside its box"
            ys, xs = np.nonzero(bright[t])
            gaps = np.array([xs.min() - x0, ys.min() - y0, x1 - 1 - xs.max(), y1 - 1 - ys.max()])
            at_edge = np.array([x0 == 0, y0 == 0, x1 == SIZE[1], y1 == SIZE[0]])
            assert (gaps[~at_edge] <= slack).all(), f"{cls} frame {t}: box too loose {gaps}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_centre_moves_as_the_class_says(seed: int) -> None:
    height, width = SIZE
    path = {cls: centres(scene(cls, seed).boxes) for cls in SYNTHETIC_CLASSES}
    assert path["move_right"][-1, 0] - path["move_right"][0, 0] > 0.25 * width
    assert path["move_left"][-1, 0] - path["move_left"][0, 0] < -0.25 * width
    assert path["move_down"][-1, 1] - path["move_down"][0, 1] > 0.25 * height
    assert path["move_up"][-1, 1] - path["move_up"][0, 1] < -0.25 * height
    for cls in ("move_right", "move_left"):
        assert np.ptp(path[cls][:, 1]) < 0.15 * height
    assert np.ptp(path["still"], axis=0).max() <= 1
    grow = scene("grow", seed).boxes
    area = (grow[:, 2] - grow[:, 0]) * (grow[:, 3] - grow[:, 1])
    assert area[-1] > 2 * area[0]


def test_reversed_class_has_the_boxes_reversed() -> None:
    forward, backward = scene("grow", 4, occlusion=1.0), scene("shrink", 4, occlusion=1.0)
    np.testing.assert_array_equal(backward.boxes, forward.boxes[::-1])
    np.testing.assert_array_equal(backward.occluded, forward.occluded[::-1])


def test_clutter_and_occlusion_leave_the_boxes_alone() -> None:
    plain = scene("move_down", 6)
    hard = scene("move_down", 6, clutter=1.0, occlusion=1.0)
    np.testing.assert_array_equal(hard.boxes, plain.boxes)


def test_occluded_share_is_where_the_actor_was_covered() -> None:
    for seed in range(4):
        plain = scene("move_right", seed)
        hidden = scene("move_right", seed, occlusion=1.0)
        assert hidden.occluded.max() > 0.05
        assert ((hidden.occluded >= 0) & (hidden.occluded <= 1)).all()
        actor = plain.frames.max(axis=3) > BRIGHT
        changed = (hidden.frames != plain.frames).any(axis=3)
        covered = (changed & actor).sum(axis=(1, 2)) / actor.sum(axis=(1, 2))
        np.testing.assert_allclose(hidden.occluded, covered, atol=0.1)
        assert not covered[hidden.occluded == 0].any()


def test_sidecar_round_trip_and_a_missing_one(tmp_path: Path) -> None:
    video = tmp_path / "move_left" / "move_left_0003.mp4"
    video.parent.mkdir()
    boxes = np.array([[1, 2, 10, 12], [3, 2, 12, 12]])
    written = write_boxes(video, boxes, np.array([0.0, 0.25]), (48, 64))
    assert written == boxes_path(video) == video.with_name("move_left_0003.boxes.json")
    np.testing.assert_array_equal(read_boxes(video), boxes)
    assert read_boxes(str(video)).dtype == np.int64
    with pytest.raises(DatasetError, match=r"no actor boxes .*other\.boxes\.json is missing"):
        read_boxes(tmp_path / "other.mp4")
