"""What runs the network: a backend turns a batch of clips into logits.

The predictor, the timeline and the stream only call ``backend(batch)``, so an ONNX Runtime
session (``OnnxBackend``, added with the deployment work) can replace the PyTorch model without
anything above this module knowing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn


@runtime_checkable
class Backend(Protocol):
    """Runs a model: float32 clips (N, C, T, H, W) in, logits (N, K) float32 numpy out."""

    name: str

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray: ...


class TorchBackend:
    """A PyTorch module in eval mode under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        clips = torch.as_tensor(batch, dtype=torch.float32)
        with torch.inference_mode():
            logits = self.model(clips.to(self.device))
        return logits.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TorchBackend({type(self.model).__name__}, device={self.device})"
