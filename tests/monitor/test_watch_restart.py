"""``resaction watch`` killed with SIGKILL while its webhook receiver is down, then restarted:
every event in the log reaches the receiver, repeats only with the same idempotency key; and the
metrics endpoint serves the watcher's counters."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from .fight_model import clip_path
from .receiver import Receiver
from .streams import free_port
from .tiny_model import save_tiny_tsn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_tsn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_tsn(tmp_path_factory.mktemp("watch") / "tiny.pt")


def watch_command(cameras: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    code = "from resaction.cli import main; main()"
    return [
        sys.executable,
        "-c",
        code,
        "watch",
        str(cameras),
        "-c",
        str(checkpoint),
        "--out",
        str(out),
        "--threads",
        "1",
        *extra,
    ]


def logged_events(out: Path) -> list[tuple[str, str]]:
    if not (out / "events.db").exists():
        return []
    with sqlite3.connect(out / "events.db") as db:
        try:
            return db.execute("SELECT id, state FROM events").fetchall()
        except sqlite3.OperationalError:
            return []


def test_killed_watcher_delivers_every_logged_event_after_restart(
    tiny_tsn: Path,
    tmp_path: Path,
    videos_dir: Path,
) -> None:
    receiver = Receiver()  # not started: connection refused
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "defaults:\n  threshold: 0.01\n  min_duration: 0\n  min_gap: 0\n  cooldown: 0\n"
        "  classes: [fight, noFight]\n  post: 0.5\n"
        f"cameras:\n  - {{name: a, url: '{clip_path(videos_dir, 'nofi148')}', loop: true}}\n"
        f"  - {{name: b, url: '{clip_path(videos_dir, 'fi131')}', loop: true}}\n"
        f"sinks: [jsonl, {{webhook: '{receiver.url}'}}]\n"
    )
    out = tmp_path / "out"
    first = subprocess.Popen(
        watch_command(cameras, tiny_tsn, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(logged_events(out)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before = logged_events(out)
    assert len(before) >= 3 and any(state == "open" for _, state in before)

    receiver.start()
    try:
        port = free_port()
        second = subprocess.run(
            watch_command(cameras, tiny_tsn, out, "--duration", "3", "--metrics-port", str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr[-2000:]
    finally:
        receiver.stop()
    keys = Counter(request.key for request in receiver.all())
    for event_id, _ in before:
        assert keys[f"{event_id}:started"] >= 1 and keys[f"{event_id}:ended"] >= 1
    bodies: dict[str, bytes] = {}
    for request in receiver.all():
        assert bodies.setdefault(request.key, request.raw) == request.raw  # a repeat is the same
    for event_id, state in before:  # the restarted watcher says which events it closed for it
        ended = [line for line in second.stdout.splitlines() if line.endswith(event_id)]
        assert (state == "open") == any("(recovered:" in line for line in ended), ended
    for event_id, state in logged_events(out):
        assert state == "closed"
        assert keys[f"{event_id}:started"] >= 1


def test_metrics_are_served_on_loopback(tiny_tsn: Path, tmp_path: Path, videos_dir: Path) -> None:
    from resaction.monitor.config import load_watch_config
    from resaction.monitor.watcher import Watcher, WatchOptions
    from resaction.runtime.loading import load_model

    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        f"cameras:\n  - {{name: hall, url: '{clip_path(videos_dir, 'nofi148')}', loop: true}}\n"
    )
    port = free_port()
    options = WatchOptions(out=tmp_path / "out", metrics_port=port)
    watcher = Watcher(load_watch_config(cameras), load_model(tiny_tsn), options).start()
    try:
        time.sleep(3.5)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        watcher.stop()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values['resaction_watch_frames_total{camera="hall"}'] > 30
    assert 20 < values['resaction_watch_input_fps{camera="hall"}'] < 40  # a 30 fps file
    # tiny_tsn was trained on segments: 2 units over a 2 s window, one window a second.
    assert values['resaction_watch_windows_total{camera="hall"}'] >= 2
    assert values['resaction_watch_camera_state{camera="hall",state="live"}'] == 1
    assert values['resaction_watch_camera_state{camera="hall",state="down"}'] == 0
    assert 'resaction_watch_dropped_frames_total{camera="hall"}' in values  # before any drop
    assert values['resaction_watch_latency_seconds_count{camera="hall"}'] >= 2
    assert values["resaction_watch_batch_size_count"] >= 3
