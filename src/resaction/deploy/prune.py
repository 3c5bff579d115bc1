"""Structured channel pruning: remove whole channels so the network really gets smaller.

Torch-Pruning's dependency graph finds every group of layers whose channels must be removed
together (a convolution's outputs, its batch norm, the next convolution's inputs, and across
residual additions the whole stage), and ``MagnitudePruner`` drops the channels with the smallest
L1 weight in each group. The classifier and any recurrent layer keep their outputs.

A pruned model has other layer widths than its registered builder, so its checkpoint carries
``pruned=True`` and ``models.pruned.shrink_to_state_dict`` rebuilds it from the saved shapes:
a pruned checkpoint works wherever a checkpoint does.

TSM shifts the first channels of each block's input in time by position, so pruning the
channels a shift sees would change which features move; for models with temporal shifts only the
channels inside residual branches are pruned (``keep_residual``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resaction.data.manifests import read_manifest
from resaction.deploy.export import require
from resaction.engine.config import TrainConfig
from resaction.engine.trainer import train
from resaction.errors import ConfigError, DatasetError, DeployError, describe_error
from resaction.models.checkpoint import load_checkpoint, save_checkpoint
from resaction.models.tsm import TemporalShift
from resaction.runtime.loading import resolve_spec, with_trained_background

log = logging.getLogger(__name__)

MIN_RATIO = 0.05
MAX_RATIO = 0.9
ROUND_TO = 16


@dataclass
class PruneResult:
    """A pruned model and what pruning changed."""

    model: nn.Module
    ratio: float
    params_before: int
    params_after: int
    gflops_before: float
    gflops_after: float
    keep_residual: bool
    widths: dict[str, int] = field(default_factory=dict)

    @property
    def param_ratio(self) -> float:
        return self.params_after / max(1, self.params_before)

    @property
    def flop_ratio(self) -> float:
        return self.gflops_after / max(1e-12, self.gflops_before)


@dataclass
class PruneReport:
    """What ``prune_checkpoint`` wrote."""

    path: Path
    result: PruneResult
    finetune_history: list[dict[str, float]] = field(default_factory=list)


def check_ratio(ratio: float) -> float:
    """A pruning ratio in range, or a one-line ``ConfigError``."""
    if not (isinstance(ratio, int | float) and math.isfinite(ratio)):
        raise ConfigError(f"pruning ratio {ratio!r} is not a number; use e.g. --ratio 0.3")
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ConfigError(
            f"pruning ratio {ratio} is out of range: give the fraction of channels to remove, "
            f"between {MIN_RATIO} and {MAX_RATIO} (e.g. 0.3)"
        )
    return float(ratio)


def example_input(preprocess: dict[str, Any], batch: int = 1) -> torch.Tensor:
    """A zero clip batch shaped as the preprocessing dict's clips, (N, 3, T, crop, crop)."""
    crop = preprocess.get("crop") or 112
    height, width = (crop, crop) if isinstance(crop, int) else tuple(crop)
    return torch.zeros(batch, 3, int(preprocess.get("clip_len", 16)), height, width)


