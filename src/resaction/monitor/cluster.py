"""Watching cameras across a Ray cluster: the cameras split into groups, a watcher per group.

Each group is one Ray actor (``GroupWatcher``) that runs an ordinary ``Watcher`` over its
cameras, with everything a watcher owns: its event log, evidence and deliverers, in
``OUT/ray/<group>/``. So "an event is written down before it is delivered" is the watcher's own
rule, unchanged, and every log has exactly one deliverer per sink (two would send twice). Webhooks
are the same URL for every group; the idempotency keys (``<event id>:<kind>``) never collide
because event ids are random. The ``jsonl`` sink writes ``OUT/ray/<group>/events.jsonl``, a file
per group, so two processes never append to one file. ``stdout`` is refused: an actor's standard
output is a Ray log file on its node, not the terminal of the person who asked for it.

Restarts: an actor whose process dies is restarted by Ray (``max_restarts``) on the same node
while that node is alive (soft node affinity), the driver sends it the model again, and it reopens
the same log: the events it left open are closed as recovered and what was not acknowledged is
sent again, with the same body and key. A lock file per group keeps a second watcher (a stale
actor, another driver) off that log. Cameras keep their group between runs
(``OUT/ray/groups.json``) for the same reason: a camera's unfinished business is in its group's log.

The driver (``Cluster``) places the groups, polls them for camera states and events, stops them
all on ``duration``, ``request_stop()``, Ctrl-C or SIGTERM, and returns the summary across groups.
The actor itself is ``cluster_group.GroupWatcher``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from resaction.errors import CheckpointError, ConfigError, ResactionError, last_line
from resaction.inference.batch_ray import connect, import_ray
from resaction.monitor.cluster_group import GroupWatcher
from resaction.monitor.config import CameraConfig, WatchConfig
from resaction.monitor.watcher import WatchOptions

log = logging.getLogger(__name__)

STOP_MARGIN_S = 30.0  # beyond the delivery timeout, for a group to stop and answer


def group_names(count: int) -> list[str]:
    return [f"g{index}" for index in range(count)]


def split_cameras(
    cameras: list[CameraConfig],
    groups: int | None = None,
    per_actor: int | None = None,
    default: int = 1,
) -> dict[str, list[CameraConfig]]:
    """Cameras dealt round robin into ``groups`` groups, or groups of at most ``per_actor``,
    else ``default`` groups. Cameras added at the end of the file keep the others where they
    were."""
    if groups is not None and per_actor is not None:
        raise ConfigError("give --groups or --cameras-per-actor, not both")
    count = groups or (-(-len(cameras) // per_actor) if per_actor else default)
    count = max(1, min(count, len(cameras)))
    split: dict[str, list[CameraConfig]] = {name: [] for name in group_names(count)}
    for index, camera in enumerate(cameras):
        split[f"g{index % count}"].append(camera)
    return split


def keep_assignment(out: Path, split: dict[str, list[CameraConfig]]) -> None:
    """Refuse to move a camera to another group than in the last run in ``out``: its open
    events and undelivered messages are in the old group's log. Then record this split."""
    record = out / "ray" / "groups.json"
    now = {camera.name: group for group, cameras in split.items() for camera in cameras}
    try:
        before = json.loads(record.read_text())
    except (OSError, ValueError):
        before = {}
    moved = [
        f"{name}: {before[name]} -> {group}"
        for name, group in now.items()
        if before.get(name, group) != group
    ]
    if moved:
        raise ConfigError(
            f"cameras would move between groups since the last run in {out} ({moved[0]}): "
            "use the same --groups and camera order as before, or another --out"
        )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({**before, **now}, indent=1) + "\n")


def check_sinks(sinks: list[str]) -> None:
    if "stdout" in sinks:
        raise ConfigError(
            "the stdout sink cannot be used with --ray (an actor's stdout is a log file on its "
            "node); use jsonl or a webhook, or watch without --ray"
        )


@dataclass
class ClusterOptions:
    """How to spread the watch; ``watch`` holds everything else (``out``, ``duration``...)."""

    address: str | None = None  # None: a local instance on loopback; else auto, HOST:PORT, ray://
    groups: int | None = None
    cameras_per_actor: int | None = None
    max_restarts: int = 3
    threads: int = 1  # model threads in each group
    num_cpus: int | None = None  # CPUs of a local instance
    poll: float = 1.0
    watch: WatchOptions = field(default_factory=WatchOptions)


@dataclass
class _Group:
    name: str
    cameras: list[CameraConfig]
    actor: Any
    pending: Any = None  # the poll call in flight
    pid: int | None = None
    node: str | None = None
    state: str = "starting"  # starting, running, restarting, done, lost
    restarts: int = 0
    unstarted: bool = True  # a new or restarted actor, to be sent the model
    wait_until: float = 0.0  # no poll before (monotonic), while Ray restarts the actor
    status: list[dict[str, Any]] = field(default_factory=list)


