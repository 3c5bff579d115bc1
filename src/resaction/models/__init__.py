"""Video models, all ResNet-based, behind one registry.

Importing this package imports every family module, which registers its builders.
"""

from __future__ import annotations

import importlib
import pkgutil

from resaction.models.registry import (
    ModelInfo,
    create_model,
    default_preprocess,
    list_models,
    model_info,
    model_stats,
    register_model,
)

_NOT_FAMILIES = {"registry", "checkpoint", "weights", "finetune", "inflation", "layers"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_FAMILIES and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ModelInfo",
    "create_model",
    "default_preprocess",
    "list_models",
    "model_info",
    "model_stats",
    "register_model",
]
