"""The training loop: ``train(config) -> TrainResult``.

One run writes one folder: ``config.yaml`` (resolved, with the class names), ``classes.txt``,
``last.pt`` (every epoch, and every ``checkpoint_every_steps`` optimiser steps), ``best.pt`` (best
validation score), ``metrics.csv``, TensorBoard events, ``curves.png`` and ``skipped.txt``.

Resuming is exact: weights, optimiser, scheduler, AMP scaler, RNG streams and the position in the
epoch's data order (``train_state``) are all in ``last.pt``, and data order and augmentation are
functions of (seed, epoch, position) only, so an interrupted and resumed run ends with the weights
of an uninterrupted one. Under ``torchrun`` the same code runs data parallel; global rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from resaction.data.manifests import read_manifest
from resaction.data.spans import training_window
from resaction.data.spec import DEFAULT_VIEWS, ClipSpec
from resaction.data.splits import train_test_split
from resaction.engine import distributed
from resaction.engine.config import (
    TrainConfig,
    check_preprocess_keys,
    resolve_defaults,
    save_config,
)
from resaction.engine.evaluate import evaluate
from resaction.engine.logs import (
    SKIPPED_TXT,
    RunLogger,
    epoch_line,
    progress_numbers,
    writability_problem,
    write_skipped,
)
from resaction.engine.schedule import warmup_cosine
from resaction.engine.train_state import (
    EpochSampler,
    EpochTotals,
    Position,
    class_balance_weights,
    make_train_loader,
    restore_training_state,
    seed_everything,
    training_state,
)
from resaction.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    ResactionError,
    first_line,
)
from resaction.models.checkpoint import (
    ModelBundle,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from resaction.models.finetune import freeze_backbone, freeze_batchnorm, param_groups
from resaction.models.registry import create_model
from resaction.models.weights import training_preprocess
from resaction.progress import progress_bar

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass
class TrainResult:
    """Where a run wrote its checkpoints, and what it measured per epoch."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict]
    best_metric: float | None
    classes: list[str]
    skipped: list = field(default_factory=list)
    select: str = "best"
    world_size: int = 1

    @property
    def checkpoint(self) -> Path:
        """The checkpoint the config's ``select`` names (``best`` or ``last``)."""
        return self.best_checkpoint if self.select == "best" else self.last_checkpoint


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.model`` on ``config.data``; data parallel when launched by ``torchrun``."""
    owns_group = not torch.distributed.is_initialized()
    context = distributed.setup(config.device)
    try:
        return Trainer(resolve_defaults(config), context).fit()
    finally:
        if owns_group:
            distributed.teardown(context)


def pruned_start(weights: str | None) -> ModelBundle | None:
    """The network of a pruned checkpoint that ``weights`` names, to train on from there
    (``create_model`` cannot build its narrower layers); None for anything else."""
    path = Path(str(weights or "")).expanduser()
    if str(weights or "none") == "none" or not path.is_file():
        return None
    try:
        if not read_checkpoint(path).get("pruned"):
            return None
    except CheckpointError:
        return None
    return load_checkpoint(path)


@dataclass
class _Data:
    classes: list[str]
    train: list[Any]
    val: list[Any] | None


class Trainer:
    """One run's state. ``fit`` does the work; the pieces are methods so each stays short."""

    def __init__(self, config: TrainConfig, context: distributed.DistContext) -> None:
        self.config = config
        self.context = context
        self.device = context.device
        self.run_dir = Path(config.out)
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.global_step = 0
        self.skipped: list[dict[str, str]] = []
        self._frozen: bool | None = None
        self._compile_failed = False

    # ------------------------------------------------------------------ set-up

    def fit(self) -> TrainResult:
        config = self.config
        self._prepare_run_dir()
        resumed = self._read_resume_checkpoint()
        data = self._load_data(resumed)
        self.classes = data.classes
        self.val_entries = data.val
        self.preprocess, self.protocol = self._pipeline(data.train)
        self.use_amp = bool(config.amp if config.amp is not None else self.device.type == "cuda")
        if self.use_amp and self.device.type != "cuda":
            warnings.warn("--amp is only used on CUDA; training in float32", stacklevel=2)
            self.use_amp = False
        self.config = dataclasses.replace(
            config, preprocess=self.preprocess, protocol=self.protocol, amp=self.use_amp
        )
        seed_everything(config.seed)
        self.model = self._build_model(resumed)
        self._build_data(data.train)
        self._build_optimisation(data.train)
        start, totals = Position(), EpochTotals()
        if resumed is not None:
            start, totals = self._restore(resumed)
        if self.context.is_main:
            save_config(self.config, self.run_dir / "config.yaml", self.classes)
            (self.run_dir / "classes.txt").write_text("\n".join(self.classes) + "\n")
        self.logger = RunLogger(
            self.run_dir, enabled=self.context.is_main, purge_step=self.global_step or None
        )
        try:
            self._loop(start, totals)
        finally:
            self.logger.close(self.history)
            self.loader = None  # releases the persistent loader workers
        distributed.check_replicas_agree(self.context, self.model)
        self._report_skipped()
        return TrainResult(
            run_dir=self.run_dir,
            best_checkpoint=self.run_dir / BEST_CHECKPOINT,
            last_checkpoint=self.run_dir / LAST_CHECKPOINT,
            history=self.history,
            best_metric=self.best_metric,
            classes=self.classes,
            skipped=self.skipped,
            select=config.select,
            world_size=self.context.world_size,
        )

    def _prepare_run_dir(self) -> None:
        """Fail before any work if the output folder cannot be written or holds another run."""
        distributed.on_main(self.context, self._check_run_dir)

    def _check_run_dir(self) -> None:
        problem = writability_problem(self.run_dir)
        if problem:
            raise ConfigError(problem)
        if (self.run_dir / LAST_CHECKPOINT).exists() and not self.config.resume:
            raise ConfigError(
                f"output folder {self.run_dir} already holds a run (last.pt): "
                "pass --resume to continue it or choose another --out"
            )
        for stale in self.run_dir.glob(".*.pt.*.tmp"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)

    def _read_resume_checkpoint(self) -> dict[str, Any] | None:
        """Rank 0's ``last.pt`` on every rank, when resuming and there is one."""
        if not self.config.resume:
            return None
        return distributed.on_main(self.context, self._read_last_checkpoint)

    def _read_last_checkpoint(self) -> dict[str, Any] | None:

        path = self.run_dir / LAST_CHECKPOINT
        if not path.exists():
            self._say(f"nothing to resume in {self.run_dir} (no last.pt): starting a new run")
            return None
        payload = read_checkpoint(path)
        if payload["model_name"] != self.config.model:
            raise CheckpointError(
                f"cannot resume {path}: it holds model {payload['model_name']!r}, "
                f"not {self.config.model!r}; pass --model {payload['model_name']} or a new --out"
            )
        if "optimizer" not in payload or "sampler" not in payload:
            raise CheckpointError(f"cannot resume {path}: it holds no training state")
        return payload

    def _load_data(self, resumed: dict[str, Any] | None) -> _Data:

        config = self.config
        read = functools.partial(
            read_manifest, background=config.background, skip_bad_rows=config.skip_bad_rows
        )
        manifest = read(config.data)
        if not manifest.entries:
            raise DatasetError(f"dataset {config.data} has no videos")
        val = None
        if config.val_data:
            found = read(config.val_data)
            unknown = [name for name in found.classes if name not in manifest.classes]
            if unknown:
                raise DatasetError(
                    f"validation data {config.val_data} has class {unknown[0]!r}, "
                    f"which the training data {config.data} lacks"
                )
            val = read(config.val_data, classes=manifest.classes).entries
            if not val:
                raise DatasetError(f"validation data {config.val_data} has no videos")
        elif config.val_split > 0:
            manifest, held_out = train_test_split(
                manifest, config.val_split, group_by=config.group_by, seed=config.seed
            )
            val = held_out.entries
        counts = manifest.class_counts()
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            split = config.val_split and not config.val_data
            raise DatasetError(
                f"class {empty[0]!r} has no training videos in {config.data}"
                + (" after the validation split: lower --val-split or add videos" if split else "")
            )
        if resumed is not None and list(resumed["classes"]) != list(manifest.classes):
            raise CheckpointError(
                f"cannot resume {self.run_dir / LAST_CHECKPOINT}: it was trained on "
                f"{len(resumed['classes'])} classes ({', '.join(resumed['classes'][:4])}...), "
                f"the data has {len(manifest.classes)} ({', '.join(manifest.classes[:4])}...)"
            )
        return _Data(classes=list(manifest.classes), train=list(manifest.entries), val=val)

    def _pipeline(self, entries: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Preprocessing (with ``window_s`` for models spreading frames over whole videos)."""
        defaults = training_preprocess(self.config.model, self.config.weights)
        check_preprocess_keys(self.config.preprocess, defaults)
        preprocess = {**defaults, **self.config.preprocess}
        if (
            "segment_len" in self.config.model_kwargs
            and "segment_len" not in self.config.preprocess
        ):
            preprocess["segment_len"] = int(self.config.model_kwargs["segment_len"])
        window = training_window(preprocess, entries)
        if window is not None:
            preprocess["window_s"] = round(window, 3)
            self._say(
                f"clips covered a median {window:.2f} s of video (the window inference will use)"
            )
        return preprocess, DEFAULT_VIEWS.updated(self.config.protocol).to_dict()

    def _build_model(self, resumed: dict[str, Any] | None) -> nn.Module:

        config = self.config
        pruned = pruned_start(config.weights)
        self.pruned = pruned is not None
        if pruned is not None:
            model = pruned.model
            if len(pruned.classes) != len(self.classes):
                model.reset_classifier(len(self.classes))
        else:
            weights = None if resumed is not None else config.weights
            model = create_model(
                config.model, num_classes=len(self.classes), weights=weights, **config.model_kwargs
            )
        wanted = int(self.preprocess.get("segment_len", 1) or 1)
        reads = getattr(model, "segment_len", 1)
        if reads != wanted:
            raise ConfigError(
                f"{config.model} reads segments of {reads} frames but the "
                f"preprocessing samples {wanted}: set --model-kwarg segment_len=N and "
                "-p segment_len=N together"
            )
        report = getattr(model, "load_report", None)
        if report is not None:
            self._say(report.summary() if hasattr(report, "summary") else str(report))
        if resumed is not None:
            try:
                model.load_state_dict(resumed["state_dict"])
            except RuntimeError as error:
                raise CheckpointError(
                    f"cannot resume {self.run_dir / LAST_CHECKPOINT}: its weights do not fit "
                    f"{config.model} with {len(self.classes)} classes ({first_line(error, 160)})"
                ) from None
        return model.to(self.device)

    def _build_data(self, entries: list[Any]) -> None:
        config = self.config
        spec = ClipSpec.from_dict(self.preprocess)
        self.dataset = spec.dataset(entries, train=True, seed=config.seed)
        labels = [entry.label for entry in entries]
        self.sampler = EpochSampler(
            labels,
            seed=config.seed,
            balance=config.balance == "sampler",
            num_classes=len(self.classes),
            rank=self.context.rank,
            world_size=self.context.world_size,
        )
        self.loader = make_train_loader(
            self.dataset, self.sampler, config.batch_size, config.num_workers, config.seed
        )
        batches = math.ceil(self.sampler.per_rank / config.batch_size)
        if config.max_steps_per_epoch is not None:
            batches = min(batches, config.max_steps_per_epoch * config.accumulate)
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / config.accumulate)

    def _build_optimisation(self, entries: list[Any]) -> None:

        config = self.config
        if config.freeze_bn:
            freeze_batchnorm(self.model)
        groups = param_groups(
            self.model,
            lr=config.lr,
            backbone_lr_mult=config.backbone_lr_mult,
            weight_decay=config.weight_decay,
        )
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(
                groups, lr=config.lr, weight_decay=config.weight_decay
            )
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        self.scheduler = warmup_cosine(self.optimizer, self.warmup_steps, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        class_weights = None
        if config.balance == "loss":
            labels = [entry.label for entry in entries]
            class_weights = class_balance_weights(labels, len(self.classes)).to(self.device)
        self.criterion = nn.CrossEntropyLoss(
            weight=class_weights, label_smoothing=config.label_smoothing
        )

    def _restore(self, payload: dict[str, Any]) -> tuple[Position, EpochTotals]:
        """Load optimiser, schedule and RNG state; return where in which epoch to go on."""
        path = self.run_dir / LAST_CHECKPOINT
        self._warn_if_inexact(payload.get("config", {}), payload["sampler"])
        resumed = restore_training_state(
            payload,
            path=path,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            device=self.device,
        )
        self.history = resumed.history
        self.best_metric, self.best_epoch = resumed.best_metric, resumed.best_epoch
        self.global_step = resumed.position.step
        position = resumed.position
        self._say(
            f"resuming {path}: epoch {position.epoch + 1}, batch {position.batches_done}, "
            f"step {position.step}"
        )
        # partial sums of a mid-epoch checkpoint are global: count them once, on rank 0
        return position, resumed.totals if self.context.is_main else EpochTotals()

    def _warn_if_inexact(self, saved: dict[str, Any], sampler_state: dict[str, Any]) -> None:
        keys = ("seed", "batch_size", "accumulate", "balance", "max_steps_per_epoch", "data")
        changed = [key for key in keys if key in saved and saved[key] != getattr(self.config, key)]
        if sampler_state.get("world_size", 1) != self.context.world_size:
            changed.append("number of processes")
        if sampler_state.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            changed.append("number of torch threads")
        if changed:
            warnings.warn(
                f"resumed run differs in {', '.join(changed)}: it will not reproduce an "
                "uninterrupted run exactly",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ the loop

    def _loop(self, start: Position, totals: EpochTotals) -> None:
        config = self.config
        batches_done = start.batches_done
        for epoch in range(start.epoch, config.epochs):
            if self._should_stop():
                self._say(
                    f"early stopping: {config.monitor} has not improved for "
                    f"{config.early_stopping} epochs (best {self.best_metric:.4f} at epoch "
                    f"{self.best_epoch})"
                )
                break
            self._set_frozen(epoch)
            row = {"epoch": epoch + 1, **self._train_epoch(epoch, batches_done, totals)}
            batches_done, totals = 0, EpochTotals()
            row.update(self._validate())
            self.history.append(row)
            improved = self._update_best(row)
            if self.context.is_main:
                done = Position(epoch=epoch + 1, step=self.global_step)
                if improved:
                    self._save(self.run_dir / BEST_CHECKPOINT, done, EpochTotals())
                self._save(self.run_dir / LAST_CHECKPOINT, done, EpochTotals())
            self.logger.epoch(self.history, self.global_step)
            self._say(epoch_line(row, config.epochs))

    def _set_frozen(self, epoch: int) -> None:
        """Freeze the backbone for the first epochs; (re)wrap the model when that changes.

        The optimiser holds every parameter from the start: frozen ones get no gradient, so
        SGD and AdamW leave them (and their state) untouched until they are unfrozen.
        """

        frozen = epoch < self.config.freeze_backbone_epochs
        if frozen == self._frozen:
            return
        if frozen:
            freeze_backbone(self.model, trainable_stages=0)
            self._say("backbone frozen: training the head only")
        elif self._frozen:
            self.model.requires_grad_(True)
            if self.config.freeze_bn:
                freeze_batchnorm(self.model)
            self._say("backbone unfrozen")
        self._frozen = frozen
        self.forward_model = self._compiled(distributed.wrap(self.model, self.context))

    def _compiled(self, module: nn.Module) -> nn.Module:
        if not self.config.compile or self._compile_failed:
            return module
        try:
            return torch.compile(module)
        except Exception as error:  # any backend failure: train uncompiled rather than stop
            self._compile_fallback(error)
            return module

    def _compile_fallback(self, error: Exception) -> None:
        self._compile_failed = True
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {str(error)[:120]}); "
            "training without it",
            stacklevel=2,
        )

    def _train_epoch(self, epoch: int, batches_done: int, totals: EpochTotals) -> dict[str, Any]:
        config = self.config
        self.model.train()
        self.sampler.set_epoch(epoch, start=batches_done * config.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=[]):  # starting workers must not draw from our RNG
            batches = iter(self.loader)
        bar = progress_bar(
            total=self.batches_per_epoch,
            initial=batches_done,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not (config.progress and self.context.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        run_totals = EpochTotals()
        lr = max(group["lr"] for group in self.optimizer.param_groups)
        try:
            for index in range(batches_done, self.batches_per_epoch):
                started = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                loaded = time.perf_counter()
                if batch.skipped:
                    self.dataset.record_skipped(batch.skipped)
                if batch.clips is not None:
                    loss, correct = self._forward_backward(batch.clips, batch.labels, index)
                    self.logger.scalars(self.global_step, {"step_loss": loss})
                    run_totals.loss_sum += loss * len(batch.labels)
                    run_totals.correct += correct
                    run_totals.count += len(batch.labels)
                stepped = self._ends_step(index)
                if stepped:
                    lr = self._optimizer_step()
                    self.logger.scalars(self.global_step, {"step_lr": lr})
                run_totals.wait_s += loaded - started
                run_totals.busy_s += time.perf_counter() - started
                bar.update(1)
                bar.set_postfix(progress_numbers(run_totals, self.context.world_size))
                if stepped and self._checkpoint_due(index):
                    self._save_mid_epoch(epoch, index + 1, totals, run_totals)
        finally:
            bar.close()
            del batches
        timed = run_totals.reduced(self.context)
        summed = totals + timed
        return {
            "train_loss": summed.loss_sum / max(summed.count, 1),
            "train_top1": summed.correct / max(summed.count, 1),
            "lr": lr,
            "train_clips_per_s": timed.count / max(timed.busy_s / self.context.world_size, 1e-9),
            "train_data_wait": timed.wait_s / max(timed.busy_s, 1e-9),
            "train_seconds": timed.busy_s / self.context.world_size,
        }

    def _forward_backward(
        self, clips: torch.Tensor, labels: torch.Tensor, index: int
    ) -> tuple[float, int]:
        config = self.config
        clips = clips.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        no_sync = getattr(self.forward_model, "no_sync", None)
        skip_sync = no_sync is not None and not self._ends_step(index)
        with no_sync() if skip_sync else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                logits = self._forward(clips)
                loss = self.criterion(logits.float(), labels)
            self.scaler.scale(loss / config.accumulate).backward()
        correct = int((logits.detach().argmax(dim=1) == labels).sum())
        return float(loss.detach()), correct

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        try:
            return self.forward_model(clips)
        except ResactionError:
            raise
        except Exception as error:
            if not self.config.compile or self._compile_failed:
                raise
            self._compile_fallback(error)
            self.forward_model = distributed.wrap(self.model, self.context)
            return self.forward_model(clips)

    def _ends_step(self, index: int) -> bool:
        """Whether batch ``index`` is the last of an accumulation group (an optimiser step)."""
        last_batch = index + 1 == self.batches_per_epoch
        return (index + 1) % self.config.accumulate == 0 or last_batch

    def _optimizer_step(self) -> float:
        """Clip, step, advance the schedule; return the (head) learning rate the step used."""
        used = max(group["lr"] for group in self.optimizer.param_groups)
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1
        return used

    def _checkpoint_due(self, index: int) -> bool:
        every = self.config.checkpoint_every_steps
        last_batch = index + 1 == self.batches_per_epoch
        return every is not None and not last_batch and self.global_step % every == 0

    def _save_mid_epoch(
        self, epoch: int, batches_done: int, before: EpochTotals, run: EpochTotals
    ) -> None:
        summed = before + run.reduced(self.context)
        if self.context.is_main:
            position = Position(epoch=epoch, batches_done=batches_done, step=self.global_step)
            self._save(self.run_dir / LAST_CHECKPOINT, position, summed)

    # ------------------------------------------------------------------ validation and best

    def _validate(self) -> dict[str, Any]:
        if self.val_entries is None:
            return {}
        row = None
        if self.context.is_main:
            row = self._evaluate()
        return distributed.broadcast(self.context, row)

    def _evaluate(self) -> dict[str, Any]:

        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            result = evaluate(
                self.model,
                self.val_entries,
                self.classes,
                preprocess=self.preprocess,
                protocol=self.protocol,
                batch_size=self.config.batch_size,
                num_workers=self.config.num_workers,
                progress=self.config.progress,
            )
        self._add_skipped(result.skipped)
        probs = torch.as_tensor(result.video_probs, dtype=torch.float64)
        labels = torch.as_tensor(result.labels, dtype=torch.int64)
        picked = probs[torch.arange(len(labels)), labels].clamp_min(1e-12)
        return {
            "val_loss": float(-picked.log().mean()),
            "val_top1": float(result.metrics["top1"]),
            "val_top5": float(result.metrics["top5"]),
            "val_mean_class_accuracy": float(result.metrics["mean_class_accuracy"]),
        }

    def _update_best(self, row: dict[str, Any]) -> bool:
        """Record a new best; without the monitored value, every epoch is the best (best = last)."""
        value = row.get(self.config.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return True
        sign = 1 if self.config.monitor_mode == "max" else -1
        if self.best_metric is None or sign * (value - self.best_metric) > 0:
            self.best_metric, self.best_epoch = float(value), int(row["epoch"])
            return True
        return False

    def _should_stop(self) -> bool:
        patience = self.config.early_stopping
        if patience is None or self.best_epoch is None or not self.history:
            return False
        return int(self.history[-1]["epoch"]) - self.best_epoch >= patience

    # ------------------------------------------------------------------ files

    def _save(self, path: Path, position: Position, totals: EpochTotals) -> None:

        save_checkpoint(
            path,
            self.model,
            model_name=self.config.model,
            classes=self.classes,
            model_kwargs=self.config.model_kwargs,
            preprocess=self.preprocess,
            protocol=self.protocol,
            **({"pruned": True} if self.pruned else {}),
            **training_state(
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                position=position,
                totals=totals,
                world_size=self.context.world_size,
                device=self.device,
                config=self.config.to_dict(),
                history=self.history,
                best_metric=self.best_metric,
                best_epoch=self.best_epoch,
            ),
        )

    def _add_skipped(self, rows: list[dict[str, str]]) -> None:
        known = {row["path"] for row in self.skipped}
        for row in rows:
            if row["path"] not in known:
                self.skipped.append(row)
                known.add(row["path"])

    def _report_skipped(self) -> None:
        """Gather every rank's undecodable videos; rank 0 lists them and writes skipped.txt."""
        own = [
            {"path": row["path"], "reason": row["reason"]}
            for row in self.dataset.skipped.as_dicts()
        ]
        for rows in distributed.all_gather_objects(self.context, own):
            self._add_skipped(rows)
        if not self.context.is_main:
            return
        if self.skipped:
            path = write_skipped(self.skipped, self.run_dir / SKIPPED_TXT)
            self._say(f"{len(self.skipped)} video(s) could not be decoded and were skipped:")
            for row in self.skipped[:20]:
                self._say(f"  {row['path']}: {row['reason']}")
            self._say(f"(all listed in {path})")

    def _say(self, message: str) -> None:
        log.info(message)
        if self.context.is_main and self.config.progress:
            tqdm.write(message, file=sys.stderr)
