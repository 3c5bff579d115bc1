"""Delivering the event log's messages: a JSON-lines file, stdout and webhooks.

A ``Deliverer`` thread per sink takes the sink's due deliveries from the ``EventLog`` in order,
sends each and records the outcome in the log before it takes the next. A delivery is marked
delivered only after the sink acknowledged it (a webhook's 2xx, a line written and synced), so a
process killed between the two repeats that one message, with the same body and key, and nothing
else. Webhooks use the standard library's ``urllib`` so that a base install can send them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import random
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from resaction import __version__
from resaction.errors import ConfigError, first_line
from resaction.monitor.events import Delivery, EventLog


class DeliveryFailed(Exception):
    """A sink could not deliver a message; the message is one line and goes into the log."""


class Sink(Protocol):
    name: str  # the spec it was made from; deliveries in the log are keyed by it

    def send(self, delivery: Delivery) -> None:
        """Deliver ``delivery.body`` or raise ``DeliveryFailed``; returning means acknowledged."""

    def close(self) -> None: ...


class JsonlSink:
    """Appends one line per message to a file and syncs it before acknowledging."""

    def __init__(self, path: Path, name: str = "jsonl") -> None:
        """The file is created now: a day without events leaves an empty file, not a missing
        one, and a place that cannot be written fails before any camera opens."""
        self.name = name
        self.path = Path(path)
        self._file: IO[str] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError as error:
            reason = first_line(error)
            raise ConfigError(f"sink {name}: cannot write {self.path}: {reason}") from None

    def send(self, delivery: Delivery) -> None:
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(delivery.body + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as error:
            self.close()
            raise DeliveryFailed(f"cannot append to {self.path}: {first_line(error)}") from error

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StdoutSink:
    """Writes one line per message to standard output (looked up at each send)."""

    name = "stdout"

    def send(self, delivery: Delivery) -> None:
        try:
            sys.stdout.write(delivery.body + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as error:
            raise DeliveryFailed(f"cannot write to stdout: {first_line(error)}") from error

    def close(self) -> None:
        pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be re-sent as a GET by urllib; treat a redirect as a failure."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _is_loopback(host: str | None) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSink:
    """POSTs each message as JSON to ``url``; any 2xx answer acknowledges it.

    Headers: ``Idempotency-Key`` (the delivery's key, the same on every attempt),
    ``X-Resaction-Kind``, ``X-Resaction-Attempt`` (1 on the first try), ``headers`` given here (for
    example ``Authorization``) and, with ``secret``, ``X-Resaction-Signature: sha256=<hex HMAC of
    the body>``. Proxies from the environment are used except for loopback addresses."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        secret: str | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"webhook URL {url!r} is not an http(s) URL; write it as webhook:https://host/path"
            )
        self.name = f"webhook:{url}"
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.secret = secret
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if _is_loopback(parsed.hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, delivery: Delivery) -> urllib.request.Request:
        body = delivery.body.encode()
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": f"resaction/{__version__}",
            "Idempotency-Key": delivery.key,
            "X-Resaction-Kind": delivery.kind,
            "X-Resaction-Attempt": str(delivery.attempts + 1),
        }
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Resaction-Signature"] = f"sha256={digest}"
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, delivery: Delivery) -> None:
        try:
            with self._opener.open(self.request(delivery), timeout=self.timeout) as response:
                status = response.status
                response.read(65536)
        except urllib.error.HTTPError as error:
            error.close()
            raise DeliveryFailed(f"HTTP {error.code} {error.reason} from {self.url}") from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryFailed(f"{self.url}: {first_line(reason)}") from error
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status} from {self.url}")

    def close(self) -> None:
        pass


