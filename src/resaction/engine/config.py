"""The training configuration: one dataclass, read from YAML, overridden by flags, validated.

A run folder keeps its resolved configuration as ``config.yaml``; that file is itself a valid
``--config``, so a run can be repeated or resumed from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resaction.errors import ConfigError, parse_error_line

OPTIMIZERS = ("sgd", "adamw")
BALANCE_MODES = ("none", "sampler", "loss")
SELECT_MODES = ("best", "last")
MONITORS = (
    "val_top1",
    "val_top5",
    "val_mean_class_accuracy",
    "val_loss",
    "train_loss",
    "train_top1",
)
PREPROCESS_KEYS = (
    "clip_len",
    "sampling",
    "segment_len",
    "frame_interval",
    "target_fps",
    "resize",
    "crop",
    "mean",
    "std",
    "short_video",
    "antialias",
    "scales",
    "flip",
    "direction_blind",
    "colour_jitter",
    "window_s",
)
PROTOCOL_KEYS = ("num_clips", "num_crops", "aggregate")
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}


@dataclass
class TrainConfig:
    """Everything a training run needs; YAML keys and CLI flags carry the same names.

    The less obvious ones: ``weights`` is ``none``, a named weight set of the model or a file;
    ``preprocess`` and ``protocol`` override the model's default input pipeline and the
    validation protocol; ``lr`` and ``weight_decay`` default per optimiser (SGD 0.01 / 1e-4,
    AdamW 1e-3 / 0.05) and ``lr`` is the head's, the backbone getting ``lr * backbone_lr_mult``;
    ``warmup_epochs`` may be fractional (the schedule steps per optimiser step); ``balance``
    is ``sampler`` (class-balanced draws with replacement) or ``loss`` (inverse-frequency class
    weights); ``amp`` None means on for CUDA only; ``accumulate`` batches make one optimiser
    step; ``checkpoint_every_steps`` also writes ``last.pt`` within epochs; ``select`` names
    the checkpoint ``TrainResult.checkpoint`` returns.
    """

    data: str
    model: str = "tsm_resnet18"
    weights: str = "none"
    out: str = "runs/default"
    epochs: int = 30
    batch_size: int = 8
    val_data: str | None = None
    val_split: float = 0.2
    group_by: str | None = None
    background: str | None = None
    skip_bad_rows: bool = False
    preprocess: dict = field(default_factory=dict)
    protocol: dict = field(default_factory=lambda: {"num_clips": 3, "num_crops": 1})
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    backbone_lr_mult: float = 1.0
    freeze_backbone_epochs: int = 0
    freeze_bn: bool = False
    balance: str = "none"
    grad_clip: float | None = None
    accumulate: int = 1
    amp: bool | None = None
    compile: bool = False
    seed: int = 0
    num_workers: int | None = None
    early_stopping: int | None = None
    monitor: str = "val_top1"
    max_steps_per_epoch: int | None = None
    checkpoint_every_steps: int | None = None
    device: str = "auto"
    resume: bool = False
    model_kwargs: dict = field(default_factory=dict)
    progress: bool = True
    select: str = "best"

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so it can go into YAML and a ``weights_only`` checkpoint."""
        return dataclasses.asdict(self)

    @property
    def monitor_mode(self) -> str:
        """``"min"`` for losses, ``"max"`` for accuracies."""
        return "min" if self.monitor.endswith("loss") else "max"


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field's annotation; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"config key {name!r}: {value!r} is not a {_describe(hint)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, (str, Path)):
            return str(value)
    elif (hint is dict or origin is dict) and isinstance(value, dict):
        return dict(value)
    raise ConfigError(f"config key {name!r}: {value!r} is not a {_describe(hint)}")


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:
        return " or ".join(_describe(a) for a in args) + " (or null)"
    return {bool: "boolean", int: "whole number", float: "number", str: "string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"config key {name!r}: {value!r} is not one of {', '.join(options)}")


def _at_least(name: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        raise ConfigError(f"config key {name!r}: {value} must be at least {low}")


def validate(config: TrainConfig) -> None:
    """Type-check and range-check every field in place; raise ``ConfigError`` on the first fault."""
    hints = _type_hints()
    for f in dataclasses.fields(config):
        setattr(config, f.name, _coerce(f.name, getattr(config, f.name), hints[f.name]))
    if not config.data:
        raise ConfigError("config key 'data' is empty: pass --data DIR_OR_MANIFEST")
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("balance", config.balance, BALANCE_MODES)
    _choice("select", config.select, SELECT_MODES)
    _choice("monitor", config.monitor, MONITORS)
    for name in ("epochs", "batch_size", "accumulate"):
        _at_least(name, getattr(config, name), 1)
    for name in ("max_steps_per_epoch", "checkpoint_every_steps", "early_stopping"):
        _at_least(name, getattr(config, name), 1)
    for name in ("warmup_epochs", "weight_decay", "momentum", "freeze_backbone_epochs"):
        _at_least(name, getattr(config, name), 0)
    _at_least("num_workers", config.num_workers, 0)
    _at_least("backbone_lr_mult", config.backbone_lr_mult, 0)
    if config.lr is not None and config.lr <= 0:
        raise ConfigError(f"config key 'lr': {config.lr} must be positive")
    if config.grad_clip is not None and config.grad_clip <= 0:
        raise ConfigError(f"config key 'grad_clip': {config.grad_clip} must be positive")
    if not 0.0 <= config.val_split < 1.0:
        raise ConfigError(f"config key 'val_split': {config.val_split} must be in [0, 1)")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ConfigError(
            f"config key 'label_smoothing': {config.label_smoothing} must be in [0, 1)"
        )
    if config.background is not None and not config.background.strip():
        raise ConfigError("config key 'background': give a class name, or leave it out")
    if config.group_by is not None:
        try:
            re.compile(config.group_by)
        except re.error as error:
            raise ConfigError(
                f"config key 'group_by': {config.group_by!r} is not a regex: {error}"
            ) from None
    _known_keys("protocol", config.protocol, PROTOCOL_KEYS)
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", config.device):
        raise ConfigError(
            f"config key 'device': {config.device!r} is not auto, cpu, mps, cuda or cuda:N"
        )
    has_val = bool(config.val_data) or config.val_split > 0
    if config.monitor.startswith("val") and not has_val and config.early_stopping is not None:
        raise ConfigError(
            f"early stopping on {config.monitor} needs validation data: "
            "pass --val-data or a --val-split above 0"
        )


def check_preprocess_keys(preprocess: dict, model_defaults: dict) -> None:
    """Refuse preprocessing keys that neither the pipeline nor the model's defaults know."""
    _known_keys("preprocess", preprocess, (*PREPROCESS_KEYS, *model_defaults))


def _known_keys(name: str, values: dict, known: tuple[str, ...]) -> None:
    for key in values:
        if key not in known:
            raise ConfigError(f"config key '{name}.{key}' is unknown{_suggest(key, known)}")


def _suggest(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        reason = parse_error_line(error)
        raise ConfigError(f"config file {path} is not valid YAML: {reason}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return values


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML file (optional), apply ``overrides`` on top, validate.

    An override whose value is ``None`` counts as not given, so the CLI can pass every flag.
    ``preprocess``, ``protocol`` and ``model_kwargs`` overrides are merged into the file's dicts.
    """
    values = read_config_file(path) if path is not None else {}
    values.pop("classes", None)
    where = f"config file {path}" if path is not None else "config"
    for key in list(values) + list(overrides):
        if key not in FIELD_NAMES:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(key, FIELD_NAMES)}")
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("preprocess", "protocol", "model_kwargs") and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    if not values.get("data"):
        raise ConfigError(f"{where}: no training data; pass --data DIR_OR_MANIFEST")
    return TrainConfig(**values)


def resolve_defaults(config: TrainConfig) -> TrainConfig:
    """Fill the values that depend on the optimiser (learning rate and weight decay)."""
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    weight_decay = (
        config.weight_decay
        if config.weight_decay is not None
        else DEFAULT_WEIGHT_DECAY[config.optimizer]
    )
    return dataclasses.replace(config, lr=lr, weight_decay=weight_decay)


def save_config(config: TrainConfig, path: str | Path, classes: list[str] | None = None) -> Path:
    """Write the resolved config as YAML (with the class names, which ``load_config`` ignores)."""
    values = config.to_dict()
    if classes is not None:
        values["classes"] = list(classes)
    path = Path(path)
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path
