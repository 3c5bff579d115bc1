"""The Ray engine of batch inference: CPU tasks decode, a pool of actors scores (``batch``)."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resaction.errors import ConfigError, ResactionError, first_line, last_line
from resaction.inference.archive import VideoKey
from resaction.inference.batch_job import BatchJob, Outcomes
from resaction.inference.batch_work import VideoScorer, WorkSpec, decode_views

log = logging.getLogger(__name__)

RAY_MISSING = (
    "Ray is not installed: pip install 'resaction[ray]', or pass --local to use processes "
    "on this machine only"
)

LOCAL_HINT = "drop --address for a local run"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def connect(
    address: str | None = None, num_cpus: int | None = None, local_hint: str = LOCAL_HINT
) -> bool:
    """Join this process's Ray session, the cluster at ``address``, or a new local one.

    Returns whether this call connected (and so should disconnect). A local instance listens
    on loopback only, without the dashboard, and keeps its logs out of the terminal.
    ``local_hint`` ends the errors: how the command runs without a cluster.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        start_local_ray(num_cpus=num_cpus, **quiet)
        return True
    check_reachable(address, local_hint=local_hint)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(
            f"cannot join the Ray cluster at {address} ({first_line(error)}): check the address "
            f"(auto, HOST:PORT or ray://HOST:10001) or {local_hint}"
        ) from None
    return True


def check_reachable(address: str, timeout_s: float = 5.0, local_hint: str = LOCAL_HINT) -> None:
    """Fail fast on a cluster address where nothing listens (Ray itself retries for minutes)."""
    if address == "auto":
        return
    where = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({error.strerror or error}): start one with "
            f"'ray start --head' or {local_hint}"
        ) from None


def start_local_ray(num_cpus: int | None = None, **options: Any) -> None:
    """``ray.init`` of a one-machine instance bound to 127.0.0.1.

    Ray turns a loopback node address into the machine's routable one unless it believes it
    runs on macOS or Windows; that switch is turned for the start only, so nothing listens on
    an outside interface. Usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says
    otherwise.
    """
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    saved = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if saved is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(
            address="local",
            include_dashboard=False,
            num_cpus=num_cpus,
            _node_ip_address="127.0.0.1",
            **options,
        )
    finally:
        if saved is not None:
            constants.ENABLE_RAY_CLUSTER = saved


@contextmanager
def shipped_model(model_bytes: bytes, suffix: str) -> Iterator[Path]:
    """A model file sent to a Ray worker as bytes, on the worker's disk while the block runs
    (nodes need not share a disk for it)."""
    with tempfile.TemporaryDirectory(prefix="resaction-model-") as folder:
        path = Path(folder) / f"model{suffix}"
        path.write_bytes(model_bytes)
        yield path


class ModelWorker:
    """A Ray actor holding one loaded model; the driver replaces it if its process dies.

    The model file travels as bytes through the object store, so nodes need not share a disk
    for it (videos must be at the same path on every node).
    """

    def __init__(
        self, model_bytes: bytes, suffix: str, spec: str, device: str, threads: int
    ) -> None:
        with shipped_model(model_bytes, suffix) as path:
            self.scorer = VideoScorer(
                path, WorkSpec.from_json(spec), device=device, threads=threads
            )

    def score_views(self, views: Any, decode_seconds: float) -> dict[str, Any]:
        return self.scorer.score_views(views, decode_seconds)

    def score(self, path: str) -> dict[str, Any]:
        return self.scorer.score(path)


@dataclass
class _Video:
    key: VideoKey
    attempts: int = 0
    views: Any = None
    decode_seconds: float = 0.0


class _Pool:
    """Model actors, which of them are free, and the call each busy one is running.

    A dead actor is replaced by a new one in its slot (rather than restarted by Ray, which
    would need the driver-owned model bytes to outlive any failure and warns that they may not).
    """

    def __init__(self, ray: Any, job: BatchJob, workers: int, gpus: int, cpus: float) -> None:
        self.ray = ray
        self.model = ray.put(job.model_path.read_bytes())
        self.make = ray.remote(
            num_gpus=1 if gpus else 0,
            num_cpus=actor_cpus(cpus, workers),
            max_restarts=0,
        )(ModelWorker)
        self.args = (job.model_path.suffix, job.spec.to_json(), "cuda" if gpus else "cpu", 1)
        self.generation = 0
        self.actors = [self._new(index) for index in range(workers)]
        self.free: deque[int] = deque(range(workers))
        self.running: dict[Any, tuple[int, _Video]] = {}

    def _new(self, index: int) -> Any:
        self.generation += 1
        name = f"resaction-batch-{os.getpid()}-{index}-{self.generation}"
        return self.make.options(name=name).remote(self.model, *self.args)

    def replace(self, index: int) -> None:
        self.ray.kill(self.actors[index], no_restart=True)
        self.actors[index] = self._new(index)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)


