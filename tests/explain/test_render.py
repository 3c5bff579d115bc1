"""Drawing an explanation: the heat map lands where the model's crop lies, the right way up."""

from __future__ import annotations

import numpy as np

from resaction.explain.render import _holds, overlay


def test_overlay_puts_the_heat_inside_the_crop_box_the_right_way_round() -> None:
    frame = np.zeros((40, 80, 3), np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0  # the crop's top-left cell is hot
    out = overlay(frame, heat, (0.25, 0.25, 0.75, 0.75))
    assert out[:9].max() == 0 and out[:, :19].max() == 0  # nothing outside box and outline
    red, _, blue = (int(v) for v in out[11, 21])  # top-left inside the box: JET's hot end
    assert red > 40 and blue < red
    red, _, blue = (int(v) for v in out[28, 58])  # bottom-right: JET's cold end, blue
    assert blue > 40 and red == 0
    assert tuple(out[10, 40]) == (255, 255, 255)  # the crop is outlined


def test_frames_are_held_for_their_time_and_at_least_a_moment() -> None:
    # 10 fps output: a dense clip's 1/15-s frames are held 0.3 s, sparse ones their real gap
    assert _holds(np.array([0.0, 1 / 15, 2 / 15]), 15.0) == [3, 3, 3]
    assert _holds(np.array([0.5, 1.75, 3.0]), 25.0) == [12, 12, 12]
    assert _holds(np.array([2.0]), 25.0) == [3]
