"""torchvision's reference outputs (``../shared/reference``), shared by the model tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="session")
def torchvision_reference(reference: Path) -> dict[str, Any]:
    return json.loads((reference / "torchvision_reference.json").read_text())


@pytest.fixture(scope="session")
def reference_weights(reference: Path) -> ModuleType:
    """The deterministic weight and input generator that produced the reference logits."""
    spec = importlib.util.spec_from_file_location(
        "reference_weights", reference / "reference_weights.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
