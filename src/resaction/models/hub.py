"""Weight files: where torchvision keeps them, their download into torch.hub's cache, their classes.

Named weights are torchvision's official files, fetched by ``torch.hub`` into its cache and checked
against the SHA-256 prefix in their names; a file copied into the cache by hand is checked too.
Which file serves which model is declared beside the model's builder (``files=`` of
``register_model``); this module only fetches what a ``WeightSpec`` names.
"""

from __future__ import annotations

import hashlib
import urllib.error
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from resaction.errors import WeightsError
from resaction.models.catalog import WeightSpec

TORCHVISION_URL = "https://download.pytorch.org/models/"


def torchvision_weights(
    file: str,
    source: str,
    *,
    num_classes: int,
    preprocess: dict[str, Any],
    classes: tuple[str, ...] | None = None,
) -> WeightSpec:
    """One of torchvision's weight files; its name carries the SHA-256 prefix of its contents."""
    return WeightSpec(
        url=TORCHVISION_URL + file,
        sha256_prefix=file.rsplit("-", 1)[1].split(".")[0],
        classes=classes,
        num_classes=num_classes,
        preprocess=preprocess,
        source=source,
    )


@cache
def kinetics400_classes() -> tuple[str, ...]:
    """The 400 Kinetics class names in the order of torchvision's Kinetics-400 weights' outputs."""
    text = resources.files("resaction.models").joinpath("kinetics400_classes.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


_VERIFIED: set[tuple[str, int, float]] = set()


def _verify_cached(path: Path, spec: WeightSpec) -> None:
    """torch.hub checks the hash only when downloading; a file copied in by hand is checked here."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key in _VERIFIED:
        return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(spec.sha256_prefix):
        raise WeightsError(
            f"{path} is not the expected file (its SHA-256 starts {digest.hexdigest()[:8]}, "
            f"expected {spec.sha256_prefix}); delete it and download {spec.url} again"
        )
    _VERIFIED.add(key)


def fetch_state_dict(spec: WeightSpec) -> dict[str, torch.Tensor]:
    """The file's state dict, downloaded into the torch hub cache on first use and hash-checked."""
    path = spec.cache_path()
    if path.is_file():
        _verify_cached(path, spec)
    try:
        state = torch.hub.load_state_dict_from_url(
            spec.url, check_hash=True, map_location="cpu", weights_only=True
        )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsError(
            f"cannot download {spec.file_name} ({reason}); without network, copy the file from "
            f"{spec.url} to {path}"
        ) from None
    except RuntimeError as error:
        if "hash" not in str(error):
            raise WeightsError(f"cannot load {path}: {first_line(error)}") from None
        raise WeightsError(
            f"the file downloaded from {spec.url} does not match its SHA-256 prefix "
            f"{spec.sha256_prefix} ({first_line(error)}); the download is corrupt or "
            "the server sent another file"
        ) from None
    except Exception as error:  # unpickling and I/O raise many types
        raise WeightsError(f"cannot load {path}: {first_line(error)}") from None
    return dict(state)


def first_line(error: BaseException) -> str:
    """An error's message cut to one line for a user-facing message."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
