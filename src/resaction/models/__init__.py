"""Video models, all ResNet-based, behind one registry.

Importing this package imports every family module by name, which registers its builders.
Registration and metadata live in ``catalog``, the factory that builds with weights in ``factory``.
"""

from __future__ import annotations

from resaction.models import i3d, lrcn, resnet2d, resnet3d, tsm, tsn
from resaction.models.catalog import (
    InputSpec,
    ModelInfo,
    ModelStats,
    build_model,
    default_preprocess,
    list_models,
    model_info,
    model_stats,
    register_model,
)
from resaction.models.factory import create_model

FAMILIES = (resnet2d, resnet3d, i3d, tsn, tsm, lrcn)
"""The family modules; each registers its builders when imported."""

__all__ = [
    "FAMILIES",
    "InputSpec",
    "ModelInfo",
    "ModelStats",
    "build_model",
    "create_model",
    "default_preprocess",
    "list_models",
    "model_info",
    "model_stats",
    "register_model",
]
