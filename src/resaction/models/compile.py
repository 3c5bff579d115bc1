"""``torch.compile`` for inference, with freezing, and eager fallback when compiling fails.

Compilation is lazy: ``torch.compile`` returns at once and the work (and any failure: no C++
compiler, an unsupported operator) happens on the first call of each input shape. So the
wrapper tries the compiled module on every call until one fails, then warns once and runs the
eager module from then on; a prediction never fails because compilation did.

Inductor's freezing folds the weights into the compiled graph as constants (batch norm into
the convolution, weight layouts chosen once), which is where most of the CPU gain comes from;
it is only valid without autograd, so calls run under ``torch.inference_mode``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class CompiledModel(nn.Module):
    """``model`` compiled by ``torch.compile`` for inference, falling back to eager on failure.

    ``backend`` and ``mode`` go to ``torch.compile``; ``freezing`` applies to inductor only.
    ``failure`` holds the error that made it fall back (None while compiled calls succeed).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        freezing: bool = True,
        backend: str | Callable[..., Any] = "inductor",
        mode: str | None = None,
        dynamic: bool | None = False,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.freezing = freezing and backend == "inductor"
        self.failure: BaseException | None = None
        self._compiled = torch.compile(model, backend=backend, mode=mode, dynamic=dynamic)

    @property
    def compiled(self) -> bool:
        """Whether calls still run the compiled module."""
        return self.failure is None

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.failure is None:
                try:
                    return self._run_compiled(clips)
                except Exception as error:  # any compiler or backend failure: run eager instead
                    self._fall_back(error)
            return self.model(clips)

    def _run_compiled(self, clips: torch.Tensor) -> torch.Tensor:
        if not self.freezing:
            return self._compiled(clips)
        from torch._inductor import config as inductor_config  # 2 s to import: only when used

        with inductor_config.patch(freezing=True):
            return self._compiled(clips)

    def _fall_back(self, error: BaseException) -> None:
        self.failure = error
        cause = getattr(error, "inner_exception", None) or error.__cause__ or error
        text = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {text[0][:160]}" if text else type(cause).__name__
        name = getattr(self.model, "model_name", type(self.model).__name__)
        warnings.warn(
            f"torch.compile failed for {name} ({reason}); running it eagerly instead",
            RuntimeWarning,
            stacklevel=3,
        )

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()  # type: ignore[operator]


def compile_model(model: nn.Module, *, freezing: bool = True, **options: Any) -> CompiledModel:
    """Compile ``model`` for inference (see ``CompiledModel``); call it like the model."""
    return CompiledModel(model, freezing=freezing, **options)
