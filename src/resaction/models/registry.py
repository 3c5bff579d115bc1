"""The registry's names where code imports them as ``from resaction.models.registry import ...``.

The registry is split as timm splits it: registration and metadata live in ``catalog``
(``@register_model``, ``ModelInfo``, ``list_models``, ``model_info``, ``default_preprocess``), the
factory that builds with weights in ``factory`` (``create_model``). New code imports them from
``resaction.models``. This module sits above both, so neither imports it.
"""

from __future__ import annotations

from resaction.data.transforms import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD
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

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KINETICS_MEAN",
    "KINETICS_STD",
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
