"""monitor/events.py on real SQLite files: what is committed, recovery after a killed run, the
delivery order, and two writers at once."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from resaction.errors import ConfigError
from resaction.monitor.events import RECOVERED, Event, EventLog, new_event_id

SINKS = ["jsonl", "webhook:http://127.0.0.1:9/hook"]


def make_event(camera: str = "cam0", label: str = "fight", started: float | None = None) -> Event:
    return Event(
        id=new_event_id(),
        camera=camera,
        label=label,
        state="open",
        started_at=time.time() if started is None else started,
        ended_at=None,
        stream_start=12.0,
        stream_end=None,
        peak=0.7,
        mean=0.6,
        snapshot=None,
        clip=None,
    )


def test_open_is_committed_with_a_pending_delivery_per_sink(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", SINKS)
    event = make_event()
    log.open_event(event)
    # another connection (another process, the service) sees it at once: committed, in WAL
    other = sqlite3.connect(tmp_path / "events.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT id, state FROM events").fetchall() == [(event.id, "open")]
    rows = other.execute("SELECT sink, kind, key, status FROM deliveries ORDER BY id").fetchall()
    assert rows == [(s, "started", f"{event.id}:started", "pending") for s in SINKS]
    assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert log.get(event.id) == event
    body = json.loads(log.pending("jsonl", time.time(), 10)[0].body)
    assert body == {
        "version": 1,
        "kind": "started",
        "key": f"{event.id}:started",
        "event": event.to_dict(),
    }
    with pytest.raises(ValueError, match="already in the log"):
        log.open_event(event)
    other.close()
    log.close()


def test_close_stores_the_end_and_owes_an_ended_message(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", SINKS)
    event = make_event()
    log.open_event(event)
    event.ended_at, event.stream_end = event.started_at + 4, 16.0
    event.peak, event.mean, event.snapshot, event.clip = 0.95, 0.8, "a.jpg", "a.mp4"
    log.close_event(event)
    stored = log.get(event.id)
    assert stored == event and stored.state == "closed"
    kinds = [(d.sink, d.kind) for d in log.deliveries(event.id)]
    assert kinds == [(s, "started") for s in SINKS] + [(s, "ended") for s in SINKS]
    ended = json.loads(log.deliveries(event.id, "jsonl")[1].body)["event"]
    assert ended["state"] == "closed" and ended["clip"] == "a.mp4"
    with pytest.raises(ValueError, match="not open"):
        log.close_event(event)
    log.close()


def test_recover_closes_what_a_killed_run_left_open(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    log = EventLog(path, SINKS)
    seen, unseen, done = make_event(), make_event(), make_event()
    other_camera = make_event(camera="cam9")
    for event in (seen, unseen, done, other_camera):
        log.open_event(event)
    log.touch(seen.id, seen.started_at + 3.0, 15.0, peak=0.99, mean=0.75)
    log.close_event(done)
    del log  # the run dies without closing anything

    log = EventLog(path, SINKS)
    recovered = log.recover(cameras=["cam0"])
    assert sorted(e.id for e in recovered) == sorted([seen.id, unseen.id])
    by_id = {e.id: e for e in recovered}
    assert by_id[seen.id].ended_at == seen.started_at + 3.0
    assert by_id[seen.id].stream_end == 15.0 and by_id[seen.id].peak == 0.99
    assert by_id[unseen.id].ended_at == unseen.started_at
    assert by_id[unseen.id].stream_end == unseen.stream_start
    for event in recovered:
        assert log.get(event.id) == event and event.reason == RECOVERED
        assert [d.kind for d in log.deliveries(event.id, "jsonl")] == ["started", "ended"]
    assert log.get(other_camera.id).state == "open"
    assert [e.id for e in log.recover()] == [other_camera.id]
    assert log.recover() == []
    log.close()


def test_pending_keeps_each_events_messages_in_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", ["jsonl"])
    first, second = make_event(), make_event()
    log.open_event(first)
    log.close_event(first)
    log.open_event(second)
    now = time.time()
    due = log.pending("jsonl", now, 10)
    assert [(d.event_id, d.kind) for d in due] == [(first.id, "started"), (second.id, "started")]
    # the first event's "started" failed and waits: its "ended" must not overtake it
    log.mark_failed(due[0].id, "HTTP 503", next_attempt=now + 60)
    assert [(d.event_id, d.kind) for d in log.pending("jsonl", now, 10)] == [(second.id, "started")]
    failed = log.deliveries(first.id)[0]
    assert (failed.attempts, failed.last_error, failed.status) == (1, "HTTP 503", "pending")
    log.mark_delivered(due[1].id)
    assert log.pending("jsonl", now, 10) == []
    retry = log.pending("jsonl", now + 61, 10)
    assert [(d.event_id, d.kind) for d in retry] == [(first.id, "started")]
    log.mark_failed(retry[0].id, "HTTP 400", next_attempt=now, give_up=True)
    assert [(d.event_id, d.kind) for d in log.pending("jsonl", now + 61, 10)] == [
        (first.id, "ended")
    ]
    assert log.counts() == {"jsonl": {"delivered": 1, "failed": 1, "pending": 1}}
    log.close()


def test_events_filters_by_camera_label_and_time(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", [])
    a = make_event("cam0", "fight", started=100.0)
    b = make_event("cam1", "fight", started=200.0)
    c = make_event("cam0", "fall", started=300.0)
    for event in (a, b, c):
        log.open_event(event)
    a.ended_at = 150.0
    log.close_event(a)
    ids = lambda events: [e.id for e in events]  # noqa: E731
    assert ids(log.events()) == [c.id, b.id, a.id]
    assert ids(log.events(camera="cam0")) == [c.id, a.id]
    assert ids(log.events(label="fight")) == [b.id, a.id]
    assert ids(log.events(since=160.0)) == [c.id, b.id]  # a ended before 160
    assert ids(log.events(until=250.0)) == [b.id, a.id]
    assert ids(log.events(since=120.0, until=250.0, camera="cam0")) == [a.id]
    assert ids(log.events(limit=1)) == [c.id]
    assert log.get("nope") is None
    log.close()


def test_two_writers_at_once_keep_the_log_consistent(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    shared = EventLog(path, SINKS)
    second = EventLog(path, SINKS)  # another connection, as another process would have
    errors: list[BaseException] = []

    def write(log: EventLog, camera: str) -> None:
        try:
            for _ in range(30):
                event = make_event(camera)
                log.open_event(event)
                log.touch(event.id, time.time(), 13.0, 0.8, 0.7)
                log.close_event(event)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(shared, "cam0")),
        threading.Thread(target=write, args=(shared, "cam1")),
        threading.Thread(target=write, args=(second, "cam2")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    events = shared.events(limit=1000)
    assert len(events) == 90 and all(e.state == "closed" for e in events)
    deliveries = shared.deliveries()
    assert len(deliveries) == 90 * 2 * len(SINKS)
    for event in events:
        mine = [(d.kind, d.sink) for d in deliveries if d.event_id == event.id]
        assert sorted(mine) == sorted((k, s) for k in ("started", "ended") for s in SINKS)
    assert [d.id for d in deliveries] == sorted(d.id for d in deliveries)
    assert shared._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    shared.close()
    second.close()


def test_an_unusable_log_path_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot open the event log") as caught:
        EventLog(tmp_path / "file" / "events.db", ["jsonl"])
    assert "\n" not in str(caught.value)
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match=r"junk\.db"):
        EventLog(tmp_path / "junk.db", ["jsonl"])