def count_gflops(model: nn.Module, clip: torch.Tensor) -> float:
    """Forward GFLOPs (2 per multiply-add) of ``model`` on ``clip``, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    no_onednn = torch.backends.mkldnn.flags(
        enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None
    )
    was_training = model.training
    model.eval()
    with torch.no_grad(), no_onednn, counter:
        model(clip)
    model.train(was_training)
    return counter.get_total_flops() / 1e9


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_model(
    model: nn.Module,
    ratio: float,
    clip: torch.Tensor,
    *,
    keep_residual: bool | None = None,
    round_to: int = ROUND_TO,
) -> PruneResult:
    """Remove ``ratio`` of the channels of every prunable group of ``model``, in place.

    ``clip`` is an example input (its shape, not its values, matters). ``keep_residual``
    (default: only for models with temporal shifts) prunes inside residual branches only.
    Each layer keeps the multiple of ``round_to`` nearest to ``1 - ratio`` of its channels:
    oneDNN blocks channels by 16 on AVX-512 CPUs, and widths between its blocks run slowly (a
    40-channel 3D convolution took as long as a 64-channel one here).
    """

    require("torch_pruning", "pruning", "resaction[deploy]")
    import torch_pruning as tp

    ratio = check_ratio(ratio)
    if keep_residual is None:
        keep_residual = _has_temporal_shift(model)
    model.eval()
    params_before, gflops_before = count_params(model), count_gflops(model, clip)
    ignored = _ignored_layers(model)
    try:
        with _shifts_hidden(model):
            pruner = tp.pruner.MagnitudePruner(
                model,
                clip,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=ratio,
                pruning_ratio_dict=_nearest_multiple_ratios(model, ratio, round_to, ignored),
                ignored_layers=ignored,
                round_to=round_to,
            )
            for group in pruner.step(interactive=True):
                if keep_residual and _crosses_residual_add(group):
                    continue
                group.prune()
    except Exception as error:
        name = getattr(model, "model_name", type(model).__name__)
        raise DeployError(f"cannot prune {name}: {describe_error(error)}") from None
    model.eval()
    return PruneResult(
        model=model,
        ratio=ratio,
        params_before=params_before,
        params_after=count_params(model),
        gflops_before=gflops_before,
        gflops_after=count_gflops(model, clip),
        keep_residual=keep_residual,
        widths=layer_widths(model),
    )


def _nearest_multiple_ratios(
    model: nn.Module, ratio: float, round_to: int, ignored: Sequence[nn.Module]
) -> dict[nn.Module, float]:
    """Per-convolution ratios that keep the multiple of ``round_to`` nearest to ``1 - ratio`` of
    its channels (at least ``round_to``). Torch-Pruning rounds the kept channels down, which at
    ``ratio=0.3`` would take a 64-channel stem to 32 (half); this takes it to 48."""
    skip = {id(module) for module in ignored}
    ratios: dict[nn.Module, float] = {}
    for module in model.modules():
        if not isinstance(module, nn.modules.conv._ConvNd) or id(module) in skip:
            continue
        channels = module.out_channels
        keep = max(round_to, round(channels * (1.0 - ratio) / round_to) * round_to)
        ratios[module] = max(0.0, 1.0 - (keep + 0.5) / channels)
    return ratios


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output channels of every convolution and input features of the classifier."""
    widths = {
        name: module.out_channels
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.conv._ConvNd)
    }
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(classifier, nn.Linear):
        widths["classifier_in"] = classifier.in_features
    return widths


def _ignored_layers(model: nn.Module) -> list[nn.Module]:
    """The classifier (its outputs are the classes) and recurrent layers (their hidden size)."""
    ignored: list[nn.Module] = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
    if hasattr(model, "get_classifier"):
        ignored.append(model.get_classifier())
    return ignored


def _has_temporal_shift(model: nn.Module) -> bool:

    return any(isinstance(module, TemporalShift) for module in model.modules())


@contextmanager
def _shifts_hidden(model: nn.Module) -> Iterator[None]:
    """Trace temporal shifts as identities: a shift moves features in time, never across
    channels, so channel dependencies are those of the identity (and tracing its slices and
    concatenations makes Torch-Pruning's graph search very slow)."""

    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, TemporalShift):
                swapped.append((parent, name, child))
                setattr(parent, name, nn.Identity())
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _crosses_residual_add(group: Any) -> bool:
    """Whether a Torch-Pruning group's channels pass through a residual addition."""
    from torch_pruning import ops

    for dep, _ in group:
        for node in (dep.source, dep.target):
            module = node.module
            if isinstance(module, ops._ElementWiseOp) and "Add" in str(module._grad_fn):
                return True
    return False


