"""What a batch run is made of, shared by the driver and its engines: the options, the job the
engines run, the outcomes they report (the driver writes them) and the run's summary."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resaction.errors import ConfigError
from resaction.inference.archive import BatchStore, VideoKey
from resaction.inference.batch_work import MODES, WorkSpec
from resaction.inference.timeline import TimelineConfig
from resaction.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class BatchOptions:
    """How to run a batch. ``num_workers=None``: one per GPU, else half the CPUs (at least 1)."""

    mode: str = "predict"
    topk: int = 5
    timeline: dict[str, Any] = field(default_factory=dict)
    num_workers: int | None = None
    address: str | None = None
    local: bool = False
    num_cpus: int | None = None
    retry_failures: bool = False
    max_attempts: int = 3
    progress: bool = True

    def check(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.topk < 1:
            raise ConfigError(f"--topk must be at least 1, got {self.topk}")
        if self.num_workers is not None and self.num_workers < 1:
            raise ConfigError(f"--num-workers must be at least 1, got {self.num_workers}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.local and self.address is not None:
            raise ConfigError("--local runs without Ray: drop --address or --local")
        if self.mode == "timeline":
            try:
                TimelineConfig(**self.timeline).check()
            except TypeError as error:
                raise ConfigError(f"bad timeline option: {error}") from None


@dataclass
class BatchSummary:
    """What one ``run_batch`` call did."""

    out_dir: Path
    total: int
    already_done: int
    scored: int
    failed: int
    seconds: float
    engine: str
    workers: int
    gpus: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def videos_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.jsonl"

    @property
    def failures_path(self) -> Path:
        return self.out_dir / "failures.jsonl"


@dataclass(frozen=True)
class BatchJob:
    """What the engines need: the model file, what to compute, and how to decode."""

    model_path: Path
    spec: WorkSpec
    pipeline: str
    num_workers: int | None
    num_cpus: int | None = None
    address: str | None = None


class Outcomes:
    """Where engines report each video: the store commits it, the bar counts it.

    ``retry`` decides what happens to a video whose worker died under it: another attempt, or a
    failure row once ``max_attempts`` workers have died on it (a video that kills its decoder
    every time must not stall the archive).
    """

    def __init__(
        self,
        store: BatchStore,
        *,
        total: int,
        already_done: int,
        max_attempts: int,
        progress: bool,
        on_commit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.on_commit = on_commit
        self.scored = 0
        self.failed = 0
        self.workers = (0, 0)  # (model workers, GPUs they use), once the engine has decided
        self.bar = progress_bar(
            total=total,
            initial=already_done,
            desc="batch",
            unit="video",
            disable=not progress,
            dynamic_ncols=True,
        )

    def result(self, key: VideoKey, row: Mapping[str, Any]) -> None:
        if "error" in row:
            self.failure(key.fields(), str(row["error"]))
            return
        committed = {**key.fields(), **row}
        self.store.commit(committed)
        self.scored += 1
        self._advance()
        if self.on_commit is not None:
            self.on_commit(committed)

    def failure(self, fields: Mapping[str, Any], reason: str, attempts: int = 1) -> None:
        self.store.fail({**fields, "reason": reason, "attempts": attempts})
        self.failed += 1
        self._advance()

    def retry(self, key: VideoKey, attempts: int, reason: str) -> bool:
        """Whether to try a video again after its worker died (``attempts`` so far)."""
        if attempts < self.max_attempts:
            log.warning("%s: worker died (%s); trying again", key.path, reason)
            return True
        self.failure(
            key.fields(),
            f"the worker died on this video {attempts} times (last: {reason})",
            attempts,
        )
        return False

    def note(self, message: str) -> None:
        """A line above the progress bar (only logged when there is no bar)."""
        if self.bar.disable:
            log.info(message)
        else:
            self.bar.write(message, file=sys.stderr)

    def _advance(self) -> None:
        self.bar.update(1)
        if self.failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)

    def close(self) -> None:
        self.bar.close()
