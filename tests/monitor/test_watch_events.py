"""The watcher end to end on live loopback cameras: a real fight between quiet clips is one event
with a clip that covers it, quiet cameras raise none, and a camera that drops is reconnected
while the others keep going."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
from pathlib import Path

import av
import pytest

from resaction.monitor.config import load_watch_config
from resaction.monitor.watcher import Watcher, WatchOptions
from resaction.runtime.loading import load_model

from .conftest import StartStream
from .fight_model import FIGHT, QUIET, record, train_fight_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fight_checkpoint(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fight_model")
    checkpoint = train_fight_model(videos_dir, out)
    with (out / "run" / "metrics.csv").open() as handle:
        last = list(csv.DictReader(handle))[-1]
    assert float(last["val_top1"]) >= 0.9, f"the fight model did not learn its clips: {last}"
    return checkpoint


@pytest.fixture(scope="module")
def recordings(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("recordings")
    yard = folder / "yard.mp4"
    # Quiet scenes are a clip and itself backwards, so only the fight has cuts in it.
    quiet_a, quiet_b = QUIET[0], QUIET[2]
    names = [quiet_a, f"{quiet_a}~", *FIGHT[:3], quiet_b, f"{quiet_b}~"]
    spans = record(videos_dir, names, yard)
    quiet = folder / "quiet.mp4"
    record(videos_dir, [QUIET[4], f"{QUIET[4]}~", QUIET[4], f"{QUIET[4]}~"], quiet)
    fights = [(start, end) for name, start, end in spans if name in FIGHT]
    return {"yard": yard, "quiet": quiet, "fight": (fights[0][0], fights[-1][1]), "spans": spans}


def frame_hashes(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [
            hashlib.md5(frame.to_ndarray(format="rgb24").tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


def test_a_fight_between_quiet_clips_is_one_event_and_a_dropped_camera_comes_back(
    fight_checkpoint: Path, recordings: dict, start_stream: StartStream, tmp_path: Path
) -> None:
    yard = start_stream("udp", [recordings["yard"]], loop=False)
    hall = start_stream("http", [recordings["quiet"]])
    gate = start_stream("rtsp", [recordings["quiet"]])
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "defaults:\n  classes: [fight]\n  threshold: 0.7\n  exit_threshold: 0.5\n"
        "  min_duration: 0.5\n  min_gap: 1.0\n  cooldown: 60\n  pre: 3\n  post: 3\n  window: 1.0\n"
        f"cameras:\n  - {{name: yard, url: '{yard.url}'}}\n"
        f"  - {{name: hall, url: '{hall.url}'}}\n"
        f"  - {{name: gate, url: '{gate.url}'}}\n"
        f"  - {{name: lobby, url: '{recordings['quiet']}', loop: true}}\n"
        "sinks: [jsonl]\n"
    )
    length = recordings["spans"][-1][2]
    out = tmp_path / "out"
    options = WatchOptions(out=out, reader={"backoff": (0.2, 1.0), "read_timeout": 1.0})
    watcher = Watcher(load_watch_config(cameras), load_model(fight_checkpoint), options)
    states: list[tuple[str, str]] = []
    watcher.subscribe(
        lambda m: states.append((m["camera"], m["state"])) if m["type"] == "camera" else None
    )
    outage: dict[str, dict] = {}

    def drop_hall() -> None:
        time.sleep(4.0)
        outage["before"] = {c["name"]: c["frames"] for c in watcher.cameras_status()}
        hall.stop()
        time.sleep(3.0)
        outage["during"] = {c["name"]: c["frames"] for c in watcher.cameras_status()}
        hall.start()

    watcher.start()
    operator = threading.Thread(target=drop_hall)
    operator.start()
    time.sleep(length + 4.0)
    operator.join()
    summary = watcher.stop()

    events = [json.loads(line)["event"] for line in (out / "events.jsonl").read_text().splitlines()]
    closed = {e["id"]: e for e in events if e["state"] == "closed"}
    assert {e["camera"] for e in closed.values()} == {"yard"}, summary
    assert len(closed) == 1
    event = next(iter(closed.values()))
    assert event["label"] == "fight" and event["peak"] >= 0.7 and event["clip"]

    # The clip is a remux of the packets the camera sent: find its frames in the recording.
    recorded = frame_hashes(recordings["yard"])
    clip = [recorded.index(h) for h in frame_hashes(out / event["clip"]) if h in recorded]
    assert len(clip) > 0.9 * len(frame_hashes(out / event["clip"]))
    fight_start, fight_end = (round(t * 30) for t in recordings["fight"])
    assert clip[0] <= fight_start and clip[-1] >= fight_end - 1, (clip[0], clip[-1], recordings)
    assert (out / event["snapshot"]).stat().st_size > 1000

    # hall went away and came back; the others never stalled meanwhile.
    hall_states = [state for camera, state in states if camera == "hall"]
    assert "reconnecting" in hall_states
    assert hall_states[-1] == "live" or "live" in hall_states[hall_states.index("reconnecting") :]
    for name in ("gate", "lobby"):
        assert outage["during"][name] > outage["before"][name] + 45, outage
