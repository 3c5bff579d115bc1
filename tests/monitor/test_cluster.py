"""``watch --ray``: groups of file cameras on actors of a local Ray instance (loopback only),
events delivered to a real webhook receiver once per key, a killed actor restarted by Ray on
its own log, and the summary across groups."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resaction.cli import run_app
from resaction.errors import ConfigError
from resaction.inference.batch_ray import start_local_ray
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint
from resaction.monitor.cluster import Cluster, ClusterOptions, keep_assignment, split_cameras
from resaction.monitor.config import load_watch_config
from resaction.monitor.events import RECOVERED, STOPPED, EventLog
from resaction.monitor.sinks import Backoff
from resaction.monitor.watcher import WatchOptions, watch_lock

from .fight_model import clip_path
from .receiver import Receiver

CLIPS = ["nofi001", "nofi002", "nofi003"]


@pytest.fixture(scope="module")
def tiny_tsn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained TSN-R18 at 32 px: with threshold 0.01 every camera opens an event at once."""
    model = create_model("tsn_resnet18", num_classes=2, num_segments=2)
    preprocess = {"clip_len": 2, "resize": 40, "crop": 32, "mean": [0.45] * 3, "std": [0.225] * 3}
    path = tmp_path_factory.mktemp("cluster") / "tiny.pt"
    return save_checkpoint(
        path, model, model_name="tsn_resnet18", classes=["fight", "noFight"], preprocess=preprocess
    )


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    import ray

    start_local_ray(
        num_cpus=2, object_store_memory=200 * 1024**2, logging_level="ERROR", log_to_driver=False
    )
    yield
    ray.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def cameras_file(tmp_path: Path, videos_dir: Path, sinks: str, count: int = 3) -> Path:
    cameras = "".join(
        f"  - name: cam{i}\n    url: {clip_path(videos_dir, CLIPS[i])}\n" for i in range(count)
    )
    path = tmp_path / "cameras.yaml"
    path.write_text(
        "defaults:\n  classes: [fight]\n  threshold: 0.01\n  min_duration: 0\n  loop: true\n"
        f"  pre: 0.5\n  post: 0.5\ncameras:\n{cameras}sinks: {sinks}\n"
    )
    return path


def webhook_keys(out: Path, url: str) -> dict[str, set[str]]:
    """Every group's logged webhook keys; every delivery must be marked delivered."""
    keys: dict[str, set[str]] = {}
    for folder in sorted(p for p in (out / "ray").glob("g*") if p.is_dir()):
        with EventLog(folder / "events.db", []) as log:
            rows = log.deliveries(sink=f"webhook:{url}")
        assert rows and all(row.status == "delivered" for row in rows), folder.name
        keys[folder.name] = {row.key for row in rows}
    return keys


def assert_once_per_key(receiver: Receiver) -> dict[str, Any]:
    """A key may come again only with the same body; returns the bodies by key."""
    bodies: dict[str, bytes] = {}
    for request in receiver.acknowledged():
        assert bodies.setdefault(request.key, request.raw) == request.raw, request.key
    return {key: json.loads(raw) for key, raw in bodies.items()}


def started_cameras(receiver: Receiver) -> set[str]:
    return {
        r.body["event"]["camera"] for r in receiver.acknowledged() if r.body["kind"] == "started"
    }


