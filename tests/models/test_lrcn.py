from __future__ import annotations

import pytest
import torch

from resaction.errors import ModelError
from resaction.models import create_model


def _features_and_states(model, clip):
    frames = clip.transpose(1, 2).flatten(0, 1)
    features = model.forward_features(frames).unflatten(0, (clip.shape[0], clip.shape[2]))
    return model.rnn(features)


@pytest.mark.parametrize(
    "options",
    [
        {"rnn": "lstm"},
        {"rnn": "gru", "pool": "last"},
        {"rnn": "lstm", "num_layers": 2, "bidirectional": True, "pool": "last"},
        {"rnn": "gru", "hidden_size": 32, "bidirectional": True},
    ],
)
def test_options_build_and_train(options: dict) -> None:
    model = create_model("lrcn_resnet18", num_classes=3, **options)
    clip = torch.randn(2, 3, 3, 32, 32)

    logits = model(clip)
    logits.sum().backward()

    assert logits.shape == (2, 3)
    assert model.rnn.weight_ih_l0.grad is not None
    assert model.conv1.weight.grad is not None


def test_mean_pooling_classifies_the_mean_of_the_rnn_outputs() -> None:
    torch.manual_seed(0)
    model = create_model("lrcn_resnet18", num_classes=4, hidden_size=16, pool="mean").eval()
    clip = torch.randn(2, 3, 3, 32, 32)

    with torch.no_grad():
        outputs, _ = _features_and_states(model, clip)
        torch.testing.assert_close(model(clip), model.fc(outputs.mean(dim=1)))


def test_last_pooling_reads_the_final_state_of_both_directions() -> None:
    torch.manual_seed(0)
    model = create_model(
        "lrcn_resnet18", num_classes=4, hidden_size=16, bidirectional=True, pool="last"
    ).eval()
    clip = torch.randn(2, 3, 3, 32, 32)

    with torch.no_grad():
        outputs, _ = _features_and_states(model, clip)
        forward_last, backward_last = outputs[:, -1, :16], outputs[:, 0, 16:]
        expected = model.fc(torch.cat([forward_last, backward_last], dim=1))
        torch.testing.assert_close(model(clip), expected)


def test_output_depends_on_the_order_of_frames() -> None:
    torch.manual_seed(0)
    model = create_model("lrcn_resnet18", num_classes=4, pool="last").eval()
    clip = torch.randn(1, 3, 4, 32, 32)

    with torch.no_grad():
        assert not torch.allclose(model(clip), model(clip.flip(2)), atol=1e-4)


def test_rnn_belongs_to_the_head() -> None:
    model = create_model("lrcn_resnet18", num_classes=4)
    head = {id(p) for p in model.head_parameters()}

    assert all(id(p) in head for p in model.rnn.parameters())
    assert id(model.conv1.weight) not in head


@pytest.mark.parametrize(("option", "value"), [("rnn", "transformer"), ("pool", "max")])
def test_unknown_options_are_model_errors(option: str, value: str) -> None:
    with pytest.raises(ModelError, match=value):
        create_model("lrcn_resnet18", **{option: value})
