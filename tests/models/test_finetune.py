from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from resaction.errors import ModelError
from resaction.models import create_model
from resaction.models.finetune import (
    backbone_and_head,
    freeze_backbone,
    freeze_batchnorm,
    is_frozen_batchnorm,
    param_groups,
    replace_classifier,
)

# One 2D model with a temporal head and one 3D model from the other family: the helpers are generic.
MODELS = ["lrcn_resnet18", "tsm_resnet18", "r3d_18"]


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", MODELS)
def test_replace_classifier_reports_dropped_and_new_keys(name: str) -> None:
    model = create_model(name, num_classes=10)
    trunk_before = model.layer1[0].conv1 if name != "r3d_18" else model.stem[0]
    weight_before = trunk_before.weight.clone()

    change = replace_classifier(model, 4)

    assert sorted(change.dropped) == ["fc.bias", "fc.weight"]
    assert sorted(change.new) == ["fc.bias", "fc.weight"]
    assert model.get_classifier().out_features == 4
    assert torch.equal(trunk_before.weight, weight_before)
    with pytest.raises(ModelError):
        replace_classifier(model, 0)


@pytest.mark.parametrize("name", MODELS)
def test_freeze_backbone_leaves_the_head_and_the_last_stages_trainable(name: str) -> None:
    model = create_model(name, num_classes=3)
    head = {
        n for n, p in model.named_parameters() if any(p is q for q in backbone_and_head(model)[1])
    }

    assert freeze_backbone(model, 0) == []
    assert _trainable(model) == head

    assert freeze_backbone(model, 2) == ["layer3", "layer4"]
    trainable = _trainable(model)
    assert head < trainable
    assert all(n in head or n.startswith(("layer3.", "layer4.")) for n in trainable)
    assert any(n.startswith("layer3.") for n in trainable)

    freeze_backbone(model, 5)
    assert _trainable(model) == {n for n, _ in model.named_parameters()}
    with pytest.raises(ModelError, match="between 0 and 5"):
        freeze_backbone(model, 6)


def test_frozen_parameters_get_no_gradient() -> None:
    model = create_model("tsm_resnet18", num_classes=3)
    freeze_backbone(model, 1)

    model(torch.randn(2, 3, 2, 32, 32)).sum().backward()

    assert model.layer3[0].conv1.weight.grad is None
    assert model.layer4[0].conv1.weight.grad is not None
    assert model.fc.weight.grad is not None


def test_param_groups_give_the_backbone_a_smaller_learning_rate() -> None:
    model = create_model("lrcn_resnet18", num_classes=3)
    freeze_backbone(model, 1)

    groups = param_groups(model, lr=0.01, backbone_lr_mult=0.1)

    by_name = {group["name"]: group for group in groups}
    assert by_name["head"]["lr"] == 0.01
    assert by_name["backbone"]["lr"] == pytest.approx(0.001)
    grouped = [p for group in groups for p in group["params"]]
    assert len(grouped) == len({id(p) for p in grouped})
    assert {id(p) for p in grouped} == {id(p) for p in model.parameters() if p.requires_grad}
    assert any(p is model.rnn.weight_hh_l0 for p in by_name["head"]["params"])
    torch.optim.SGD(groups, lr=0.01)


def test_param_groups_exempt_norms_and_biases_from_weight_decay() -> None:
    model = create_model("resnet18", num_classes=3)

    groups = param_groups(model, lr=0.1, weight_decay=1e-4)

    decays = {group["name"]: group["weight_decay"] for group in groups}
    assert decays == {
        "backbone": 1e-4,
        "backbone_no_decay": 0.0,
        "head": 1e-4,
        "head_no_decay": 0.0,
    }
    no_decay = next(g for g in groups if g["name"] == "backbone_no_decay")["params"]
    assert all(p.dim() == 1 for p in no_decay)
    assert any(p is model.bn1.weight for p in no_decay)


@pytest.mark.parametrize("name", ["tsn_resnet18", "r3d_18"])
def test_frozen_batchnorm_survives_train_and_keeps_its_statistics(name: str) -> None:
    model = create_model(name, num_classes=3)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    assert freeze_batchnorm(model) == len(norms)
    model.train()
    before = norms[0].running_mean.clone()
    model(torch.randn(2, 3, 2, 32, 32)).sum().backward()

    assert model.training and all(not norm.training for norm in norms)
    assert torch.equal(norms[0].running_mean, before)
    assert all(norm.weight.grad is None for norm in norms)
    assert model.fc.weight.grad is not None
    clone = copy.deepcopy(model).train()
    clone_norms = [m for m in clone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(is_frozen_batchnorm(m) and not m.training for m in clone_norms)


def test_unfrozen_batchnorm_updates_its_statistics() -> None:
    model = create_model("tsn_resnet18", num_classes=3).train()
    before = model.bn1.running_mean.clone()

    model(torch.randn(2, 3, 2, 32, 32))

    assert not torch.equal(model.bn1.running_mean, before)
