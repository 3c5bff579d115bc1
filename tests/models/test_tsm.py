from __future__ import annotations

import pytest
import torch

from resaction.errors import ModelError
from resaction.models import create_model
from resaction.models.tsm import TemporalShift
from resaction.models.weights import load_weights


def _frame_numbered(n: int, t: int, c: int) -> torch.Tensor:
    """(N*T, C, 2, 2) frames whose every value is its frame number + 1 (0 marks padding)."""
    frame = torch.arange(1, t + 1, dtype=torch.float32).view(1, t, 1, 1, 1)
    return frame.expand(n, t, c, 2, 2).flatten(0, 1).clone()


def _frame_of_channel(out: torch.Tensor, t: int, channel: int) -> list[int]:
    return out.unflatten(0, (-1, t))[0, :, channel, 0, 0].long().tolist()


def test_bidirectional_shift_moves_one_fold_each_way() -> None:
    shift = TemporalShift(fold_div=8)
    shift.num_frames = 4

    out = shift(_frame_numbered(2, 4, 16))

    assert _frame_of_channel(out, 4, 0) == [0, 1, 2, 3]  # from the previous frame
    assert _frame_of_channel(out, 4, 1) == [0, 1, 2, 3]
    assert _frame_of_channel(out, 4, 2) == [2, 3, 4, 0]  # from the next frame
    assert _frame_of_channel(out, 4, 3) == [2, 3, 4, 0]
    assert all(_frame_of_channel(out, 4, c) == [1, 2, 3, 4] for c in range(4, 16))


def test_past_shift_uses_only_earlier_frames_and_fold_div_sets_the_share() -> None:
    shift = TemporalShift(fold_div=4, mode="past")
    shift.num_frames = 3

    out = shift(_frame_numbered(1, 3, 8))

    assert _frame_of_channel(out, 3, 0) == [0, 1, 2]
    assert _frame_of_channel(out, 3, 1) == [0, 1, 2]
    assert all(_frame_of_channel(out, 3, c) == [1, 2, 3] for c in range(2, 8))


def test_online_shift_over_single_frames_equals_the_past_shift_over_the_clip() -> None:
    clip = torch.randn(2 * 5, 16, 3, 3)
    past = TemporalShift(mode="past")
    past.num_frames = 5
    online = TemporalShift(mode="online")
    online.num_frames = 1

    stepped = [online(frame) for frame in clip.unflatten(0, (2, 5)).unbind(1)]

    torch.testing.assert_close(torch.stack(stepped, 1).flatten(0, 1), past(clip), rtol=0, atol=0)


def test_online_model_frame_by_frame_equals_the_past_model_on_the_clip() -> None:
    torch.manual_seed(0)
    past = create_model("tsm_resnet18", num_classes=5, shift_mode="past").eval()
    online = create_model("tsm_resnet18", num_classes=5, shift_mode="online").eval()
    online.load_state_dict(past.state_dict())
    clip = torch.randn(2, 3, 4, 32, 32)

    with torch.no_grad():
        expected = past.forward_frames(clip)
        streamed = torch.stack([online(clip[:, :, t : t + 1]) for t in range(4)], dim=1)
        online.reset()
        restarted = online(clip[:, :, :1])

    torch.testing.assert_close(streamed, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(restarted, expected[:, 0], rtol=0, atol=1e-5)


def test_online_shift_asks_for_reset_when_the_batch_changes() -> None:
    online = TemporalShift(mode="online")
    online(torch.randn(2, 16, 3, 3))

    with pytest.raises(ModelError, match="reset"):
        online(torch.randn(1, 16, 3, 3))


def test_set_shift_mode_switches_a_trained_model_to_streaming() -> None:
    torch.manual_seed(0)
    model = create_model("tsm_resnet18", num_classes=3, shift_mode="past").eval()
    clip = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_frames(clip)[:, -1]
        model.set_shift_mode("online")
        for t in range(3):
            last = model(clip[:, :, t : t + 1])

    assert {shift.mode for shift in model.shifts()} == {"online"}
    torch.testing.assert_close(last, expected, rtol=0, atol=1e-5)


def test_shift_makes_the_output_depend_on_frame_order() -> None:
    torch.manual_seed(0)
    model = create_model("tsm_resnet18", num_classes=4).eval()
    clip = torch.randn(1, 3, 4, 32, 32)

    with torch.no_grad():
        assert not torch.allclose(model(clip), model(clip.flip(2)), atol=1e-4)


def test_inplace_placement_also_shifts_the_shortcut() -> None:
    torch.manual_seed(0)
    residual = create_model("tsm_resnet18", num_classes=4, placement="residual").eval()
    inplace = create_model("tsm_resnet18", num_classes=4, placement="inplace").eval()
    inplace.load_state_dict(residual.state_dict())
    clip = torch.randn(1, 3, 4, 32, 32)

    with torch.no_grad():
        assert not torch.allclose(residual(clip), inplace(clip), atol=1e-4)
    with pytest.raises(ModelError, match="placement"):
        create_model("tsm_resnet18", placement="after")


@pytest.mark.parametrize(
    ("tsm", "resnet"), [("tsm_resnet18", "resnet18"), ("tsm_resnet50", "resnet50")]
)
def test_has_no_parameters_beyond_the_2d_resnet(tsm: str, resnet: str) -> None:
    shapes = {k: v.shape for k, v in create_model(tsm, num_classes=1000).state_dict().items()}
    expected = {k: v.shape for k, v in create_model(resnet).state_dict().items()}

    assert shapes == expected


def test_loads_a_2d_resnet_state_dict_replacing_only_the_classifier() -> None:
    resnet = create_model("resnet18")
    tsm = create_model("tsm_resnet18", num_classes=7)

    report = load_weights(tsm, resnet.state_dict())

    assert report.replaced_head
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"]
    assert report.missing == [] and report.unexpected == []
    torch.testing.assert_close(tsm.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
