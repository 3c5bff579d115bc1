"""The registry's old import path, kept so code written against it still runs: every public name
of ``resaction.models`` (registration and metadata from ``catalog``, ``create_model`` from
``factory``) and the normalisation constants. New code imports from ``resaction.models``."""

from __future__ import annotations

from resaction.data.transforms import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD
from resaction.models import *  # noqa: F403
from resaction.models import __all__ as _MODELS_NAMES

__all__ = [*_MODELS_NAMES, "IMAGENET_MEAN", "IMAGENET_STD", "KINETICS_MEAN", "KINETICS_STD"]