def make_sink(
    spec: str,
    out_dir: Path,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    secret: str | None = None,
) -> Sink:
    """A sink from its spec: ``jsonl`` (``out_dir/events.jsonl``), ``jsonl:PATH`` (relative to
    ``out_dir``), ``stdout`` or ``webhook:URL``. ``headers``, ``timeout`` and ``secret`` apply
    to webhooks."""
    kind, _, rest = spec.partition(":")
    if kind == "jsonl":
        return JsonlSink(Path(out_dir) / (rest or "events.jsonl"), name=spec)
    if kind == "stdout" and not rest:
        return StdoutSink()
    if kind == "webhook" and rest:
        return WebhookSink(rest, headers=headers, timeout=timeout, secret=secret)
    raise ConfigError(
        f"unknown sink {spec!r}; use jsonl, jsonl:PATH, stdout or webhook:https://host/path"
    )


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (n = consecutive failures, from 1): ``base * factor**(n-1)``
    capped at ``cap``, then shortened by a random fraction up to ``jitter`` so that many
    watchers do not retry in step. The defaults give about 1, 2, 4, ... 32, 60, 60 ... seconds."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.5

    def delay(self, n: int) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, min(n - 1, 64)))
        return raw * (1.0 - self.jitter * random.random())


class Deliverer:
    """One thread that delivers one sink's messages from the log, oldest first.

    After a failure the whole sink backs off (the receiver is what is down): nothing is tried
    before the failed delivery's next attempt time, and that delivery is the first tried then.
    ``EventLog`` writes wake the thread at once; it also polls every ``poll`` seconds, for rows
    written by another process. ``max_attempts`` (default: retry for ever) marks a delivery
    "failed" after that many attempts."""

    def __init__(
        self,
        log: EventLog,
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        poll: float = 1.0,
        max_attempts: int | None = None,
    ) -> None:
        self.log = log
        self.sink = sink
        self.backoff = backoff or Backoff()
        self.poll = poll
        self.max_attempts = max_attempts
        self.delivered = 0
        self.failures = 0  # consecutive failed attempts; 0 while the sink is healthy
        self.last_error: str | None = None
        self.retry_at = 0.0  # wall clock; nothing is sent before it
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name=f"deliver {sink.name}", daemon=True)
        log.subscribe(self.wake)

    def start(self) -> Deliverer:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Deliver what is due for up to ``timeout`` seconds, then stop (a sink that is backing
        off is not waited for). True if nothing is left pending for this sink; what is left is
        delivered by the next run."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            # a send in flight may take the sink's own timeout to return
            self._thread.join(timeout + float(getattr(self.sink, "timeout", 0.0)) + 1.0)
        self.sink.close()
        left = self.log.pending(self.sink.name, float("inf"), 1)
        return not self._thread.is_alive() and not left

    def _run(self) -> None:
        while True:
            try:
                self._loop()
                return
            except sqlite3.Error as error:  # the log itself failed (disk full, locked): wait
                self.last_error = f"event log: {first_line(error)}"
                if self._stop.wait(self.poll):
                    return

    def _loop(self) -> None:
        """Wait for due deliveries and send them until stopped (and drained or out of time)."""
        while True:
            stopping = self._stop.is_set()
            if stopping and time.monotonic() >= self._deadline:
                return
            now = time.time()
            if now < self.retry_at:  # backing off: new events do not cut the wait short
                if stopping:
                    return
                self._stop.wait(self.retry_at - now)
                continue
            self._wake.clear()
            # one at a time, so that the oldest due message is always the next one sent
            due = self.log.pending(self.sink.name, now, 1)
            if not due:
                if stopping:
                    return
                self._wake.wait(self.poll)
                continue
            self._deliver(due[0])

    def _deliver(self, delivery: Delivery) -> bool:
        try:
            self.sink.send(delivery)
        except Exception as error:  # a sink's failure must never end the thread
            self.failures += 1
            self.last_error = first_line(error)
            self.retry_at = time.time() + self.backoff.delay(self.failures)
            give_up = self.max_attempts is not None and delivery.attempts + 1 >= self.max_attempts
            self.log.mark_failed(delivery.id, self.last_error, self.retry_at, give_up=give_up)
            return False
        self.log.mark_delivered(delivery.id)
        self.failures = 0
        self.retry_at = 0.0
        self.delivered += 1
        return True
