"""The clip an explanation is about: its time range and where the model's crop lies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resaction.data.spec import ClipSpec
from resaction.data.transforms import CenterCrop, Resize
from resaction.errors import ConfigError
from resaction.explain.clip import crop_box, read_clip, time_range


def test_time_range_defaults_and_refusals() -> None:
    assert time_range(10.0, None, None) == (0.0, 10.0)
    assert time_range(10.0, None, None, window_s=4.0) == (3.0, 7.0)  # the model's window, centred
    assert time_range(3.0, None, None, window_s=4.0) == (0.0, 3.0)
    assert time_range(10.0, 2.0, None) == (2.0, 10.0)
    assert time_range(10.0, None, 5.0, window_s=4.0) == (0.0, 5.0)
    with pytest.raises(ConfigError, match=r"outside a\.mp4 \(0 to 10\.000 s\); give a range"):
        time_range(10.0, 8.0, 12.0, name="a.mp4")
    with pytest.raises(ConfigError, match="outside"):
        time_range(10.0, -1.0, 2.0)
    with pytest.raises(ConfigError, match="--start 5 s is not before --end 2 s"):
        time_range(10.0, 5.0, 2.0)


def test_crop_box_follows_resize_and_centre_crop() -> None:
    # 48 x 64 -> short side 36: 36 x 48; the 32-px centre crop starts 2 rows and 8 columns in.
    box = crop_box([Resize(36), CenterCrop(32)], 48, 64)
    assert np.allclose(box, (2 / 36, 8 / 48, 34 / 36, 40 / 48))
    # a picture narrower than the crop is padded: the crop reaches past its sides
    box = crop_box([CenterCrop((20, 40))], 20, 30)
    assert np.allclose(box, (0.0, -5 / 30, 1.0, 35 / 30))
    assert crop_box([], 20, 30) == (0.0, 0.0, 1.0, 1.0)


def test_read_clip_is_the_models_view_of_the_range(small_video: Path) -> None:
    spec = ClipSpec.from_dict({"clip_len": 4, "sampling": "segments", "resize": 36, "crop": 32})
    clip = read_clip(spec, small_video, start=0.4, end=0.8)
    assert tuple(clip.inputs.shape) == (3, 4, 32, 32)
    assert clip.indices.tolist() == [11, 13, 16, 18]  # segments' centres within frames 10-19
    assert np.allclose(clip.times, clip.indices / 25)
    assert (clip.start, clip.end) == (0.4, 0.8)
