"""From scores to events, and how events are measured: the decision tracker that the timeline,
calibration and the live watcher share, event matching and metrics, and curves. Below both
``engine`` and ``inference``; imports neither."""
