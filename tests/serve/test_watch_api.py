"""``resaction serve --watch``: the live watcher behind the service's token, on a real server.

One server (module scope, with a token) watches two real file cameras: "door", lit then dark in
a loop, whose model opens an event while it is lit and closes it in the dark, and "hall", a real
surveillance clip that never raises one (see ``watch_setup``).
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from resaction.cli.app import run_app
from resaction.monitor.events import Event
from resaction.serve import ServeSettings, create_app
from tests.serve.conftest import LiveServer, free_port, wait_until
from tests.serve.watch_setup import read_sse, watch_files

TOKEN = "watch-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> tuple[Path, Path]:
    return watch_files(tmp_path_factory.mktemp("watch-files"), videos_dir)


@pytest.fixture(scope="module")
def server(
    files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    checkpoint, cameras = files
    state = tmp_path_factory.mktemp("watch-state")
    settings = ServeSettings(model=checkpoint, state_dir=state, token=TOKEN, watch=cameras)
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
        yield http


def cameras(client: httpx.Client) -> dict[str, dict[str, Any]]:
    body = client.get("/cameras").json()
    return {camera["name"]: camera for camera in body["cameras"]}


def test_every_watch_route_takes_the_token_and_the_page_does_not(server: LiveServer) -> None:
    paths = [
        "/cameras",
        "/cameras/door/frame.jpg",
        "/events",
        "/events/abc",
        "/events/abc/clip.mp4",
        "/events/abc/snapshot.jpg",
        "/events/abc/explain.mp4",
        "/events/abc/explain.json",
        "/watch/stream",
        "/metrics",
    ]
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        for path in paths:
            answer = anonymous.get(path)
            assert answer.status_code == 401, path
            assert answer.json()["error"] == "unauthorized"
            wrong = anonymous.get(path, headers={"Authorization": "Bearer wrong-token-0"})
            assert wrong.status_code == 401, path
        page = anonymous.get("/watch")
        assert page.status_code == 200 and "/static/watch.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert anonymous.get("/static/watch.js").status_code == 200


def test_cameras_show_state_label_score_and_a_frame_under_two_seconds_old(
    client: httpx.Client,
) -> None:
    wait_until(lambda: all(c["frame_seq"] is not None for c in cameras(client).values()), 20)
    body = client.get("/cameras").json()
    assert body["running"] is True and body["error"] is None
    by_name = {camera["name"]: camera for camera in body["cameras"]}
    assert set(by_name) == {"door", "hall"}
    for camera in by_name.values():
        assert camera["state"] == "live"
        assert camera["frames"] > 0 and camera["frame_age"] < 2.0
    wait_until(lambda: cameras(client)["hall"]["label"] is not None, 20)
    hall = cameras(client)["hall"]
    assert hall["label"] in ("fight", "noFight") and 0.5 <= hall["score"] <= 1.0

    answer = client.get("/cameras/door/frame.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store"
    assert float(answer.headers["x-frame-age"]) <= 2.0
    image = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (64, 85, 3)  # the model's input size (short side 64) of 240x320

    missing = client.get("/cameras/attic/frame.jpg")
    assert missing.status_code == 404 and missing.json()["error"] == "camera_not_found"
    assert "door, hall" in missing.json()["message"]
    stale = client.get("/cameras/door/frame.jpg", params={"max_age": 1e-6})
    assert stale.status_code == 503 and stale.json()["error"] == "stale_frame"


def test_the_stream_carries_status_and_an_event_opening_then_closing_with_its_clip(
    client: httpx.Client,
) -> None:
    seen: dict[str, list[dict[str, Any]]] = {"cameras": [], "open": [], "closed": []}
    deadline = time.monotonic() + 25
    with client.stream("GET", "/watch/stream", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for kind, data in read_sse(stream.iter_lines()):
            if kind == "cameras":
                seen["cameras"].append(data)
            elif kind == "event" and data["camera"] == "door":
                seen[data["state"]].append(data)
            if (seen["open"] and seen["closed"]) or time.monotonic() > deadline:
                break
    assert seen["cameras"], "no camera status on the stream"
    names = {camera["name"] for camera in seen["cameras"][-1]["cameras"]}
    assert names == {"door", "hall"}
    opened, closed = seen["open"][0], seen["closed"][0]
    assert opened["label"] == "fight" and opened["clip"] is None and opened["links"]["snapshot"]
    assert closed["label"] == "fight" and closed["links"]["clip"].endswith("/clip.mp4")
    assert closed["ended_at"] > closed["started_at"]

    event = client.get(f"/events/{closed['id']}").json()
    assert event["state"] == "closed" and event["links"] == closed["links"]
    snapshot = client.get(event["links"]["snapshot"])
    assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(snapshot.content, np.uint8), cv2.IMREAD_COLOR) is not None
    clip = client.get(event["links"]["clip"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(clip.content)) as container:
        frames = list(container.decode(video=0))
    duration = closed["stream_end"] - closed["stream_start"]
    assert len(frames) >= round(duration * 25)  # the event itself, at 25 fps, and more


def test_events_filter_by_camera_label_and_time(client: httpx.Client) -> None:
    wait_until(lambda: client.get("/events", params={"camera": "door"}).json()["events"], 20)
    door = client.get("/events", params={"camera": "door", "label": "fight"}).json()["events"]
    assert door and all(e["camera"] == "door" and e["label"] == "fight" for e in door)
    started = [e["started_at"] for e in door]
    assert started == sorted(started, reverse=True)
    assert client.get("/events", params={"camera": "hall"}).json()["events"] == []
    assert client.get("/events", params={"label": "noFight"}).json()["events"] == []
    first = door[-1]
    later = client.get("/events", params={"since": time.time() + 3600}).json()["events"]
    assert all(e["state"] == "open" for e in later)  # only what has not ended overlaps the future
    earlier = client.get("/events", params={"until": first["started_at"] - 1}).json()["events"]
    assert earlier == []
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(first["started_at"] - 60))
    assert client.get("/events", params={"since": iso, "camera": "door"}).json()["events"]
    assert len(client.get("/events", params={"limit": 1}).json()["events"]) == 1
    bad = client.get("/events", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since='yesterday'" in bad.json()["message"]
    assert client.get("/events", params={"limit": 0}).status_code == 422


def test_evidence_is_only_served_from_the_watch_folder(
    client: httpx.Client, server: LiveServer, files: tuple[Path, Path]
) -> None:
    hub = server.server.config.app.state.watch
    secret = hub.out.parent / "secret.txt"
    secret.write_text("not evidence")
    event = Event(
        id="feedfacefeedfacefeedfacefeedface",
        camera="elsewhere",
        label="fight",
        state="open",
        started_at=time.time() - 7200,
        ended_at=None,
        stream_start=0.0,
        stream_end=None,
        peak=0.9,
        mean=0.9,
        snapshot="../secret.txt",
        clip=None,
    )
    hub.watcher.log.open_event(event)
    answer = client.get(f"/events/{event.id}/snapshot.jpg")
    assert answer.status_code == 404 and answer.json()["error"] == "no_snapshot"
    no_clip = client.get(f"/events/{event.id}/clip.mp4")
    assert no_clip.status_code == 404 and "post-roll" in no_clip.json()["message"]
    for event_id in ("..%2F..%2Fsecret.txt", "nope", "..", "%2e%2e"):
        answer = client.get(f"/events/{event_id}/clip.mp4")
        assert answer.status_code == 404, event_id
        assert answer.content != b"not evidence"


def test_metrics_serve_the_watchers_registry(client: httpx.Client) -> None:
    live = 'resaction_watch_camera_state{camera="door",state="live"} 1.0'
    wait_until(lambda: live in client.get("/metrics").text, 20)
    answer = client.get("/metrics")
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    text = answer.text
    for name in (
        'resaction_watch_frames_total{camera="door"}',
        'resaction_watch_input_fps{camera="hall"}',
        "resaction_watch_latency_seconds_bucket",
        'resaction_watch_camera_state{camera="door",state="live"} 1.0',
    ):
        assert name in text


def test_an_event_is_explained_from_its_clip_for_its_class(
    client: httpx.Client, server: LiveServer
) -> None:
    def closed() -> list[dict[str, Any]]:
        found = client.get("/events", params={"camera": "door"}).json()["events"]
        return [event for event in found if event["links"]["clip"]]

    wait_until(lambda: bool(closed()), 25)
    event = closed()[0]
    assert event["links"]["explain"] == f"/events/{event['id']}/explain.mp4"
    answer = client.get(event["links"]["explain"], timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["x-explain-cache"] == "miss"
    with av.open(io.BytesIO(answer.content)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0
    facts = client.get(f"/events/{event['id']}/explain.json")
    assert facts.headers["x-explain-cache"] == "hit"
    assert facts.json()["target"]["label"] == "fight" and facts.json()["method"] == "gradcam"
    assert facts.json()["video"] == f"event {event['id']}'s clip"
    hub = server.server.config.app.state.watch
    assert (hub.out / "clips" / f"{event['id']}.explain").is_dir()  # cached beside the clip

    still_open = Event(
        id="0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d",
        camera="elsewhere",
        label="fight",
        state="open",
        started_at=time.time(),
        ended_at=None,
        stream_start=0.0,
        stream_end=None,
        peak=0.9,
        mean=0.9,
        snapshot=None,
        clip=None,
    )
    hub.watcher.log.open_event(still_open)
    for event_id, status, code in (
        (still_open.id, 409, "clip_not_ready"),
        ("feedbeef", 404, "event_not_found"),
    ):
        answer = client.get(f"/events/{event_id}/explain.mp4")
        assert answer.status_code == status and answer.json()["error"] == code, answer.text
    wrong = client.get(event["links"]["explain"], params={"label": "jump"})
    assert wrong.status_code == 422 and "fight, noFight" in wrong.json()["message"]


def test_without_watch_the_routes_say_how_to_turn_it_on(make_client) -> None:
    client = make_client()
    for path in ("/cameras", "/events", "/metrics", "/watch/stream"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.json()["error"] == "not_watching"
        assert "--watch CAMERAS.yaml" in answer.json()["message"]


def test_serve_refuses_a_bad_cameras_file_in_one_line(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, _ = files
    base = ["serve", "--model", str(checkpoint), "--state-dir", str(tmp_path / "state")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - name: a\n    url: x.mp4\n    treshold: 0.5\n")
    wrong_class = tmp_path / "class.yaml"
    wrong_class.write_text("cameras:\n  - name: a\n    url: x.mp4\n    classes: [fihgt]\n")
    for path, expected in (
        (bad, "line 4, cameras.0.treshold: unknown key"),
        (wrong_class, "fight, noFight"),
        (tmp_path / "none.yaml", "no such cameras file"),
    ):
        assert run_app([*base, "--watch", str(path)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert expected in err


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_watch_command_stops_at_once_with_a_stream_open(
    files: tuple[Path, Path], tmp_path: Path, stop: signal.Signals
) -> None:
    """Stopping is a server's normal end: both ways exit 0 once it has shut down."""
    checkpoint, cameras_yaml = files
    port = free_port()
    command = [
        sys.executable, "-m", "resaction.cli", "serve", "--model", str(checkpoint),
        "--watch", str(cameras_yaml), "--port", str(port), "--state-dir", str(tmp_path / "state"),
        "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def watching() -> bool:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            return httpx.get(f"{url}/cameras", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(watching, timeout=60)
        with httpx.stream("GET", f"{url}/watch/stream", timeout=10) as stream:
            kind, _ = next(read_sse(stream.iter_lines()))
            assert kind == "cameras"
            process.send_signal(stop)
            started = time.monotonic()
            assert process.wait(timeout=20) == 0
        assert time.monotonic() - started < 4  # under the 5 s after which a stream is cut
    finally:
        if process.poll() is None:
            process.kill()
    output = process.communicate(timeout=10)[0].decode()
    assert "live page at" in output and "/watch" in output
    assert "Traceback" not in output and "ERROR" not in output
    assert (tmp_path / "state" / "watch" / "events.db").is_file()