def poll_until(cluster: Cluster, condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out; {cluster.notes}"
        cluster.poll()


def test_cameras_split_round_robin_and_keep_their_group(tmp_path: Path, videos_dir: Path) -> None:
    config = load_watch_config(cameras_file(tmp_path, videos_dir, "[jsonl]"))
    split = split_cameras(config.cameras, groups=2)
    assert {g: [c.name for c in cams] for g, cams in split.items()} == {
        "g0": ["cam0", "cam2"],
        "g1": ["cam1"],
    }
    assert list(split_cameras(config.cameras, per_actor=2)) == ["g0", "g1"]
    assert list(split_cameras(config.cameras, default=8)) == ["g0", "g1", "g2"]
    keep_assignment(tmp_path, split)
    keep_assignment(tmp_path, split_cameras(config.cameras[:2], groups=2))  # one fewer: fine
    with pytest.raises(ConfigError, match=r"cam1: g1 -> g0"):
        keep_assignment(tmp_path, split_cameras(config.cameras, groups=1))
    lock = watch_lock(tmp_path / "g0")
    with pytest.raises(ConfigError, match="another watcher is working on"):
        watch_lock(tmp_path / "g0", wait=0.2)
    lock.close()
    watch_lock(tmp_path / "g0", wait=0.2).close()


def test_bad_ray_input_is_one_line(
    tiny_tsn: Path, tmp_path: Path, videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cameras_file(tmp_path, videos_dir, "[jsonl, stdout]")
    argv = ["watch", str(path), "-c", str(tiny_tsn), "--out", str(tmp_path / "out")]
    assert run_app([*argv, "--ray", "local"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stdout sink cannot be used with --ray" in err
    path = cameras_file(tmp_path, videos_dir, "[jsonl]")
    assert run_app([*argv, "--ray", "127.0.0.1:1", "--groups", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "connecting to Ray at 127.0.0.1:1" and len(err) == 2
    assert "no Ray cluster answers at 127.0.0.1:1" in err[1] and "--ray local" in err[1]


@pytest.mark.slow
def test_groups_on_actors_deliver_once_per_key_and_survive_a_killed_actor(
    ray_session: None, tiny_tsn: Path, tmp_path: Path, videos_dir: Path, receiver: Receiver
) -> None:
    config = load_watch_config(
        cameras_file(tmp_path, videos_dir, f"[jsonl, {{webhook: '{receiver.url}'}}]")
    )
    out = tmp_path / "out"
    watch = WatchOptions(out=out, delivery_backoff=Backoff(base=0.2, cap=1.0))
    notes: list[str] = []
    messages: list[dict[str, Any]] = []
    options = ClusterOptions(groups=2, max_restarts=1, poll=0.3, watch=watch)
    cluster = Cluster(config, tiny_tsn, options, notes.append, messages.append).start()
    try:
        poll_until(cluster, lambda: started_cameras(receiver) == {"cam0", "cam1", "cam2"}, 40)
        g1 = cluster.groups[1]
        first_pid = g1.pid
        assert first_pid not in (None, os.getpid(), cluster.groups[0].pid)
        os.kill(first_pid, signal.SIGKILL)  # g1's actor process, started by this test's Ray
        restarted = "g1: running again on 127.0.0.1 (pid {})"
        poll_until(cluster, lambda: g1.pid != first_pid and g1.state == "running", 40)
        assert restarted.format(g1.pid) in notes
        ended = lambda: any(  # noqa: E731 - the recovered event's "ended" reached the receiver
            r.body["event"]["reason"] == RECOVERED for r in receiver.acknowledged()
        )
        poll_until(cluster, ended, 20)
    finally:
        summary = cluster.stop()

    assert any(n.startswith("g1: its actor is down") for n in notes)
    assert [g["group"] for g in summary["groups"]] == ["g0", "g1"]
    assert {c["name"]: c["group"] for c in summary["cameras"]} == {
        "cam0": "g0",
        "cam1": "g1",
        "cam2": "g0",
    }
    assert all(g["summary"] and not g["error"] for g in summary["groups"])
    assert summary["delivered_all"]
    assert {m["group"] for m in messages if m["type"] == "event"} == {"g0", "g1"}
    bodies = assert_once_per_key(receiver)
    keys = webhook_keys(out, receiver.url)
    assert set(bodies) == keys["g0"] | keys["g1"] and not keys["g0"] & keys["g1"]
    for group, cameras in (("g0", {"cam0", "cam2"}), ("g1", {"cam1"})):
        assert {bodies[key]["event"]["camera"] for key in keys[group]} == cameras
        lines = (out / "ray" / group / "events.jsonl").read_text().splitlines()
        assert {json.loads(line)["key"] for line in lines} == keys[group]
    # every event started is ended, the one open when g1 was killed as recovered
    for key, body in bodies.items():
        if body["kind"] == "started":
            assert key.replace(":started", ":ended") in bodies
    reasons = [(b["event"]["camera"], b["event"]["reason"]) for b in bodies.values()]
    assert [camera for camera, reason in reasons if reason == RECOVERED] == ["cam1"]
    assert {reason for _, reason in reasons} <= {None, RECOVERED, STOPPED}


@pytest.mark.slow
def test_watch_ray_from_the_command_line(
    ray_session: None,
    tiny_tsn: Path,
    tmp_path: Path,
    videos_dir: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = cameras_file(tmp_path, videos_dir, f"[{{webhook: '{receiver.url}'}}]", count=2)
    out = tmp_path / "out"
    argv = ["watch", str(path), "-c", str(tiny_tsn), "--out", str(out), "--duration", "4"]
    assert run_app([*argv, "--ray", "local", "--cameras-per-actor", "1"]) == 0
    captured = capsys.readouterr()
    for line in ("g0: placing 1 camera(s) (cam0)", "g1: running on 127.0.0.1", "stopping 2"):
        assert line in captured.err
    rows = [line.split("│")[1:-1] for line in captured.out.splitlines() if "cam" in line]
    assert [[cell.strip() for cell in row[:3]] for row in rows if len(row) > 3] == [
        ["g0", "cam0", "live"],
        ["g1", "cam1", "live"],
    ]
    bodies = assert_once_per_key(receiver)
    assert {(b["event"]["camera"], b["kind"]) for b in bodies.values()} >= {
        ("cam0", "started"),
        ("cam1", "started"),
        ("cam0", "ended"),
        ("cam1", "ended"),
    }
    assert sorted(json.loads((out / "ray" / "groups.json").read_text()).items()) == [
        ("cam0", "g0"),
        ("cam1", "g1"),
    ]
