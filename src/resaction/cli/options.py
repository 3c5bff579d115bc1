"""Options several commands share, declared once so their flags and help read the same, and
the checks they need."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
import yaml

from resaction.errors import ConfigError

if TYPE_CHECKING:
    from resaction.engine.config import TrainConfig

T = TypeVar("T")

CHECKPOINT_OPTION = typer.Option(
    None, "--checkpoint", "-c", help="A resaction checkpoint (.pt) or an exported .onnx file."
)
MODEL_OPTION = typer.Option(
    None,
    "--model",
    "-m",
    help="With --weights: a registered model; with --checkpoint: "
    "refuse a checkpoint of another model.",
)
WEIGHTS_OPTION = typer.Option(
    None, "--weights", help="Named weights for --model, e.g. kinetics400."
)
CLASSES_OPTION = typer.Option(
    None, "--classes", help="Class names, one per line, for an .onnx file without metadata."
)
COMPILE_OPTION = typer.Option(
    False,
    "--compile",
    help="torch.compile the PyTorch model with freezing (the first batch pays the compilation; "
    "eager with a warning if it fails).",
)
PROGRESS_OPTION = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
DATA_BACKGROUND_OPTION = typer.Option(
    None,
    "--background",
    help="Segment annotations: a class NAME for the stretches between labelled segments.",
)
SKIP_BAD_ROWS_OPTION = typer.Option(
    False,
    "--skip-bad-rows",
    help="Segment annotations: skip (and list) bad rows instead of stopping.",
)
ALARM_BACKGROUND_OPTION = typer.Option(
    None, "--background", help="The class that raises no alarms (default: the model's, if any)."
)
WINDOW_OPTION = typer.Option(
    None, "--window", min=1, help="Frames per window (default: the model's clip length)."
)
WINDOW_SECONDS_OPTION = typer.Option(
    None,
    "--window-seconds",
    help="Seconds per window, the model's units spread over it (default: the span the model's "
    "training clips covered, when its checkpoint records one).",
)
CLIPS_OPTION = typer.Option(
    None, "--clips", min=1, help="Clips per video (default: the checkpoint's protocol)."
)
CROPS_OPTION = typer.Option(
    None, "--crops", help="Crops per clip: 1 (centre) or 3 (default: the checkpoint's)."
)
CLIP_BATCH_OPTION = typer.Option(8, "--batch-size", "-b", min=1, help="Clips per forward pass.")
DECODE_WORKERS_OPTION = typer.Option(None, "--workers", min=0, help="Decoding processes.")
PREPROCESS_OPTION = typer.Option(
    None, "--preprocess", "-p", help="Preprocessing override KEY=VALUE, e.g. clip_len=8."
)


def check_crops(crops: int | None) -> None:
    """``--crops`` takes 1 (the centre) or 3 (three crops along the long side)."""
    if crops is not None and crops not in (1, 3):
        raise ConfigError(f"--crops {crops} is not supported: use 1 (centre) or 3 (three-crop)")


def view_protocol(clips: int | None, crops: int | None) -> dict[str, int]:
    """``--clips`` and ``--crops`` as overrides of the test protocol: only the flags given."""
    given = {"num_clips": clips, "num_crops": crops}
    return {key: value for key, value in given.items() if value is not None}


# Training runs (``train``, ``pretrain``): None means "not given", so a --config file's key stays.
RUN_CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="YAML config; flags override its keys."
)
RUN_OUT_OPTION = typer.Option(None, "--out", "-o", help="Run folder (runs/NAME).")
EPOCHS_OPTION = typer.Option(None, "--epochs", "-e")
RUN_BATCH_OPTION = typer.Option(None, "--batch-size", "-b")
SEED_OPTION = typer.Option(None, "--seed")
LOADER_WORKERS_OPTION = typer.Option(None, "--workers", help="Data loading processes.")
MAX_STEPS_OPTION = typer.Option(None, "--max-steps-per-epoch")
CHECKPOINT_EVERY_OPTION = typer.Option(
    None, "--checkpoint-every-steps", help="Also write last.pt every N optimiser steps."
)
DEVICE_OPTION = typer.Option(None, "--device", help="auto | cpu | mps | cuda | cuda:N.")
RESUME_OPTION = typer.Option(False, "--resume", help="Continue the run in --out.")
MODEL_KWARG_OPTION = typer.Option(
    None, "--model-kwarg", help="Model option KEY=VALUE, e.g. dropout=0.3."
)
RUN_PROGRESS_OPTION = typer.Option(None, "--progress/--no-progress")


def key_values(values: list[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` flags as a dict; values are read as YAML (``16``, ``[128, 171]``, ``null``)."""
    parsed: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE")
        try:
            parsed[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {item!r}: {raw!r} is not a valid value") from None
    return parsed


def run_config_file(config: Path | None, out: str | None, resume: bool) -> Path | None:
    """The config file of a run: the given one, or when resuming the run folder's own."""
    if config is None and resume and out is not None and (Path(out) / "config.yaml").is_file():
        return Path(out) / "config.yaml"
    return config


RENAMED_FLAGS = {"workers": "num_workers", "compile_model": "compile"}
"""Training flags whose ``TrainConfig`` field has another name."""


def training_config(
    flags: dict[str, Any], *, leave: tuple[str, ...] = (), **fixed: Any
) -> TrainConfig:
    """A training command's config: its ``--config`` file (or, resuming, the run folder's) with
    its flags over it.

    ``flags`` is the command's ``locals()`` on entry. Each flag sets the ``TrainConfig`` field of
    its name (``RENAMED_FLAGS`` aside): ``--preprocess`` and ``--model-kwarg`` parsed,
    ``--clips``/``--crops`` as the protocol, ``--resume`` and ``--skip-bad-rows`` left off as not
    given. ``leave`` names the command's flags that are not the config's; ``fixed`` sets fields
    outright. A flag that is neither a field nor left is a ``TypeError``, so a new flag is never
    dropped silently.
    """
    from resaction.engine.config import FIELD_NAMES, TrainConfig, load_config

    values = {name: value for name, value in flags.items() if name not in leave}
    config = values.pop("config", None)
    if "resume" in values:
        out = values.get("out") or TrainConfig.out
        config = run_config_file(config, out, bool(values["resume"]))
        if values["resume"] and config is None and not values.get("data"):
            raise ConfigError(f"--resume: no run to resume in {out} (no config.yaml)")
    overrides = {
        "protocol": view_protocol(values.pop("clips", None), values.pop("crops", None)) or None,
        "preprocess": key_values(values.pop("preprocess", None), "--preprocess") or None,
        "model_kwargs": key_values(values.pop("model_kwarg", None), "--model-kwarg") or None,
    }
    for name, value in values.items():
        field = RENAMED_FLAGS.get(name, name)
        if field not in FIELD_NAMES:
            raise TypeError(f"flag {name!r} is no TrainConfig field; name it in leave=")
        overrides[field] = (value or None) if name in ("resume", "skip_bad_rows") else value
    return load_config(config, **{**overrides, **fixed})


def flags_as(cls: Callable[..., T], flags: Mapping[str, Any], **fixed: Any) -> T:
    """A command's options dataclass ``cls`` from its flags (the command's ``locals()`` on entry):
    each field from the flag of its name, ``fixed`` fields given outright (a flag under another
    name, a computed value); fields no flag names keep their defaults."""
    names = {field.name for field in dataclasses.fields(cls) if field.init}  # type: ignore[arg-type]
    return cls(**{**{name: flags[name] for name in names & flags.keys()}, **fixed})


def model_output(sources: Path | list[Path], out: Path, suffix: str) -> Path:
    """``out``, checked before any work: not one of the input models (writing there would
    replace a model the command reads, a trained checkpoint lost to its pruned copy), not a
    folder, and named with the ``suffix`` of what the command writes (``export --out model.pt``
    would hold ONNX, which every later command then reads as a broken checkpoint)."""
    inputs = sources if isinstance(sources, list) else [sources]
    if any(out.expanduser().resolve() == source.expanduser().resolve() for source in inputs):
        raise ConfigError(f"--out {out} is an input model: give another file name")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give a file name ending {suffix}")
    if out.suffix.lower() != suffix:
        kind = "an ONNX model" if suffix == ".onnx" else "a checkpoint"
        raise ConfigError(f"--out {out}: this writes {kind}, give a name ending {suffix}")
    return out
