"""The event log: every event and every message owed to every sink, in one SQLite file.

An event is committed here before any sink sees it, and each sink's copy of each message is a
delivery row that stays ``pending`` until the sink acknowledged it. A process killed at any point
leaves the log saying exactly what is still owed; the next process delivers it with the same body
and the same idempotency key.

Durability: the log runs in WAL mode with ``synchronous=FULL``. With ``NORMAL`` a commit in WAL mode
survives the process being killed (SIGKILL, OOM) but not a power cut or kernel crash: the last
transactions may roll back, and an event that was never delivered would then be gone for good.
``FULL`` syncs the WAL at every commit, so a returned ``open_event``/``close_event`` is on disk.
The price is one fsync per event and per delivery outcome, a few milliseconds for something that
happens a few times an hour per camera; "never lose an event" is worth that.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from resaction.closing import ClosedOnExit
from resaction.errors import ConfigError, first_line
from resaction.storage import immediate_transaction, where

SCHEMA_VERSION = 1
KINDS = ("started", "ended")
RECOVERED = "recovered: the watcher stopped before the event ended"
STOPPED = "stopped: the watcher stopped while the event was open"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    camera TEXT NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    stream_start REAL NOT NULL,
    stream_end REAL,
    peak REAL NOT NULL,
    mean REAL NOT NULL,
    snapshot TEXT,
    clip TEXT,
    reason TEXT,
    seen_at REAL,
    seen_stream REAL
);
CREATE INDEX IF NOT EXISTS events_started ON events (started_at);
CREATE INDEX IF NOT EXISTS events_state ON events (state);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id),
    kind TEXT NOT NULL,
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt REAL NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    UNIQUE (event_id, kind, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, status, id);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id, sink, status);
"""


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Event:
    id: str
    camera: str
    label: str
    state: str  # "open" | "closed"
    started_at: float  # wall clock, time.time()
    ended_at: float | None
    stream_start: float  # the camera's stream time, the clock of its frames and packets
    stream_end: float | None
    peak: float
    mean: float
    snapshot: str | None  # relative to the output folder
    clip: str | None  # relative to the output folder
    reason: str | None = None  # why it closed when not by the decision rule (recover())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Delivery:
    """One message owed to one sink. ``body`` is fixed when the row is written, so every attempt
    sends the same bytes under the same ``key``."""

    id: int
    event_id: str
    kind: str  # "started" | "ended"
    sink: str
    key: str  # f"{event_id}:{kind}"
    body: str
    status: str  # "pending" | "delivered" | "failed" (given up)
    attempts: int
    last_error: str | None
    next_attempt: float
    created_at: float
    delivered_at: float | None


def message_body(event: Event, kind: str) -> str:
    """The JSON every sink receives for ``kind`` of ``event`` (see docs/monitor.md, Events)."""
    key = f"{event.id}:{kind}"
    return json.dumps({"version": 1, "kind": kind, "key": key, "event": event.to_dict()})


_EVENT_COLUMNS = ", ".join(f.name for f in fields(Event))
_DELIVERY_COLUMNS = ", ".join(f.name for f in fields(Delivery))


