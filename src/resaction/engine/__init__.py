"""Training, evaluation, metrics and checkpoints.

``train`` and ``TrainResult`` are imported on first use, so importing the package (for the config
or for evaluation) does not pull in the training loop.
"""

from __future__ import annotations

from typing import Any

from resaction.engine.config import TrainConfig, load_config

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from resaction.engine import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
