"""The watcher's Prometheus metrics, in a registry of its own (two watchers in one process, as in
the tests, do not collide); ``serve(port)`` exposes them on loopback for ``--metrics-port``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, start_http_server

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
        self.state = Enum(
            "resaction_watch_camera_state",
            "Camera health",
            ["camera"],
            states=CAMERA_STATES,
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

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
