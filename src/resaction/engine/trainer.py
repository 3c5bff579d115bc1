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
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from resaction.data.loader import EpochSampler, make_loader
from resaction.data.spec import ClipSpec
from resaction.engine import distributed
from resaction.engine.config import TrainConfig, resolve_defaults, save_config
from resaction.engine.logs import (
    SKIPPED_TXT,
    RunLogger,
    epoch_line,
    merge_skipped,
    progress_numbers,
    report_skipped,
)
from resaction.engine.train_forward import ForwardPath
from resaction.engine.train_inputs import (
    LabelledVideos,
    TrainingTask,
    nothing_trained,
    training_pipeline,
    validation_row,
)
from resaction.engine.train_setup import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    TrainResult,
    build_model,
    build_optimisation,
    check_run_dir,
    read_last_checkpoint,
    remove_unused_folders,
)
from resaction.engine.train_state import (
    BestEpoch,
    EpochTotals,
    Position,
    restore_training_state,
    seed_everything,
    training_state,
    warn_if_inexact,
)
from resaction.models.checkpoint import save_checkpoint
from resaction.progress import progress_bar

log = logging.getLogger(__name__)


def train(config: TrainConfig, task: TrainingTask | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.data``; data parallel when launched by ``torchrun``.

    ``task`` replaces supervised training on the data's labels (``engine.pretrain`` uses it).
    """
    owns_group = not torch.distributed.is_initialized()
    context = distributed.setup(config.device)
    try:
        result = Trainer(resolve_defaults(config), context, task).fit()
    except BaseException:
        if owns_group:
            distributed.teardown(context, together=False)
        raise
    if owns_group:
        distributed.teardown(context)
    return result


class Trainer:
    """One run's state. ``fit`` does the work; the pieces are methods so each stays short."""

    def __init__(
        self,
        config: TrainConfig,
        context: distributed.DistContext,
        task: TrainingTask | None = None,
    ) -> None:
        self.config = config
        self.task = task or LabelledVideos()
        self.context = context
        self.device = context.device
        self.run_dir = Path(config.out)
        self.history: list[dict[str, Any]] = []
        self.best = BestEpoch(config.monitor, config.monitor_mode, config.early_stopping)
        self.global_step = 0
        self.skipped: list[dict[str, str]] = []

    # ------------------------------------------------------------------ set-up

    def fit(self) -> TrainResult:
        check = functools.partial(check_run_dir, self.run_dir, self.config.resume)
        made = distributed.on_main(self.context, check)  # before any work
        try:
            return self._fit()
        except BaseException:
            if self.context.is_main:
                remove_unused_folders(self.run_dir, made)
            raise

    def _fit(self) -> TrainResult:
        config = self.config
        resumed = self._read_resume_checkpoint()
        data = self.task.data(
            config, resumed and list(resumed["classes"]), self.run_dir / LAST_CHECKPOINT
        )
        self.classes = data.classes
        self.val_entries = data.val
        self.preprocess, self.protocol = training_pipeline(config, data.train, self._say)
        self.use_amp = bool(config.amp if config.amp is not None else self.device.type == "cuda")
        if self.use_amp and self.device.type != "cuda":
            warnings.warn("--amp is only used on CUDA; training in float32", stacklevel=2)
            self.use_amp = False
        self.config = dataclasses.replace(
            config, preprocess=self.preprocess, protocol=self.protocol, amp=self.use_amp
        )
        seed_everything(config.seed)
        self._build(data.train, resumed)
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
            best_metric=self.best.metric,
            classes=self.classes,
            skipped=self.skipped,
            select=config.select,
            world_size=self.context.world_size,
        )

    def _build(self, entries: list[Any], resumed: dict[str, Any] | None) -> None:
        """The model, its forward path, the data and the optimisation of this run."""
        config = self.config
        model, self.pruned = build_model(
            config, len(self.classes), self.preprocess, resumed, self._say
        )
        self.model = model.to(self.device)
        self.forward = ForwardPath(
            self.model,
            self.context,
            compile=config.compile,
            freeze_bn=config.freeze_bn,
            say=self._say,
        )
        self._build_data(entries)
        optimisation = build_optimisation(
            config,
            self.model,
            [entry.label for entry in entries],
            len(self.classes),
            self.steps_per_epoch,
            self.device,
            self.use_amp,
        )
        self.optimizer, self.scheduler = optimisation.optimizer, optimisation.scheduler
        self.scaler, self.criterion = optimisation.scaler, optimisation.criterion
        self.total_steps, self.warmup_steps = optimisation.total_steps, optimisation.warmup_steps

    def _read_resume_checkpoint(self) -> dict[str, Any] | None:
        """Rank 0's ``last.pt`` on every rank, when resuming and there is one."""
        if not self.config.resume:
            return None
        read = functools.partial(read_last_checkpoint, self.run_dir, self.config.model, self._say)
        return distributed.on_main(self.context, read)

    def _build_data(self, entries: list[Any]) -> None:
        config = self.config
        self.dataset = self.task.dataset(ClipSpec.from_dict(self.preprocess), entries, config.seed)
        self.sampler = EpochSampler(
            [entry.label for entry in entries],
            seed=config.seed,
            balance=config.balance == "sampler",
            num_classes=len(self.classes),
            rank=self.context.rank,
            world_size=self.context.world_size,
        )
        self.loader = make_loader(
            self.dataset,
            config.batch_size,
            train=True,
            num_workers=config.num_workers,
            seed=config.seed,
            sampler=self.sampler,
            keep_empty=True,
        )
        batches = math.ceil(self.sampler.per_rank / config.batch_size)
        if config.max_steps_per_epoch is not None:
            batches = min(batches, config.max_steps_per_epoch * config.accumulate)
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / config.accumulate)

    def _restore(self, payload: dict[str, Any]) -> tuple[Position, EpochTotals]:
        """Load optimiser, schedule and RNG state; return where in which epoch to go on."""
        path = self.run_dir / LAST_CHECKPOINT
        warn_if_inexact(payload.get("config", {}), payload["sampler"], self.config, self.context)
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
        self.best.metric, self.best.epoch = resumed.best_metric, resumed.best_epoch
        self.global_step = resumed.position.step
        position = resumed.position
        self._say(
            f"resuming {path}: epoch {position.epoch + 1}, batch {position.batches_done}, "
            f"step {position.step}"
        )
        # partial sums of a mid-epoch checkpoint are global: count them once, on rank 0
        return position, resumed.totals if self.context.is_main else EpochTotals()

    # ------------------------------------------------------------------ the loop

    def _loop(self, start: Position, totals: EpochTotals) -> None:
        config = self.config
        batches_done = start.batches_done
        for epoch in range(start.epoch, config.epochs):
            if self.best.stale(self.history):
                self._say(
                    f"early stopping: {config.monitor} has not improved for "
                    f"{config.early_stopping} epochs (best {self.best.metric:.4f} at epoch "
                    f"{self.best.epoch})"
                )
                break
            self.forward.set_frozen(epoch < config.freeze_backbone_epochs)
            row = {"epoch": epoch + 1, **self._train_epoch(epoch, batches_done, totals)}
            batches_done, totals = 0, EpochTotals()
            row.update(self._validate())
            self.history.append(row)
            improved = self.best.update(row)
            if self.context.is_main:
                done = Position(epoch=epoch + 1, step=self.global_step)
                if improved:
                    self._save(self.run_dir / BEST_CHECKPOINT, done, EpochTotals())
                self._save(self.run_dir / LAST_CHECKPOINT, done, EpochTotals())
            self.logger.epoch(self.history, self.global_step)
            self._say(epoch_line(row, config.epochs))

    def _train_epoch(self, epoch: int, batches_done: int, totals: EpochTotals) -> dict[str, Any]:
        config = self.config
        self.model.train()
        self.loader.set_epoch(epoch, start=batches_done * config.batch_size)
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
        if not summed.count:
            raise nothing_trained(self.dataset, epoch)
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
    ) -> tuple[float, float]:
        config = self.config
        clips = clips.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        no_sync = self.forward.no_sync()
        skip_sync = no_sync is not None and not self._ends_step(index)
        with no_sync() if skip_sync else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                loss, correct = self.task.loss(self.forward, clips, labels, self.criterion)
            self.scaler.scale(loss / config.accumulate).backward()
        return float(loss.detach()), correct

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
        row, skipped = validation_row(
            self.model,
            self.val_entries,
            self.classes,
            self.preprocess,
            self.protocol,
            self.config,
        )
        self.skipped = merge_skipped(self.skipped, skipped)
        return row

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
                best_metric=self.best.metric,
                best_epoch=self.best.epoch,
            ),
        )

    def _report_skipped(self) -> None:
        """Gather every rank's undecodable videos; rank 0 lists them and writes skipped.txt."""
        own = [
            {"path": row["path"], "reason": row["reason"]}
            for row in self.dataset.skipped.as_dicts()
        ]
        for rows in distributed.all_gather_objects(self.context, own):
            self.skipped = merge_skipped(self.skipped, rows)
        if self.context.is_main and self.skipped:
            report_skipped(self.skipped, self.run_dir / SKIPPED_TXT, self._say)

    def _say(self, message: str) -> None:
        log.info(message)
        if self.context.is_main and self.config.progress:
            tqdm.write(message, file=sys.stderr)