Listener = Callable[[dict[str, Any]], None]


class Cluster:
    """The driver: places a ``GroupWatcher`` per group, polls them, stops them, sums up.

    ``on_note(line)`` hears one line per step (placing, running, restarts, stopping);
    ``on_message(message)`` hears the groups' camera states and events (with a ``group`` key),
    the messages ``Watcher.subscribe`` gives."""

    def __init__(
        self,
        config: WatchConfig,
        model_path: Path,
        options: ClusterOptions | None = None,
        on_note: Callable[[str], None] | None = None,
        on_message: Listener | None = None,
    ) -> None:
        check_sinks(config.sinks)
        if not Path(model_path).is_file():
            raise CheckpointError(f"model file {model_path} does not exist; pass a .pt or .onnx")
        self.config = config
        self.model_path = Path(model_path)
        self.options = options or ClusterOptions()
        self.out = Path(self.options.watch.out).resolve()
        self.split: dict[str, list[CameraConfig]] = {}
        self.on_note = on_note or (lambda line: None)
        self.on_message = on_message or (lambda message: None)
        self.groups: list[_Group] = []
        self.notes: list[str] = []  # every line given to on_note
        self.ray: Any = None
        self.model: Any = None  # the model file's bytes in Ray's object store
        self.connected = False
        self.started = 0.0
        self._stop = threading.Event()

    def note(self, line: str) -> None:
        log.info(line)
        self.notes.append(line)
        self.on_note(line)

    def start(self) -> Cluster:
        """Join or start Ray and place every group (they start watching as they come up).
        Without ``groups`` or ``cameras_per_actor``, each node with CPUs gets one group: one
        watcher per machine batches all of that machine's cameras."""
        if self.options.groups and self.options.cameras_per_actor:
            raise ConfigError("give --groups or --cameras-per-actor, not both")
        self.ray = import_ray()
        if not self.ray.is_initialized():
            where = self.options.address or "a local instance on 127.0.0.1"
            self.note(f"connecting to Ray at {where}")
        self.connected = connect(
            self.options.address, self.options.num_cpus, "use --ray local for this machine"
        )
        try:
            self._place()
        except BaseException:
            self.close()
            raise
        return self

    def _place(self) -> None:
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [
            node["NodeID"]
            for node in ray.nodes()
            if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0
        ]
        options = self.options
        self.split = split_cameras(
            self.config.cameras, options.groups, options.cameras_per_actor, len(nodes) or 1
        )
        keep_assignment(self.out, self.split)
        cpus = float(ray.cluster_resources().get("CPU", 1))
        make = ray.remote(
            num_cpus=min(1.0, cpus / len(self.split)),
            max_restarts=self.options.max_restarts,
            max_task_retries=0,
        )(GroupWatcher)
        # held for the run: a restarted actor is sent it again
        self.model = ray.put(self.model_path.read_bytes())
        for index, (name, cameras) in enumerate(self.split.items()):
            placement = {}
            if nodes:  # spread over the nodes; a restart returns to the same node if it lives
                node = nodes[index % len(nodes)]
                placement["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
            actor = make.options(name=f"resaction-watch-{os.getpid()}-{name}", **placement).remote(
                name,
                replace(self.config, cameras=cameras),
                self.model_path.suffix,
                self._group_options(index, name),
                self.options.threads,
            )
            self.groups.append(_Group(name, cameras, actor))
            listed = ", ".join(camera.name for camera in cameras)
            self.note(f"{name}: placing {len(cameras)} camera(s) ({listed})")

    def _group_options(self, index: int, name: str) -> WatchOptions:
        watch = self.options.watch
        port = watch.metrics_port
        return replace(
            watch,
            out=self.out / "ray" / name,
            duration=None,  # the driver stops every group at once
            metrics_port=None if port is None else port + index,
        )

    def request_stop(self) -> None:
        """Ask ``run()`` to stop every group (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> dict[str, Any]:
        """Watch until ``duration``, ``request_stop()``, Ctrl-C or SIGTERM, or every group has
        finished; the summary across groups."""
        self.start()
        with self._stop_on_signals():
            while not self._stop.is_set() and not self._finished():
                self.poll()
        return self.stop()

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM ask to stop (main thread only). Set after joining Ray, which
        replaces the driver's SIGTERM handler; and a KeyboardInterrupt raised inside a Ray call
        can leave the driver hung, so Ctrl-C must not raise one."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        wanted = (signal.SIGINT, signal.SIGTERM)
        before = {number: signal.getsignal(number) for number in wanted}
        for number in wanted:
            signal.signal(number, lambda *_: self.request_stop())
        try:
            yield
        finally:
            for number, handler in before.items():
                signal.signal(number, handler)

    def _finished(self) -> bool:
        """``duration`` counts from when every group has started (loading the model on a busy
        node takes seconds), so each camera is watched for about that long."""
        if not self.started and all(g.state != "starting" for g in self.groups):
            self.started = time.monotonic()
            self.note(f"all {len(self.groups)} group(s) started")
        duration = self.options.watch.duration
        elapsed = time.monotonic() - self.started if self.started else 0.0
        if duration is not None and self.started and elapsed >= duration:
            return True
        return all(group.state in ("done", "lost") for group in self.groups)

    def poll(self) -> None:
        """One round: ask every live group how it is, take the answers that come within
        ``options.poll`` seconds (a restarting group's answer waits for it)."""
        for group in self.groups:
            due = time.monotonic() >= group.wait_until
            if group.pending is None and due and group.state not in ("done", "lost"):
                actor = group.actor
                group.pending = (
                    actor.start.remote(self.model) if group.unstarted else actor.poll.remote()
                )
        pending = [group.pending for group in self.groups if group.pending is not None]
        if not pending:
            self._stop.wait(self.options.poll)
            return
        ready, _ = self.ray.wait(pending, num_returns=len(pending), timeout=self.options.poll)
        for group in self.groups:
            if group.pending is not None and group.pending in ready:
                ref, group.pending = group.pending, None
                self._answer(group, ref)

    def _answer(self, group: _Group, ref: Any) -> None:
        try:
            answer = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as error:
            self._died(group, error)
            return
        if answer["error"] and group.state == "starting":
            self.stop()
            raise ResactionError(f"group {group.name} could not start: {answer['error']}")
        group.unstarted = not answer["started"]
        if answer["pid"] != group.pid:
            again = ""
            if group.pid is not None:
                group.restarts, again = group.restarts + 1, " again"
            self.note(f"{group.name}: running{again} on {answer['node']} (pid {answer['pid']})")
        group.pid, group.node, group.state = answer["pid"], answer["node"], "running"
        group.status = answer["cameras"] or group.status
        self._tell(group, answer["messages"])
        if answer["done"]:
            group.state = "done"
            self.note(f"{group.name}: finished ({answer['error'] or 'every camera ended'})")

    def _died(self, group: _Group, error: BaseException) -> None:
        """A poll that failed: the actor is being restarted (Ray says unavailable: ask again
        later) or is dead for good (it could not start, or its restarts are spent)."""
        reason = last_line(error)[:160]
        if isinstance(error, self.ray.exceptions.ActorUnavailableError):
            group.wait_until = time.monotonic() + self.options.poll
            if group.state != "restarting":
                group.state = "restarting"
                self.note(f"{group.name}: its actor is down ({reason}); Ray restarts it")
            return
        group.state = "lost"
        self.note(f"{group.name}: lost after {group.restarts} restart(s) ({reason})")

    def _tell(self, group: _Group, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.on_message({**message, "group": group.name})

    def stop(self, delivery_timeout: float | None = None) -> dict[str, Any]:
        """Stop every group (each closes its open events and delivers what it can), collect
        their summaries, then remove the actors and leave Ray if this driver joined it."""
        self._stop.set()
        if not self.groups:
            self.close()
            return summarise([])
        self.note(f"stopping {len(self.groups)} group(s)")
        timeout = (delivery_timeout or 5.0) + STOP_MARGIN_S
        calls = {g.name: g.actor.finish.remote(timeout) for g in self.groups if g.state != "lost"}
        results = []
        for group in self.groups:
            results.append(self._finish(group, calls.get(group.name), timeout))
        self.close()
        return summarise(results)

    def _finish(self, group: _Group, call: Any, timeout: float) -> dict[str, Any]:
        base = {"group": group.name, "node": group.node, "pid": group.pid}
        base["restarts"] = group.restarts
        if call is None:
            return {**base, "summary": None, "error": "lost", "cameras": group.status}
        try:
            answer = self.ray.get(call, timeout=timeout + 5.0)
        except (self.ray.exceptions.RayError, TimeoutError) as error:
            return {**base, "summary": None, "error": last_line(error), "cameras": group.status}
        self._tell(group, answer["messages"])
        return {**base, **answer, "restarts": group.restarts, "cameras": group.status}

    def close(self) -> None:
        if self.ray is None:
            return
        for group in self.groups:
            self.ray.kill(group.actor, no_restart=True)
        if self.connected:
            self.ray.shutdown()
            self.connected = False
        self.ray = self.model = None


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary across groups: every camera (with its group), every group, event counts
    per sink added up, and whether everything was delivered."""
    cameras: list[dict[str, Any]] = []
    events: dict[str, dict[str, int]] = {}
    for result in results:
        summary = result.get("summary") or {}
        for camera in summary.get("cameras") or result.get("cameras") or []:
            cameras.append({**camera, "group": result["group"]})
        for sink, counts in (summary.get("events") or {}).items():
            for status, count in counts.items():
                events.setdefault(sink, {})
                events[sink][status] = events[sink].get(status, 0) + count
    delivered = all((r.get("summary") or {}).get("delivered_all") for r in results)
    return {"groups": results, "cameras": cameras, "events": events, "delivered_all": delivered}