def prune_checkpoint(
    checkpoint: str | Path,
    ratio: float,
    out: str | Path,
    *,
    finetune_epochs: int = 0,
    data: str | Path | None = None,
    val_data: str | Path | None = None,
    val_split: float = 0.2,
    group_by: str | None = None,
    batch_size: int = 8,
    lr: float = 1e-3,
    num_workers: int | None = None,
    keep_residual: bool | None = None,
    seed: int = 0,
    progress: bool = True,
) -> PruneReport:
    """Prune a resaction checkpoint, optionally fine-tune it, and save a pruned checkpoint.

    Fine-tuning needs ``data`` (the training videos); ``val_data`` (or a ``val_split`` of
    ``data``, grouped as the data's groups say) selects the best epoch.
    """

    ratio = check_ratio(ratio)
    if finetune_epochs < 0:
        raise ConfigError(f"--finetune-epochs must be 0 or more, got {finetune_epochs}")
    if finetune_epochs and data is None:
        raise ConfigError("fine-tuning needs the training videos: pass --data DIR")
    bundle = load_checkpoint(checkpoint)
    if finetune_epochs:
        check_finetune_classes(str(data), bundle.classes)
    preprocess = resolve_spec(bundle.model_name, bundle.preprocess).to_dict()
    result = prune_model(
        bundle.model, ratio, example_input(preprocess), keep_residual=keep_residual
    )
    record = {
        "ratio": ratio,
        "from": str(checkpoint),
        "keep_residual": result.keep_residual,
        "params_before": result.params_before,
        "params_after": result.params_after,
        "gflops_before": result.gflops_before,
        "gflops_after": result.gflops_after,
        "finetune_epochs": finetune_epochs,
    }
    save = {
        "model_name": bundle.model_name,
        "classes": bundle.classes,
        "model_kwargs": bundle.model_kwargs,
        "preprocess": bundle.preprocess,
        "protocol": bundle.protocol,
        "pruned": True,
        "prune": record,
        **_kept_decisions(bundle.extra, checkpoint, out),
    }
    path = save_checkpoint(out, result.model, **save)
    history: list[dict[str, float]] = []
    if finetune_epochs:
        training = TrainConfig(
            data=str(data),
            epochs=finetune_epochs,
            batch_size=batch_size,
            val_data=None if val_data is None else str(val_data),
            val_split=val_split,
            group_by=group_by,
            lr=lr,
            num_workers=num_workers,
            seed=seed,
            progress=progress,
        )
        tuned, history = finetune(path, bundle.classes, training)
        result.model = tuned
        path = save_checkpoint(out, tuned, **save)
    return PruneReport(path=path, result=result, finetune_history=history)


def _kept_decisions(
    extra: dict[str, Any], checkpoint: str | Path, out: str | Path
) -> dict[str, Any]:
    """The background class goes with the pruned model (alarms must not fire on it); the
    calibrated thresholds do not, because they were set on the unpruned model's scores."""
    if "thresholds" in extra or "calibration" in extra:
        warnings.warn(
            f"the calibrated thresholds of {checkpoint} are not carried over, since pruning "
            f"changes the scores: run resaction calibrate on {out}",
            stacklevel=2,
        )
    background = with_trained_background(dict(extra)).get("background")
    return {} if background is None else {"background": background}


def check_finetune_classes(data: str | Path, classes: Sequence[str]) -> None:
    """Refuse fine-tuning data of other classes before anything is pruned or written."""
    found = read_manifest(data)
    if list(found.classes) != list(classes):
        raise DatasetError(
            f"{data} has classes {', '.join(found.classes)}; fine-tuning the pruned "
            f"model needs the classes it was trained on ({', '.join(classes)})"
        )


def finetune(
    pruned: Path, classes: Sequence[str], training: TrainConfig
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Fine-tune a pruned checkpoint with the trainer (``engine.trainer.train`` starts from it);
    returns the network of the best validation epoch (the last without validation) and one
    row per epoch. The run folder sits beside the pruned file (``<name>.finetune/``).

    ``training`` gives the data and how to train; the model, its input pipeline and where the
    run goes come from the pruned checkpoint."""

    check_finetune_classes(training.data, classes)
    stored = load_checkpoint(pruned)
    validated = training.val_data is not None or training.val_split > 0
    config = dataclasses.replace(
        training,
        model=stored.model_name,
        weights=str(pruned),
        out=str(pruned.with_name(f"{pruned.stem}.finetune")),
        preprocess=stored.preprocess,
        protocol=stored.protocol,
        warmup_epochs=0.0,
        model_kwargs=stored.model_kwargs,
        select="best" if validated else "last",
    )
    result = train(config)
    history = [
        {
            key: float(value)
            for key, value in row.items()
            if key in ("epoch", "train_loss", "val_top1")
        }
        for row in result.history
    ]
    return load_checkpoint(result.checkpoint).model, history
