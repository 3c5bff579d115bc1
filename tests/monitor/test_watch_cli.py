"""``resaction watch`` from the command line: bad input is one line; an unreachable camera is
reported and retried while the others run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resaction.cli import run_app
from resaction.monitor.events import STOPPED
from resaction.monitor.watcher import watch_lock

from .fight_model import clip_path
from .streams import free_port
from .tiny_model import save_tiny_tsn


@pytest.fixture(scope="module")
def tiny_tsn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_tsn(tmp_path_factory.mktemp("watch") / "tiny.pt")


def cameras_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_a_mistake_in_the_cameras_file_is_one_line(
    tiny_tsn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cameras_file(tmp_path, "cameras:\n  - name: a\n    url: x.mp4\n    treshold: 0.5\n")
    assert run_app(["watch", str(path), "-c", str(tiny_tsn), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "line 4, cameras.0.treshold: unknown key" in err
    path = cameras_file(tmp_path, "cameras:\n  - name: gate\n    url: missing.mp4\n")
    assert run_app(["watch", str(path), "-c", str(tiny_tsn), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: camera gate: stream source missing.mp4 is not"), err


def test_an_alert_class_the_model_lacks_lists_its_classes(
    tiny_tsn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], videos_dir: Path
) -> None:
    url = clip_path(videos_dir, "nofi148")
    text = f"cameras:\n  - name: hall\n    url: {url}\n    classes: [fihgt]\n"
    path = cameras_file(tmp_path, text)
    assert run_app(["watch", str(path), "-c", str(tiny_tsn), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'hall' watches class 'fihgt'" in err and "fight, noFight" in err


def test_a_second_watcher_on_one_out_folder_is_refused(
    tiny_tsn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], videos_dir: Path
) -> None:
    """Two watchers on one log would each deliver the events it owes."""
    path = cameras_file(
        tmp_path, f"cameras:\n  - name: hall\n    url: {clip_path(videos_dir, 'nofi148')}\n"
    )
    out = tmp_path / "out"
    with watch_lock(out):
        assert run_app(["watch", str(path), "-c", str(tiny_tsn), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"another watcher is working on {out}: stop it" in err
    assert not (out / "events.db").exists()


def test_a_webhook_s_headers_and_secret_reach_its_sink(
    tiny_tsn: Path, tmp_path: Path, videos_dir: Path
) -> None:
    from resaction.monitor.config import load_watch_config
    from resaction.monitor.watcher import Watcher, WatchOptions
    from resaction.runtime.loading import load_model

    text = (
        f"cameras:\n  - name: hall\n    url: {clip_path(videos_dir, 'nofi148')}\n"
        "sinks:\n  - webhook: http://127.0.0.1:9/hook\n    headers: {X-Site: north}\n"
        "    secret: abc\n"
    )
    config = load_watch_config(cameras_file(tmp_path, text))
    watcher = Watcher(config, load_model(tiny_tsn), WatchOptions(out=tmp_path / "out"))
    [deliverer] = watcher.deliverers
    assert deliverer.sink.headers == {"X-Site": "north"} and deliverer.sink.secret == "abc"
    watcher.log.close()
    watcher.lock.close()


def test_with_a_stdout_sink_stdout_carries_only_the_events(
    tiny_tsn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], videos_dir: Path
) -> None:
    """A program reading the events from stdout had to filter out tables and status lines."""
    url = clip_path(videos_dir, "nofi148")
    text = f"cameras:\n  - name: hall\n    url: {url}\n    loop: true\nsinks: [stdout]\n"
    argv = ["watch", str(cameras_file(tmp_path, text)), "-c", str(tiny_tsn)]
    assert run_app([*argv, "--out", str(tmp_path / "out"), "--duration", "3"]) == 0
    captured = capsys.readouterr()
    assert all(json.loads(line) for line in captured.out.splitlines() if line.strip())
    assert "watch summary" in captured.err and "watching 1 camera(s)" in captured.err


def test_an_unreachable_camera_is_retried_while_the_others_run(
    tiny_tsn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], videos_dir: Path
) -> None:
    url = clip_path(videos_dir, "nofi148")
    text = (
        "defaults:\n  classes: [fight]\n"
        f"cameras:\n  - name: hall\n    url: {url}\n    loop: true\n"
        f"  - name: gone\n    url: http://127.0.0.1:{free_port()}/live.ts\n"
        "sinks: [jsonl]\n"
    )
    path = cameras_file(tmp_path, text)
    out = tmp_path / "out"
    argv = ["watch", str(path), "-c", str(tiny_tsn), "--out", str(out), "--duration", "4"]
    assert run_app(argv) == 0
    captured = capsys.readouterr()
    assert "gone: reconnecting" in captured.err
    assert "hall: live" in captured.err
    rows = {line.split("│")[1].strip(): line for line in captured.out.splitlines() if "│" in line}
    hall = [cell.strip() for cell in rows["hall"].split("│")[1:-1]]
    assert hall[1] == "live" and int(hall[2]) > 60
    assert "reconnecting" in rows["gone"] or "connecting" in rows["gone"]
    assert (out / "events.db").exists()
    events = out / "events.jsonl"
    assert not events.exists() or all(json.loads(line) for line in events.read_text().splitlines())


def test_an_event_still_open_when_the_run_ends_says_so(
    tiny_tsn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], videos_dir: Path
) -> None:
    """With a threshold every window passes, the event opens at once and is still open when
    --duration ends the run: it is closed with the reason the docs give, not as if the rule had
    closed it."""
    url = clip_path(videos_dir, "nofi148")
    text = (
        "defaults:\n  classes: [fight]\n  threshold: 0.01\n  exit_threshold: 0.005\n"
        "  min_duration: 0\n"
        f"cameras:\n  - name: hall\n    url: {url}\n    loop: true\n"
        "sinks: [jsonl]\n"
    )
    out = tmp_path / "out"
    argv = ["watch", str(cameras_file(tmp_path, text)), "-c", str(tiny_tsn), "--out", str(out)]
    assert run_app([*argv, "--duration", "4"]) == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    closed = [line["event"] for line in lines if line["event"]["state"] == "closed"]
    assert closed and all(event["reason"] == STOPPED for event in closed), closed