def run_on_ray(todo: list[VideoKey], job: BatchJob, outcomes: Outcomes) -> tuple[int, int]:
    """Score ``todo`` on Ray; (model workers, GPUs they use) go to ``outcomes.workers``."""
    ray = import_ray()
    if not ray.is_initialized():
        where = f"joining Ray at {job.address}" if job.address else "starting Ray on 127.0.0.1"
        outcomes.note(f"{where}...")
    connected = connect(job.address, job.num_cpus)
    pool = None
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        workers = job.num_workers or gpus or max(1, int(resources.get("CPU", 2)) // 2)
        if gpus and workers > gpus:  # an actor that can never be placed would hold its video
            log.warning("%d workers asked for on %d GPUs: using %d", workers, gpus, gpus)
            workers = gpus
        outcomes.workers = (workers, min(gpus, workers))
        pool = _Pool(ray, job, workers, gpus, float(resources.get("CPU", 1)))
        _RayRun(ray, pool, job, outcomes).run(todo)
    finally:
        if pool is not None:
            pool.close()
        if connected:
            ray.shutdown()


def actor_cpus(cpus: float, workers: int) -> float:
    """The CPU share a model actor reserves: one, or less so that a CPU stays for decoding.

    Actors that reserved every CPU would leave the decode tasks unscheduled forever.
    """
    return min(1.0, max(cpus - 1.0, 0.0) / workers)


class _RayRun:
    """The driver loop: keep decodes and actors busy, handle each outcome as it arrives."""

    def __init__(self, ray: Any, pool: _Pool, job: BatchJob, outcomes: Outcomes) -> None:
        self.ray = ray
        self.pool = pool
        self.job = job
        self.outcomes = outcomes
        self.decode = ray.remote(decode_views).options(num_cpus=1, num_returns=2, max_retries=3)
        self.waiting: deque[_Video] = deque()
        self.decoding: dict[Any, _Video] = {}
        self.decoded: deque[_Video] = deque()
        self.max_decoding = 2 * len(pool.actors) + 2
        self.deaths_in_a_row = 0

    def run(self, todo: list[VideoKey]) -> None:
        self.waiting.extend(_Video(key) for key in todo)
        while self.waiting or self.decoding or self.decoded or self.pool.running:
            self._submit()
            ready, _ = self.ray.wait([*self.decoding, *self.pool.running], num_returns=1)
            for ref in ready:
                if ref in self.decoding:
                    self._decoded(ref, self.decoding.pop(ref))
                else:
                    self._scored(ref, *self.pool.running.pop(ref))

    def _submit(self) -> None:
        timeline = self.job.spec.mode == "timeline"
        while not timeline and self.waiting and self._decode_room():
            video = self.waiting.popleft()
            status, views = self.decode.remote(video.key.path, self.job.pipeline)
            video.views = views
            self.decoding[status] = video
        source = self.waiting if timeline else self.decoded
        while self.pool.free and source:
            index, video = self.pool.free.popleft(), source.popleft()
            actor = self.pool.actors[index]
            if timeline:
                ref = actor.score.remote(video.key.path)
            else:
                ref = actor.score_views.remote(video.views, video.decode_seconds)
            self.pool.running[ref] = (index, video)

    def _decode_room(self) -> bool:
        return len(self.decoding) + len(self.decoded) < self.max_decoding

    def _decoded(self, ref: Any, video: _Video) -> None:
        try:
            status = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:  # its process died max_retries + 1 times
            self.outcomes.failure(video.key.fields(), f"decoding crashed: {_ray_reason(error)}")
            return
        if not status["ok"]:
            self.outcomes.failure(video.key.fields(), status["error"])
            return
        video.decode_seconds = status["seconds"]
        self.decoded.append(video)

    def _scored(self, ref: Any, index: int, video: _Video) -> None:
        self.pool.free.append(index)
        try:
            row = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as error:
            if getattr(error, "actor_init_failed", False):  # the model, not the video
                raise ResactionError(
                    f"a model worker could not start: {last_line(error)}"
                ) from None
            self.pool.replace(index)
            self._worker_died(video, _ray_reason(error))
            return
        except self.ray.exceptions.RayError as error:  # e.g. its views were lost with a node
            video.views = None
            self._worker_died(video, _ray_reason(error))
            return
        self.deaths_in_a_row = 0
        self.outcomes.result(video.key, row)

    def _worker_died(self, video: _Video, reason: str) -> None:
        self.deaths_in_a_row += 1
        if self.deaths_in_a_row > 2 * self.outcomes.max_attempts * len(self.pool.actors):
            raise ResactionError(
                f"batch workers keep dying without finishing a video (last: {reason}); "
                "results so far are saved, run the same command again to go on"
            )
        video.attempts += 1
        if not self.outcomes.retry(video.key, video.attempts, reason):
            return
        if video.views is None or self.job.spec.mode == "timeline":
            self.waiting.appendleft(video)
        else:
            self.decoded.appendleft(video)


def _ray_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = next((line for line in text if line.strip()), type(error).__name__)
    return f"{type(error).__name__}: {first[:160]}"
