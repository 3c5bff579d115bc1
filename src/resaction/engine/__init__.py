"""Training, evaluation, metrics and checkpoints."""

from __future__ import annotations

from resaction.engine.config import TrainConfig, load_config
from resaction.engine.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]
