"""Telling a torch checkpoint from other files, and why ``torch.load`` refused one, in words."""

from __future__ import annotations

import re
from pathlib import Path

TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
"""How a torch checkpoint starts: a zip archive (torch >= 1.6), or a bare pickle before."""


def is_torch_file(path: Path) -> bool:
    """Whether ``path`` starts as a torch checkpoint does."""
    with path.open("rb") as handle:
        return handle.read(4).startswith(TORCH_MAGIC)


def torch_load_failure(error: Exception) -> str:
    """torch's reason in a few words, without its advice to load with ``weights_only=False``
    (which would run code from the file)."""
    text = " ".join(str(error).split())
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (
            f"it holds a Python object ({found.group(1)}) besides weights; resaction loads only "
            "tensors and plain data, so save the model's state_dict"
        )
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation")[0]
    return f"corrupt or not a torch file ({(text.strip() or type(error).__name__)[:200]})"
