"""Fine-tuning helpers that work on every resaction model, 2D or 3D.

They rely only on the common model API: ``get_classifier()`` / ``reset_classifier(n)``, an optional
``head_modules()`` (what a pretrained trunk does not provide; defaults to the classifier), and
stages named ``layer1``..``layer4`` after a stem (``stem``, or ``conv1``/``bn1`` in 2D ResNets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from resaction.errors import ModelError
from resaction.models.layers import module_name, split_parameters

STAGES = ("layer1", "layer2", "layer3", "layer4")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def head_modules(model: nn.Module) -> list[nn.Module]:
    """The modules a pretrained trunk does not provide: the classifier and any new temporal head."""
    if hasattr(model, "head_modules"):
        return list(model.head_modules())
    if hasattr(model, "get_classifier"):
        return [model.get_classifier()]
    raise ModelError(f"{type(model).__name__} has no get_classifier(); it is not a resaction model")


def backbone_and_head(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters, head parameters); every parameter is in exactly one."""
    return split_parameters(model, head_modules(model))


@dataclass(frozen=True)
class HeadChange:
    """What replacing the classifier did: state-dict keys dropped and keys newly initialised."""

    dropped: list[str]
    new: list[str]
    num_classes: int


def replace_classifier(model: nn.Module, num_classes: int) -> HeadChange:
    """Give ``model`` a fresh classifier for ``num_classes`` classes and say what changed."""
    if num_classes < 1:
        raise ModelError(f"num_classes must be at least 1 (got {num_classes})")
    old = module_name(model, model.get_classifier())
    dropped = [k for k in model.state_dict() if k.startswith(f"{old}.")]
    model.reset_classifier(num_classes)
    new = module_name(model, model.get_classifier())
    added = [k for k in model.state_dict() if k.startswith(f"{new}.")]
    return HeadChange(dropped=dropped, new=added, num_classes=num_classes)


def stages(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The trunk's stages in order, stem first: ``[("stem", [...]), ("layer1", [...]), ...]``."""
    children = dict(model.named_children())
    if "stem" in children:
        stem = [children["stem"]]
    else:
        stem = [children[n] for n in ("conv1", "bn1") if n in children]
    found = [(n, [children[n]]) for n in STAGES if n in children]
    if not stem or not found:
        raise ModelError(
            f"{type(model).__name__} has no ResNet stages (stem, layer1..layer4) to freeze"
        )
    return [("stem", stem), *found]


def freeze_backbone(model: nn.Module, trainable_stages: int = 0) -> list[str]:
    """Freeze every parameter except the head and the last ``trainable_stages`` stages.

    Returns the names of the stages left trainable. ``trainable_stages`` counts back from
    ``layer4`` (1 = layer4, 4 = layer1..4, 5 = everything including the stem).
    """
    all_stages = stages(model)
    if not 0 <= trainable_stages <= len(all_stages):
        raise ModelError(
            f"trainable_stages must be between 0 and {len(all_stages)} (got {trainable_stages})"
        )
    trainable = all_stages[len(all_stages) - trainable_stages :] if trainable_stages else []
    keep = {id(p) for m in head_modules(model) for p in m.parameters()}
    keep |= {id(p) for _, modules in trainable for m in modules for p in m.parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    return [name for name, _ in trainable]


def param_groups(
    model: nn.Module,
    lr: float,
    backbone_lr_mult: float = 0.1,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimiser groups for discriminative learning rates: the head at ``lr``, the backbone at
    ``lr * backbone_lr_mult``. Frozen parameters are left out. With ``weight_decay``, each part
    is split again so norm scales and biases (1-D tensors) get no decay; without it the
    optimiser's own default applies.
    """
    backbone, head = backbone_and_head(model)
    groups: list[dict[str, Any]] = []
    for part, params, part_lr in (
        ("backbone", backbone, lr * backbone_lr_mult),
        ("head", head, lr),
    ):
        params = [p for p in params if p.requires_grad]
        if weight_decay is None:
            groups.append({"name": part, "params": params, "lr": part_lr})
            continue
        decayed = [p for p in params if p.dim() > 1]
        flat = [p for p in params if p.dim() <= 1]
        groups += [
            {"name": part, "params": decayed, "lr": part_lr, "weight_decay": weight_decay},
            {"name": f"{part}_no_decay", "params": flat, "lr": part_lr, "weight_decay": 0.0},
        ]
    return [group for group in groups if group["params"]]


def _frozen_train(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train()`` of a frozen norm layer: it stays in eval mode whatever the parent asks."""
    return nn.Module.train(self, False)


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm: running statistics fixed (eval mode) and affine weights without
    gradient, surviving later ``model.train()`` calls. Returns how many layers were frozen.

    For fine-tuning with small batches, where fresh batch statistics are noisier than the
    pretrained ones.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, _NORMS):
            module.train = _frozen_train.__get__(module)  # type: ignore[method-assign]
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)
            count += 1
    return count


def is_frozen_batchnorm(module: nn.Module) -> bool:
    return getattr(module.train, "__func__", None) is _frozen_train
