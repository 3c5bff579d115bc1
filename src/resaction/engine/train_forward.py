"""The module a training step calls: the model, its frozen backbone, DDP and ``torch.compile``.

``torch.compile`` is optional and fragile (backends fail on some machines at the first call, not
at wrapping): any failure warns once and training goes on with the plain module.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from resaction.engine import distributed
from resaction.errors import ResactionError
from resaction.models.finetune import freeze_backbone, freeze_batchnorm


class ForwardPath:
    """Calls the (wrapped, maybe compiled) model; ``set_frozen`` re-wraps when freezing changes."""

    def __init__(
        self,
        model: nn.Module,
        context: distributed.DistContext,
        *,
        compile: bool,
        freeze_bn: bool,
        say: Callable[[str], None],
    ) -> None:
        self.model = model
        self.context = context
        self.compile = compile
        self.freeze_bn = freeze_bn
        self.say = say
        self.frozen: bool | None = None
        self.compile_failed = False
        self.module: nn.Module = model

    def set_frozen(self, frozen: bool) -> None:
        """Freeze the backbone (train the head only) or unfreeze it.

        The optimiser holds every parameter from the start: frozen ones get no gradient, so
        SGD and AdamW leave them (and their state) untouched until they are unfrozen.
        """
        if frozen == self.frozen:
            return
        if frozen:
            freeze_backbone(self.model, trainable_stages=0)
            self.say("backbone frozen: training the head only")
        elif self.frozen:
            self.model.requires_grad_(True)
            if self.freeze_bn:
                freeze_batchnorm(self.model)
            self.say("backbone unfrozen")
        self.frozen = frozen
        self.module = self._compiled(distributed.wrap(self.model, self.context))

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        try:
            return self.module(clips)
        except ResactionError:
            raise
        except Exception as error:
            if not self.compile or self.compile_failed:
                raise
            self._fallback(error)
            self.module = distributed.wrap(self.model, self.context)
            return self.module(clips)

    def no_sync(self) -> Callable | None:
        """DDP's ``no_sync`` (skip the gradient all-reduce of an accumulation step), if wrapped."""
        return getattr(self.module, "no_sync", None)

    def _compiled(self, module: nn.Module) -> nn.Module:
        if not self.compile or self.compile_failed:
            return module
        try:
            return torch.compile(module)
        except Exception as error:  # any backend failure: train uncompiled rather than stop
            self._fallback(error)
            return module

    def _fallback(self, error: Exception) -> None:
        self.compile_failed = True
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {str(error)[:120]}); "
            "training without it",
            stacklevel=3,
        )