class EventLog(ClosedOnExit):
    """The SQLite log of events and deliveries. Thread-safe: one connection behind a lock.

    ``sinks`` names the sinks that must receive every message; each ``open_event`` and
    ``close_event`` writes one pending delivery per sink in the same transaction as the event.
    Other processes may read the file at the same time (WAL)."""

    def __init__(self, path: Path, sinks: list[str]) -> None:
        self.path = Path(path)
        self.sinks = list(dict.fromkeys(sinks))
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.OperationalError(f"journal mode is {mode}, WAL is not available")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            with self._tx():
                self._create_schema()
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(
                f"cannot open the event log {self.path}: {first_line(error)}; "
                "choose an output folder on a local disk you can write to"
            ) from error

    def _create_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"log schema {version} is newer than this resaction's")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """One IMMEDIATE transaction, committed (and synced) before the block's caller returns."""
        return immediate_transaction(self._db)

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments, must not block) after every write that adds
        deliveries: Deliverers use it to wake up at once instead of at their next poll."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()

    def _add_deliveries(self, event: Event, kind: str, now: float) -> None:
        body = message_body(event, kind)
        self._db.executemany(
            "INSERT OR IGNORE INTO deliveries (event_id, kind, sink, key, body, next_attempt,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(event.id, kind, sink, f"{event.id}:{kind}", body, now, now) for sink in self.sinks],
        )

    def open_event(self, event: Event) -> None:
        """Write ``event`` (state "open") and a "started" delivery per sink; committed on return."""
        if event.state != "open":
            raise ValueError(f"open_event needs an open event, got state {event.state!r}")
        row = event.to_dict()
        with self._lock, self._tx() as db:
            try:
                db.execute(
                    f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
            except sqlite3.IntegrityError as error:
                raise ValueError(f"event {event.id} is already in the log") from error
            self._add_deliveries(event, "started", time.time())
        self._notify()

    def close_event(self, event: Event) -> None:
        """Store the event's end, scores and evidence paths, mark it closed and write its "ended"
        delivery per sink, in one transaction. ``event.state`` is set to "closed"."""
        if event.ended_at is None:
            event.ended_at = time.time()
        if event.stream_end is None:
            event.stream_end = event.stream_start
        event.state = "closed"
        with self._lock, self._tx() as db:
            found = db.execute(
                "UPDATE events SET state = 'closed', ended_at = ?, stream_end = ?, peak = ?,"
                " mean = ?, snapshot = ?, clip = ?, reason = ? WHERE id = ? AND state = 'open'",
                (
                    event.ended_at,
                    event.stream_end,
                    event.peak,
                    event.mean,
                    event.snapshot,
                    event.clip,
                    event.reason,
                    event.id,
                ),
            ).rowcount
            if not found:
                raise ValueError(f"event {event.id} is not open in the log")
            self._add_deliveries(event, "ended", time.time())
        self._notify()

    def touch(self, event_id: str, at: float, stream_time: float, peak: float, mean: float) -> None:
        """Record how far an open event has got, so that ``recover`` can end it where it was last
        seen. One synced commit per call: call it every few seconds, not every frame."""
        with self._lock, self._tx() as db:
            db.execute(
                "UPDATE events SET seen_at = ?, seen_stream = ?, peak = ?, mean = ?"
                " WHERE id = ? AND state = 'open'",
                (at, stream_time, peak, mean, event_id),
            )

    def recover(self, cameras: Iterable[str] | None = None) -> list[Event]:
        """Close the events a killed run left open (of ``cameras``, or all) at the last time they
        were seen, with ``reason`` set, and write their "ended" deliveries. Call it at start,
        before new events are opened, when no other process is watching those cameras."""
        wanted = None if cameras is None else set(cameras)
        now = time.time()
        closed: list[Event] = []
        with self._lock, self._tx() as db:
            rows = db.execute(
                f"SELECT {_EVENT_COLUMNS}, seen_at, seen_stream FROM events"
                " WHERE state = 'open' ORDER BY seq"
            ).fetchall()
            for *values, seen_at, seen_stream in rows:
                event = Event(*values)
                if wanted is not None and event.camera not in wanted:
                    continue
                event.state = "closed"
                event.ended_at = max(seen_at or event.started_at, event.started_at)
                event.stream_end = seen_stream if seen_stream is not None else event.stream_start
                event.reason = RECOVERED
                db.execute(
                    "UPDATE events SET state = 'closed', ended_at = ?, stream_end = ?, reason = ?"
                    " WHERE id = ?",
                    (event.ended_at, event.stream_end, event.reason, event.id),
                )
                self._add_deliveries(event, "ended", now)
                closed.append(event)
        if closed:
            self._notify()
        return closed

    def get(self, event_id: str) -> Event | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        return None if row is None else Event(*row)

    def events(
        self,
        camera: str | None = None,
        label: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Events newest first. ``since``/``until`` (wall clock) keep the events that overlap
        that span: started at or before ``until`` and not ended before ``since``."""
        clauses, args = where(
            [
                ("camera = ?", camera),
                ("label = ?", label),
                ("(ended_at IS NULL OR ended_at >= ?)", since),
                ("started_at <= ?", until),
            ]
        )
        sql = f"SELECT {_EVENT_COLUMNS} FROM events{clauses}"
        sql += " ORDER BY started_at DESC, seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, max(0, int(limit)))).fetchall()
        return [Event(*row) for row in rows]

    def pending(self, sink: str, now: float, limit: int = 50) -> list[Delivery]:
        """Deliveries to ``sink`` due at ``now``, oldest first. A message waits while an older
        message of the same event to the same sink is still pending, so a receiver never gets an
        event's "ended" before its "started"."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries AS d WHERE sink = ?"
                " AND status = 'pending' AND next_attempt <= ? AND NOT EXISTS ("
                "  SELECT 1 FROM deliveries AS e WHERE e.event_id = d.event_id"
                "  AND e.sink = d.sink AND e.status = 'pending' AND e.id < d.id)"
                " ORDER BY id LIMIT ?",
                (sink, now, max(0, int(limit))),
            ).fetchall()
        return [Delivery(*row) for row in rows]

    def deliveries(self, event_id: str | None = None, sink: str | None = None) -> list[Delivery]:
        """Every delivery row (of one event and/or sink), oldest first."""
        clauses, args = where([("event_id = ?", event_id), ("sink = ?", sink)])
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries{clauses}"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [Delivery(*row) for row in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{sink: {status: number of deliveries}}``, for health pages and metrics."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sink, status, COUNT(*) FROM deliveries GROUP BY sink, status"
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for sink, status, count in rows:
            out.setdefault(sink, {})[status] = count
        return out

    def mark_delivered(self, delivery_id: int, at: float | None = None) -> None:
        with self._lock, self._tx() as db:
            db.execute(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1,"
                " delivered_at = ?, last_error = NULL WHERE id = ? AND status = 'pending'",
                (time.time() if at is None else at, delivery_id),
            )

    def mark_failed(
        self, delivery_id: int, error: str, next_attempt: float, give_up: bool = False
    ) -> None:
        """Record a failed attempt; the delivery is due again at ``next_attempt`` (wall clock),
        or never again with ``give_up`` (status "failed")."""
        with self._lock, self._tx() as db:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt = ?,"
                " status = ? WHERE id = ? AND status = 'pending'",
                (error[:500], next_attempt, "failed" if give_up else "pending", delivery_id),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
