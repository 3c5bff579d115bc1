"""monitor/sinks.py against a real webhook receiver on loopback, real files and real processes:
a receiver down then up, one answering 503, and a sender killed with SIGKILL and restarted."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from resaction.errors import ConfigError
from resaction.monitor.events import Event, EventLog, new_event_id
from resaction.monitor.sinks import (
    Backoff,
    Deliverer,
    JsonlSink,
    StdoutSink,
    WebhookSink,
    make_sink,
)
from tests.monitor.receiver import Received, Receiver

FAST = Backoff(base=0.05, factor=2.0, cap=0.2, jitter=0.5)
SENDER = Path(__file__).with_name("receiver_sender.py")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def record(log: EventLog, count: int, close: bool = True) -> list[Event]:
    events = []
    for i in range(count):
        event = Event(
            id=new_event_id(),
            camera=f"cam{i}",
            label="fight",
            state="open",
            started_at=time.time(),
            ended_at=None,
            stream_start=float(i),
            stream_end=None,
            peak=0.9,
            mean=0.7,
            snapshot=f"snapshots/{i}.jpg",
            clip=f"clips/{i}.mp4",
        )
        log.open_event(event)
        if close:
            event.stream_end = i + 2.0
            log.close_event(event)
        events.append(event)
    return events


def check_at_least_once(requests: list[Received], expected_keys: set[str]) -> None:
    """Every key acknowledged; a key always comes with the same body; an event's "started" is
    acknowledged before its "ended" is first sent."""
    acked = {r.key for r in requests if r.status == 200}
    assert acked == expected_keys
    bodies: dict[str, bytes] = {}
    for r in requests:
        assert bodies.setdefault(r.key, r.raw) == r.raw, f"{r.key} came with two bodies"
        assert r.key == r.body["key"] == f"{r.body['event']['id']}:{r.body['kind']}"
    for key in {k for k in acked if k.endswith(":ended")}:
        started = key.replace(":ended", ":started")
        first_ended = min(i for i, r in enumerate(requests) if r.key == key)
        assert any(r.key == started and r.status == 200 for r in requests[:first_ended])


def keys_of(events: list[Event], kinds: tuple[str, ...] = ("started", "ended")) -> set[str]:
    return {f"{e.id}:{k}" for e in events for k in kinds}


def test_make_sink_reads_the_specs(tmp_path: Path) -> None:
    assert isinstance(make_sink("stdout", tmp_path), StdoutSink)
    jsonl = make_sink("jsonl", tmp_path)
    assert isinstance(jsonl, JsonlSink) and jsonl.path == tmp_path / "events.jsonl"
    assert make_sink("jsonl:out/a.jsonl", tmp_path).path == tmp_path / "out/a.jsonl"
    assert (tmp_path / "events.jsonl").read_text() == ""  # there before the first event
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(ConfigError, match=r"sink jsonl:taken/a.jsonl: cannot write"):
        make_sink("jsonl:taken/a.jsonl", tmp_path)
    hook = make_sink("webhook:https://example.com/h?x=1", tmp_path, timeout=3)
    assert isinstance(hook, WebhookSink) and hook.url == "https://example.com/h?x=1"
    assert hook.name == "webhook:https://example.com/h?x=1" and hook.timeout == 3
    for bad in ("email", "webhook:ftp://x/y", "webhook:", "stdout:x"):
        with pytest.raises(ConfigError) as caught:
            make_sink(bad, tmp_path)
        assert "\n" not in str(caught.value)


def test_backoff_grows_jitters_and_is_capped() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=60.0, jitter=0.5)
    for n, raw in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (500, 60.0)]:
        delays = [backoff.delay(n) for _ in range(200)]
        assert all(raw * 0.5 <= d <= raw for d in delays)
        assert len(set(delays)) > 100  # jittered


def test_jsonl_and_stdout_sinks_get_every_message_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = EventLog(tmp_path / "events.db", ["jsonl", "stdout"])
    sinks = [make_sink("jsonl", tmp_path), make_sink("stdout", tmp_path)]
    deliverers = [Deliverer(log, sink, backoff=FAST, poll=0.05).start() for sink in sinks]
    events = record(log, 3)
    assert all(d.stop(timeout=5) for d in deliverers)
    expected = [f"{e.id}:{k}" for e in events for k in ("started", "ended")]
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == expected
    printed = [json.loads(line)["key"] for line in capsys.readouterr().out.splitlines()]
    assert printed == expected
    assert log.counts() == {"jsonl": {"delivered": 6}, "stdout": {"delivered": 6}}
    log.close()


def test_webhook_request_carries_key_kind_headers_and_signature(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.start()
    sink = make_sink(
        f"webhook:{receiver.url}", tmp_path, headers={"Authorization": "Bearer t"}, secret="s3"
    )
    log = EventLog(tmp_path / "events.db", [sink.name])
    deliverer = Deliverer(log, sink, backoff=FAST, poll=0.05).start()
    (event,) = record(log, 1, close=False)
    assert receiver.wait_for(lambda r: len(r.acknowledged()) == 1, 10)
    assert deliverer.stop(timeout=5)
    got = receiver.all()[0]
    assert got.key == f"{event.id}:started"
    assert got.body["event"] == event.to_dict() and got.body["kind"] == "started"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Authorization"] == "Bearer t"
    assert got.headers["X-Resaction-Kind"] == "started"
    assert got.headers["X-Resaction-Attempt"] == "1"
    digest = hmac.new(b"s3", got.raw, hashlib.sha256).hexdigest()
    assert got.headers["X-Resaction-Signature"] == f"sha256={digest}"
    (delivery,) = log.deliveries(event.id)
    assert delivery.status == "delivered" and delivery.attempts == 1
    log.close()


def test_receiver_down_then_up_gets_every_event(tmp_path: Path, receiver: Receiver) -> None:
    sink = make_sink(f"webhook:{receiver.url}", tmp_path)  # nothing listens: connection refused
    log = EventLog(tmp_path / "events.db", [sink.name])
    deliverer = Deliverer(log, sink, backoff=FAST, poll=0.05).start()
    events = record(log, 4)
    time.sleep(0.6)
    first = log.deliveries(events[0].id)[0]
    assert first.status == "pending" and first.attempts >= 3
    assert "refused" in first.last_error.lower()
    assert deliverer.failures >= 3
    assert all(d.attempts == 0 for d in log.deliveries()[1:])  # the sink backs off as a whole
    events += record(log, 2, close=False)  # more while it is down

    receiver.start()
    expected = keys_of(events[:4]) | keys_of(events[4:], ("started",))
    assert receiver.wait_for(lambda r: {x.key for x in r.acknowledged()} == expected, 10)
    assert deliverer.stop(timeout=5)
    requests = receiver.all()
    check_at_least_once(requests, expected)
    assert Counter(r.key for r in requests) == Counter(expected)  # no repeats once answered
    assert [r.key for r in requests] == [d.key for d in log.deliveries()]  # oldest first
    assert log.counts() == {sink.name: {"delivered": len(expected)}}
    log.close()


def test_receiver_answering_503_is_retried_with_backoff(tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail_next = 3
    receiver.start()
    sink = make_sink(f"webhook:{receiver.url}", tmp_path)
    log = EventLog(tmp_path / "events.db", [sink.name])
    backoff = Backoff(base=0.1, factor=2.0, cap=1.0, jitter=0.5)
    deliverer = Deliverer(log, sink, backoff=backoff, poll=0.05).start()
    events = record(log, 2)
    assert receiver.wait_for(lambda r: len(r.acknowledged()) == 4, 10)
    assert deliverer.stop(timeout=5)
    requests = receiver.all()
    assert [r.status for r in requests] == [503, 503, 503, 200, 200, 200, 200]
    assert {r.key for r in requests[:4]} == {f"{events[0].id}:started"}
    assert [r.headers["X-Resaction-Attempt"] for r in requests[:4]] == ["1", "2", "3", "4"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests[:4])]
    assert 0.05 <= gaps[0] < gaps[2] and gaps[2] >= 0.2  # 0.05-0.1 s, then 0.2-0.4 s
    check_at_least_once(requests, keys_of(events))
    first = log.deliveries(events[0].id)[0]
    assert (first.status, first.attempts) == ("delivered", 4)
    log.close()


def test_max_attempts_gives_up_and_lets_the_rest_through(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_next, receiver.fail_status = 2, 400
    receiver.start()
    sink = make_sink(f"webhook:{receiver.url}", tmp_path)
    log = EventLog(tmp_path / "events.db", [sink.name])
    deliverer = Deliverer(log, sink, backoff=FAST, poll=0.05, max_attempts=2).start()
    events = record(log, 2)
    assert receiver.wait_for(lambda r: len(r.acknowledged()) == 3, 10)
    assert deliverer.stop(timeout=5)
    given_up = log.deliveries(events[0].id)[0]
    assert (given_up.status, given_up.attempts) == ("failed", 2)
    assert given_up.last_error.startswith("HTTP 400")
    assert {r.key for r in receiver.acknowledged()} == keys_of(events) - {given_up.key}
    log.close()


def run_sender(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(SENDER), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_until(process: subprocess.Popen[str], count: int, prefix: str) -> list[str]:
    lines: list[str] = []
    while sum(line.startswith(prefix) for line in lines) < count:
        line = process.stdout.readline()
        assert line, f"sender ended early: {lines}"
        lines.append(line.strip())
    return lines


def restart_and_deliver(log_path: Path, receiver: Receiver) -> str:
    process = run_sender("deliver", str(log_path), receiver.url)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


def opened_ids(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("opened")]


def test_kill_9_while_the_receiver_is_down_then_restart_delivers_all(
    tmp_path: Path, receiver: Receiver
) -> None:
    log_path = tmp_path / "events.db"
    sender = run_sender("record", str(log_path), receiver.url, "8")
    lines = read_until(sender, 5, "opened")  # killed mid-way: event 5 is open, 6-8 never were
    os.kill(sender.pid, signal.SIGKILL)
    sender.wait(10)
    ids = opened_ids(lines)
    receiver.start()
    out = restart_and_deliver(log_path, receiver)
    assert "recovered" in out and out.strip().endswith("done")
    expected = keys_of([_id(i) for i in ids])
    requests = receiver.all()
    check_at_least_once(requests, expected)
    assert Counter(r.key for r in requests) == Counter(expected)


def test_kill_9_during_deliveries_repeats_only_unacknowledged_keys(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.delay = 0.15  # slow answers, so the kill lands while messages are in flight
    receiver.start()
    log_path = tmp_path / "events.db"
    sender = run_sender("record", str(log_path), receiver.url, "6")
    lines = read_until(sender, 1, "recorded")
    assert receiver.wait_for(lambda r: len(r.all()) >= 3, 10)
    os.kill(sender.pid, signal.SIGKILL)
    sender.wait(10)
    before = receiver.all()
    with EventLog(log_path, []) as log:
        marked = {d.key for d in log.deliveries() if d.status == "delivered"}
    assert marked and marked <= {r.key for r in before}

    restart_and_deliver(log_path, receiver)
    after = receiver.all()[len(before) :]
    expected = keys_of([_id(i) for i in opened_ids(lines)])
    check_at_least_once(before + after, expected)
    assert not marked & {r.key for r in after}  # nothing acknowledged and recorded is sent again
    repeats = Counter(r.key for r in before + after) - Counter(expected)
    assert set(repeats) <= {r.key for r in before} - marked  # only what was in flight
    assert sum(repeats.values()) <= 1  # one request was in flight at the kill


def _id(event_id: str) -> Event:
    return Event(event_id, "", "", "", 0.0, None, 0.0, None, 0.0, 0.0, None, None)


def test_a_redirect_is_a_failed_attempt_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail_next, receiver.fail_status = 1, 302
    receiver.start()
    sink = make_sink(f"webhook:{receiver.url}", tmp_path)
    log = EventLog(tmp_path / "events.db", [sink.name])
    deliverer = Deliverer(log, sink, backoff=FAST, poll=0.05).start()
    (event,) = record(log, 1, close=False)
    assert receiver.wait_for(lambda r: len(r.acknowledged()) == 1, 10)
    assert deliverer.stop(timeout=5)
    assert [r.status for r in receiver.all()] == [302, 200]  # both POSTs, the same key
    assert {r.key for r in receiver.all()} == {f"{event.id}:started"}
    log.close()


def test_an_answer_too_slow_is_repeated_with_the_same_key(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.delay = 1.0
    receiver.start()
    sink = make_sink(f"webhook:{receiver.url}", tmp_path, timeout=0.3)
    log = EventLog(tmp_path / "events.db", [sink.name])
    deliverer = Deliverer(log, sink, backoff=FAST, poll=0.05).start()
    (event,) = record(log, 1, close=False)
    assert receiver.wait_for(lambda r: len(r.all()) == 1, 10)
    receiver.delay = 0.0  # the receiver took it but the sender gave up waiting
    assert receiver.wait_for(lambda r: len(r.all()) == 2, 10)
    assert deliverer.stop(timeout=5)
    first, second = receiver.all()
    assert first.key == second.key == f"{event.id}:started" and first.raw == second.raw
    (delivery,) = log.deliveries(event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    log.close()
