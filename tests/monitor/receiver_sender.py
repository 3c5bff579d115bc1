"""A watcher stand-in run as a subprocess by the kill -9 tests: an EventLog and a webhook Deliverer.

python receiver_sender.py record LOG URL N   open N events (closing every other one), print a
                                             line per write, then wait to be killed
python receiver_sender.py deliver LOG URL    recover, deliver everything pending, exit 0
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from resaction.monitor.events import Event, EventLog, new_event_id
from resaction.monitor.sinks import Backoff, Deliverer, make_sink

BACKOFF = Backoff(base=0.05, factor=2.0, cap=0.2, jitter=0.5)


def record(log: EventLog, deliverer: Deliverer, count: int) -> None:
    for i in range(count):
        now = time.time()
        event = Event(
            id=new_event_id(),
            camera=f"cam{i % 2}",
            label="fight",
            state="open",
            started_at=now,
            ended_at=None,
            stream_start=float(i),
            stream_end=None,
            peak=0.9,
            mean=0.8,
            snapshot=None,
            clip=None,
        )
        log.open_event(event)
        print(f"opened {event.id}", flush=True)
        time.sleep(0.02)
        if i % 2 == 0:
            event.stream_end = i + 0.5
            log.close_event(event)
            print(f"closed {event.id}", flush=True)
    print("recorded", flush=True)
    while True:
        time.sleep(1)


def deliver(log: EventLog, deliverer: Deliverer) -> None:
    recovered = log.recover()
    print(f"recovered {len(recovered)}", flush=True)
    deadline = time.monotonic() + 30
    while log.pending(deliverer.sink.name, float("inf"), 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    ok = deliverer.stop(timeout=5)
    print("done" if ok else "left", flush=True)


def main() -> None:
    mode, path, url = sys.argv[1:4]
    sink = make_sink(f"webhook:{url}", Path(path).parent, timeout=2.0)
    log = EventLog(Path(path), [sink.name])
    deliverer = Deliverer(log, sink, backoff=BACKOFF, poll=0.05).start()
    if mode == "record":
        record(log, deliverer, int(sys.argv[4]))
    else:
        deliver(log, deliverer)
    log.close()


if __name__ == "__main__":
    main()
