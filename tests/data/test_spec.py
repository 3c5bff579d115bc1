"""The clip specification and the view protocol: plain dicts in files, typed in code."""

from __future__ import annotations

import pytest

from resaction.data.sampling import SegmentSampler, UniformClipSampler
from resaction.data.spec import DEFAULT_VIEWS, ClipSpec, ViewProtocol
from resaction.errors import ConfigError
from resaction.models import default_preprocess, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_model_preprocess_round_trips(name: str) -> None:
    preprocess = default_preprocess(name)
    spec = ClipSpec.from_dict(preprocess)
    assert spec.to_dict() == preprocess
    assert ClipSpec.from_dict(spec.to_dict()) == spec


def test_unknown_keys_are_kept_as_options() -> None:
    stored = {**default_preprocess("tsn_resnet18"), "antialias": False, "direction_blind": True}
    spec = ClipSpec.from_dict(stored)
    assert spec.options == {"antialias": False, "direction_blind": True}
    assert spec.to_dict() == stored


def test_the_training_window_is_kept_when_recorded() -> None:
    stored = {**default_preprocess("tsn_resnet18"), "window_s": 4}
    spec = ClipSpec.from_dict(stored)
    assert spec.window_s == 4.0 and spec.options == {}
    assert spec.to_dict() == {**stored, "window_s": 4.0}
    assert ClipSpec.from_dict(default_preprocess("tsn_resnet18")).window_s is None
    assert "window_s" not in ClipSpec().to_dict()


def test_the_spec_builds_the_test_views() -> None:
    spec = ClipSpec.from_dict(default_preprocess("r3d_18"))
    sampler = spec.sampler(train=False, views=ViewProtocol(num_clips=4))
    assert isinstance(sampler, UniformClipSampler) and sampler.num_clips == 4
    assert spec.transform(train=False, views=ViewProtocol(num_crops=3)).num_views == 3
    segments = ClipSpec.from_dict(default_preprocess("tsn_resnet18")).sampler(train=True)
    assert isinstance(segments, SegmentSampler)


def test_one_default_protocol() -> None:
    assert DEFAULT_VIEWS.to_dict() == {"num_clips": 3, "num_crops": 1, "aggregate": "mean_softmax"}
    assert DEFAULT_VIEWS.updated({"num_clips": 5}).num_views == 5
    assert ViewProtocol.from_dict({"num_clips": "2", "checkpoint": "x"}).num_clips == 2


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ({"num_crops": 2}, "num_crops must be 1 or 3"),
        ({"num_clips": 0}, "num_clips must be at least 1"),
        ({"aggregate": "max"}, "unsupported aggregate"),
    ],
)
def test_bad_protocol_is_one_line(protocol: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ViewProtocol.from_dict(protocol)
