"""One group of cameras on a Ray actor: a ``Watcher`` over the group, with the group's lock.

``GroupWatcher`` builds its watcher and starts it in ``__init__``, so an actor that Ray restarts
goes on watching by itself, on the same ``OUT/ray/<group>/`` log (see ``cluster``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

from resaction.errors import ResactionError, first_line
from resaction.folder_lock import FolderLock
from resaction.inference.batch_ray import shipped_model
from resaction.monitor.config import WatchConfig
from resaction.monitor.watcher import WatchOptions

log = logging.getLogger(__name__)

LOCK_WAIT_S = 10.0  # a restarted actor waits this long for its dead predecessor's lock


class GroupWatcher:
    """The Ray actor of one group: ``start(model)`` builds the group's watcher and starts it,
    then ``poll`` and ``finish`` answer the driver.

    The model comes with ``start``, not with the constructor: Ray warns that an actor whose
    constructor takes an object-store argument may fail to restart if it is lost (ray#53727).
    A restarted actor answers ``started: false`` and the driver, which holds the model for the
    run, starts it again. A user error while starting (a class the model lacks, a log it cannot
    open, the group's lock) is kept and answered rather than raised, so the driver can print it
    as one line."""

    def __init__(
        self, group: str, config: WatchConfig, suffix: str, options: WatchOptions, threads: int
    ) -> None:
        self.group = group
        self.config = config
        self.suffix = suffix
        self.options = options
        self.threads = threads
        self.messages: deque[dict[str, Any]] = deque(maxlen=1000)
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None
        self.lock: FolderLock | None = None
        self.thread: threading.Thread | None = None

    def start(self, model_bytes: bytes) -> dict[str, Any]:
        """Load the model, take the group's lock, start watching; then as ``poll``."""
        import torch

        from resaction.monitor.watcher import Watcher, watch_lock
        from resaction.runtime.loading import load_model

        if self.thread is not None or self.error is not None:
            return self.poll()
        torch.set_num_threads(self.threads)
        try:
            self.lock = watch_lock(Path(self.options.out), wait=LOCK_WAIT_S)
            with shipped_model(model_bytes, self.suffix) as path:
                model = load_model(path)
            self.watcher = Watcher(self.config, model, self.options, self.lock)
        except ResactionError as error:
            self.error = str(error)
            if self.lock is not None:
                self.lock.close()
            return self.poll()
        self.watcher.subscribe(self.messages.append)
        self.thread = threading.Thread(target=self._run, name=f"resaction-{self.group}")
        self.thread.daemon = True
        self.thread.start()
        return self.poll()

    def _run(self) -> None:
        try:
            self.summary = self.watcher.run()
        except BaseException as error:  # reported by poll and finish
            log.exception("group %s failed", self.group)
            self.error = first_line(error)
        finally:
            if self.lock is not None:
                self.lock.close()

    def _drain(self) -> list[dict[str, Any]]:
        out = []
        while self.messages:
            out.append(self.messages.popleft())
        return out

    def where(self) -> dict[str, Any]:
        import ray

        return {"group": self.group, "pid": os.getpid(), "node": ray.util.get_node_ip_address()}

    def poll(self) -> dict[str, Any]:
        """Where the group runs, its cameras, new messages, and whether it has finished."""
        running = self.thread is not None and self.thread.is_alive()
        started = self.thread is not None or self.error is not None
        return {
            **self.where(),
            "cameras": self.watcher.cameras_status() if running else [],
            "messages": self._drain(),
            "started": started,
            "done": started and not running,
            "error": self.error,
        }

    def request_stop(self) -> None:
        if self.thread is not None:
            self.watcher.request_stop()

    def finish(self, timeout: float) -> dict[str, Any]:
        """Stop watching (closing open events, delivering for the watcher's delivery timeout)
        and answer the group's summary."""
        self.request_stop()
        if self.thread is not None:
            self.thread.join(timeout)
        return {
            **self.where(),
            "summary": self.summary,
            "messages": self._drain(),
            "error": self.error or _unfinished(self.summary, self.thread),
        }


def _unfinished(summary: dict[str, Any] | None, thread: threading.Thread | None) -> str | None:
    if summary is not None:
        return None
    return "stopped before it started" if thread is None else "did not stop in time"
