"""The watcher's Prometheus metrics, in a registry of its own (two watchers in one process, as in
the tests, do not collide); ``serve(port)`` exposes them on loopback for ``--metrics-port``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

CAMERA_STATES = ["connecting", "live", "reconnecting", "down", "ended"]
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class WatchMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter("resaction_watch_frames", "Frames decoded", ["camera"], registry=r)
        self.dropped = Counter(
            "resaction_watch_dropped_frames",
            "Frames dropped because the watcher was busy (never queued)",
            ["camera"],
            registry=r,
        )
        self.windows = Counter("resaction_watch_windows", "Windows scored", ["camera"], registry=r)
        self.events = Counter(
            "resaction_watch_events", "Events opened", ["camera", "label"], registry=r
        )
        self.input_fps = Gauge(
            "resaction_watch_input_fps",
            "Frames a second the camera delivers",
            ["camera"],
            registry=r,
        )
        self.latency = Histogram(
            "resaction_watch_latency_seconds",
            "Capture of a window's newest frame to its decision",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.state = Gauge(
            "resaction_watch_camera_state",
            "Camera health: 1 for the camera's current state, 0 for the others",
            ["camera", "state"],
            registry=r,
        )
        self.batch_size = Histogram(
            "resaction_watch_batch_size",
            "Units in one inference batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "resaction_watch_queue_depth", "Frames waiting for the network", registry=r
        )

    def add_camera(self, camera: str, labels: list[str]) -> None:
        """Every series of a camera at 0 from the start, so that an alert on a rate (drops,
        events) or on a state has a series to read before the first one happens."""
        for metric in (self.frames, self.dropped, self.windows, self.latency, self.input_fps):
            metric.labels(camera)
        for label in labels:
            self.events.labels(camera, label)
        self.set_state(camera, "connecting")

    def set_state(self, camera: str, state: str) -> None:
        """The camera's health as a ``state`` label (an ``Enum`` would name that label after
        the metric): ``resaction_watch_camera_state{state="down"} == 1`` alerts on it."""
        for each in CAMERA_STATES:
            self.state.labels(camera, each).set(1.0 if each == state else 0.0)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
