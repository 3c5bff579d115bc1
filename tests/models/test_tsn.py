from __future__ import annotations

import pytest
import torch

from resaction.data.transforms import IMAGENET_MEAN
from resaction.errors import ModelError
from resaction.models import create_model, default_preprocess


def _tsn_and_frame_model(consensus: str = "avg") -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    image_model = create_model("resnet18", num_classes=5).eval()
    tsn = create_model("tsn_resnet18", num_classes=5, consensus=consensus, num_segments=3).eval()
    tsn.load_state_dict(image_model.state_dict(), strict=False)
    return tsn, image_model


@pytest.mark.parametrize(("consensus", "pool"), [("avg", torch.mean), ("max", torch.amax)])
def test_consensus_pools_the_frame_logits_of_the_2d_network(consensus: str, pool) -> None:
    tsn, image_model = _tsn_and_frame_model(consensus)
    clip = torch.randn(2, 3, 3, 32, 32)

    with torch.no_grad():
        frames = torch.stack([image_model(clip[:, :, t]) for t in range(3)], dim=1)
        logits = tsn(clip)

    torch.testing.assert_close(logits, pool(frames, dim=1), rtol=0, atol=1e-5)


def test_output_ignores_the_order_of_segments() -> None:
    tsn, _ = _tsn_and_frame_model()
    clip = torch.randn(1, 3, 3, 32, 32)

    with torch.no_grad():
        torch.testing.assert_close(tsn(clip), tsn(clip.flip(2)), rtol=0, atol=1e-5)


def test_weighted_consensus_starts_as_the_average_and_learns_per_segment_weights() -> None:
    tsn, image_model = _tsn_and_frame_model("weighted")
    clip = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        frames = torch.stack([image_model(clip[:, :, t]) for t in range(3)], dim=1)
        torch.testing.assert_close(tsn(clip), frames.mean(dim=1), rtol=0, atol=1e-5)

    tsn(clip).logsumexp(dim=1).sum().backward()

    assert tsn.consensus.weight.shape == (3,)
    assert tsn.consensus.weight.grad is not None
    assert tsn.consensus.weight.grad.abs().sum() > 0
    assert tsn.consensus in tsn.head_modules()


def test_weighted_consensus_refuses_another_number_of_segments() -> None:
    tsn, _ = _tsn_and_frame_model("weighted")

    with pytest.raises(ModelError, match="3 frames, got 4"):
        tsn(torch.randn(1, 3, 4, 32, 32))


def test_unknown_consensus_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="consensus 'median'"):
        create_model("tsn_resnet18", consensus="median")


def test_dropout_acts_only_in_training() -> None:
    torch.manual_seed(0)
    tsn = create_model("tsn_resnet18", num_classes=4, dropout=0.9)
    clip = torch.randn(1, 3, 2, 32, 32)

    tsn.eval()
    with torch.no_grad():
        assert torch.equal(tsn(clip), tsn(clip))
    tsn.train()
    with torch.no_grad():
        assert not torch.equal(tsn(clip), tsn(clip))


def test_preprocessing_samples_segments_with_imagenet_statistics() -> None:
    preprocess = default_preprocess("tsn_resnet50")

    assert preprocess["sampling"] == "segments"
    assert preprocess["clip_len"] == 8
    assert preprocess["mean"] == list(IMAGENET_MEAN)
    assert preprocess["crop"] < preprocess["resize"]
