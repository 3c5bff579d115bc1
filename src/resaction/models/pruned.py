"""Rebuild a structurally pruned model from its state dict.

Channel pruning (``deploy/prune.py``) makes layers narrower than the registered builder makes
them, so ``create_model`` alone cannot load a pruned checkpoint. The state dict already records
every layer's new width in its tensor shapes: this module builds the model as registered and
then resizes each convolution, batch norm, linear and recurrent layer to the shapes it is about to
receive. It lives in ``models`` so that every package that reads a checkpoint can use it without
depending on ``deploy``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from resaction.errors import CheckpointError

_WIDTH_ATTRIBUTES = {
    nn.modules.conv._ConvNd: (("out_channels", "weight", 0), ("in_channels", "weight", 1)),
    nn.modules.batchnorm._NormBase: (("num_features", "running_mean", 0),),
    nn.Linear: (("out_features", "weight", 0), ("in_features", "weight", 1)),
    nn.RNNBase: (("input_size", "weight_ih_l0", 1),),
}


def shrink_to_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Resize ``model``'s layers in place to the tensor shapes in ``state_dict``; returns it.

    Only widths change (channels, features); a tensor whose number of dimensions differs, or a
    grouped convolution, means the state dict is of another architecture and raises a
    ``CheckpointError``. Values are not copied: call ``load_state_dict`` afterwards.
    """
    for prefix, module in model.named_modules():
        own = {
            name: tensor
            for name, tensor in [*module.named_parameters(recurse=False), *_buffers(module)]
            if tensor is not None
        }
        changed = False
        for name, tensor in own.items():
            key = f"{prefix}.{name}" if prefix else name
            target = state_dict.get(key)
            if target is None or tuple(target.shape) == tuple(tensor.shape):
                continue
            if target.dim() != tensor.dim():
                raise CheckpointError(
                    f"pruned weights {key} have shape {tuple(target.shape)}, which does not fit "
                    f"{tuple(tensor.shape)}; the checkpoint is of another architecture"
                )
            _replace(module, name, tensor, tuple(target.shape))
            changed = True
        if changed:
            _update_widths(module, prefix)
    return model


def _buffers(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(name, buffer) for name, buffer in module.named_buffers(recurse=False)]


def _replace(module: nn.Module, name: str, old: torch.Tensor, shape: tuple[int, ...]) -> None:
    fresh = torch.zeros(shape, dtype=old.dtype, device=old.device)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(fresh, requires_grad=old.requires_grad))
    else:
        module.register_buffer(name, fresh)


def _update_widths(module: nn.Module, prefix: str) -> None:
    """Keep the attributes that describe a layer's width equal to its new tensors."""
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups != 1:
        raise CheckpointError(
            f"pruned layer {prefix} is a grouped convolution, which cannot be resized"
        )
    for kind, attributes in _WIDTH_ATTRIBUTES.items():
        if not isinstance(module, kind):
            continue
        for attribute, tensor_name, dim in attributes:
            tensor = getattr(module, tensor_name, None)
            if tensor is not None:
                setattr(module, attribute, tensor.shape[dim])
    if isinstance(module, nn.RNNBase):
        module._init_flat_weights()
