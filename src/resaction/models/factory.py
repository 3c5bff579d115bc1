"""The factory, after timm's: ``create_model(name, num_classes=..., weights=...)``.

It builds a registered model (``catalog``) and loads its weights (``weights``); the catalog knows
nothing of loading, so the two never import each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from resaction.models.catalog import build_model, model_info
from resaction.models.weights import NO_WEIGHTS, kept_num_classes, load_weights, read_weights


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    ``weights`` is None/"none", a named weight set of the model (for example "imagenet" or
    "kinetics400"), or a path to a local checkpoint. With named weights and no ``num_classes``
    the model keeps the weights' classes (the file's, for a checkpoint; a trunk's classifier is
    never kept, so then the registry default); with a different ``num_classes`` the classifier is
    replaced and the replacement is reported (``model.load_report``).
    """
    info = model_info(name)
    if weights in NO_WEIGHTS:
        model = build_model(name, num_classes, **kwargs)
        model.load_report = None
        return model
    contents = read_weights(name, str(weights))
    model = build_model(name, num_classes, **kwargs)
    found = kept_num_classes(model, contents) if num_classes is None else None
    if found and found != info.default_num_classes:
        model.reset_classifier(found)
    model.load_report = load_weights(model, contents, model_name=name)
    return model
