"""``resaction batch``: archive listing, the resumable results folder, and runs on a local Ray
instance (one per module, on loopback) and in local processes, with a corrupt file, a killed
model worker and a killed driver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from resaction.cli import run_app
from resaction.data.synthetic import generate_dataset
from resaction.data.video_lists import list_videos
from resaction.errors import ConfigError, DatasetError
from resaction.inference import Predictor
from resaction.inference.archive import BatchStore, VideoKey, load_failures, load_results
from resaction.inference.batch import BatchOptions, run_batch, start_local_ray
from resaction.inference.timeline import TimelineConfig, run_timeline
from resaction.models import create_model, default_preprocess
from resaction.models.checkpoint import save_checkpoint

REAL_VIDEOS = [
    "surveillance_camera_fight/noFight/nofi090.mp4",
    "kth_samples/boxing/boxing_sample.avi",
    "ucf101_subset/Diving/v_Diving_g01_c01.avi",
    "gt_cs4495_ps7/A2_one_hand_wave/PS7A2P1T1.avi",
]
CLASSES = ["grow", "move_left", "shrink"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("tsn_resnet18", num_classes=len(CLASSES))
    with torch.no_grad():  # a sharper head, so that input differences show in the probabilities
        model.get_classifier().weight.mul_(20.0)
    preprocess = {**default_preprocess("tsn_resnet18"), "clip_len": 4, "resize": 36, "crop": 32}
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "tiny.pt",
        model,
        model_name="tsn_resnet18",
        classes=CLASSES,
        preprocess=preprocess,
        protocol={"num_clips": 2, "num_crops": 1},
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> Path:
    """A list of 6 generated videos, 4 real ones (read in place) and a corrupt file."""
    root = tmp_path_factory.mktemp("archive")
    generate_dataset(root / "synthetic", 2, size=32, num_frames=8, classes=CLASSES, progress=False)
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    videos = sorted((root / "synthetic").rglob("*.mp4"))
    videos += [videos_dir / name for name in REAL_VIDEOS] + [broken]
    listing = root / "videos.txt"
    listing.write_text("".join(f"{video}\n" for video in videos))
    return listing


def archive_videos(listing: Path) -> list[str]:
    return [str(Path(line).resolve()) for line in listing.read_text().splitlines()]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    import ray

    start_local_ray(
        num_cpus=2, object_store_memory=200 * 1024**2, logging_level="ERROR", log_to_driver=False
    )
    yield
    ray.shutdown()


# ---------------------------------------------------------------------------- archive and store


def test_list_videos_reads_folders_csv_and_lists(tmp_path: Path) -> None:
    (tmp_path / "a" / ".hidden").mkdir(parents=True)
    for name in ["a/x.mp4", "a/y.AVI", "a/.hidden/z.mp4", "a/.w.mp4", "a/notes.txt", "b.mkv"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)] == [
        "a/x.mp4",
        "a/y.AVI",
        "b.mkv",
    ]  # sorted by path, as every command that takes a folder lists it (io.video_files)
    table = tmp_path / "m.csv"
    table.write_text("label,path\nrun,a/x.mp4\nwalk,gone.mp4\nrun,a/x.mp4\n")
    assert list_videos(table) == [tmp_path / "a/x.mp4", tmp_path / "gone.mp4"]
    listing = tmp_path / "m.txt"
    listing.write_text("# videos\na/x.mp4 3\n\nmy clip.mp4\n")
    assert list_videos(listing) == [tmp_path / "a/x.mp4", tmp_path / "my clip.mp4"]
    with pytest.raises(DatasetError, match="not found"):
        list_videos(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no video files"):
        list_videos(tmp_path / "empty")


def test_store_resumes_cuts_torn_lines_and_refuses_other_settings(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"1234")
    key = VideoKey.of(video)
    out = tmp_path / "out"
    with BatchStore(out, {"mode": "predict"}) as store:
        with pytest.raises(ConfigError, match="another resaction batch"):
            BatchStore(out, {"mode": "predict"})
        store.commit({**key.fields(), "label": "run"})
        store.fail({"path": "/gone.mp4", "size": None, "mtime_ns": None, "reason": "x"})
    with (out / "results.jsonl").open("a") as handle:
        handle.write('{"path": "/half')  # a kill in the middle of a line
    with BatchStore(out, {"mode": "predict"}) as store:
        assert store.is_done(key)
        assert [row["path"] for row in load_results(out)] == [key.path]
    video.write_bytes(b"12345")  # a changed file is a new video
    with BatchStore(out, {"mode": "predict"}) as store:
        assert not store.is_done(VideoKey.of(video))
    assert [row["reason"] for row in load_failures(out)] == ["x"]
    with pytest.raises(ConfigError, match="mode='predict'"):
        BatchStore(out, {"mode": "timeline"})


def test_without_ray_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    argv = ["batch", str(video), "--model", str(checkpoint), "--out", str(tmp_path / "o")]
    with pytest.raises(ConfigError, match=r"pip install 'resaction\[ray\]'.*--local"):
        run_batch(video, checkpoint, tmp_path / "o")
    assert run_app(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: Ray is not installed") and "--local" in error
    assert "Traceback" not in error
    assert not (tmp_path / "o").exists()


def test_a_cluster_address_where_nothing_listens_fails_at_once(
    checkpoint: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    for address, message in [(f"127.0.0.1:{port}", "no Ray cluster answers"), ("x", "not auto")]:
        with pytest.raises(ConfigError, match=message):
            run_batch(video, checkpoint, tmp_path / "out", BatchOptions(address=address))
    assert not (tmp_path / "out").exists()


class FakePool:
    """A process pool whose processes die on ``poison`` videos, breaking it like a real one:
    every video not yet finished in it fails with ``BrokenProcessPool``."""

    pools: ClassVar[list[FakePool]] = []

    def __init__(self) -> None:
        self.broken = False
        self.pending: list[Future] = []
        FakePool.pools.append(self)

    def submit(self, function: object, path: str) -> Future:
        future: Future = Future()
        self.pending.append(future)
        if Path(path).name.startswith("poison"):
            self.broken = True
            for waiting in self.pending:
                if not waiting.done():
                    waiting.set_exception(BrokenProcessPool("a process died"))
        elif self.broken:
            future.set_exception(BrokenProcessPool("a process died"))
        else:
            future.set_result({"label": "ok"})
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_local_pool_blames_only_the_video_that_kills_its_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from resaction.inference import batch_local
    from resaction.inference.batch_job import BatchJob, Outcomes
    from resaction.inference.batch_work import WorkSpec

    names = ["a.mp4", "b.mp4", "poison.mp4", "c.mp4", "d.mp4", "e.mp4"]
    keys = []
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
        keys.append(VideoKey.of(tmp_path / name))
    FakePool.pools = []
    monkeypatch.setattr(batch_local, "_new_pool", lambda job, workers: FakePool())
    job = BatchJob(tmp_path / "m.pt", WorkSpec(), pipeline="{}", num_workers=2)
    with BatchStore(tmp_path / "out", {}) as store:
        outcomes = Outcomes(store, total=6, already_done=0, max_attempts=3, progress=False)
        batch_local.run_local(keys, job, outcomes)
    assert sorted(Path(row["path"]).name for row in load_results(tmp_path / "out")) == [
        "a.mp4",
        "b.mp4",
        "c.mp4",
        "d.mp4",
        "e.mp4",
    ]
    [failure] = load_failures(tmp_path / "out")
    assert Path(failure["path"]).name == "poison.mp4" and failure["attempts"] == 3
    assert "died on this video 3 times" in failure["reason"]
    assert len(FakePool.pools) == 4  # the first pool, and a new one after each of 3 deaths
    assert outcomes.workers == (2, 0)


def test_an_interrupted_run_records_its_workers(
    monkeypatch: pytest.MonkeyPatch, archive: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """batch.json's run record said 0 workers for a run stopped by Ctrl-C."""
    from resaction.inference import batch_local

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_local, "_drain", interrupted)
    monkeypatch.setattr(batch_local, "_new_pool", lambda job, workers: FakePool())
    options = BatchOptions(local=True, num_workers=3, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_batch(archive, checkpoint, tmp_path / "out", options)
    [run] = json.loads((tmp_path / "out" / "batch.json").read_text())["runs"]
    assert run["status"] == "interrupted" and run["workers"] == 3


# ---------------------------------------------------------------------------------- on Ray


@pytest.mark.slow
def test_ray_batch_equals_predict_and_lists_the_corrupt_file(
    ray_session: None, archive: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = run_batch(
        archive, checkpoint, out, BatchOptions(num_workers=2, topk=3, progress=False)
    )
    videos = archive_videos(archive)
    assert (summary.total, summary.scored, summary.failed) == (len(videos), len(videos) - 1, 1)
    failures = load_failures(out)
    assert [Path(row["path"]).name for row in failures] == ["broken.mp4"]
    assert "cannot" in failures[0]["reason"]

    expected = tmp_path / "predict.jsonl"
    good = [video for video in videos if not video.endswith("broken.mp4")]
    predict = ["predict", *good, "-c", str(checkpoint), "-k", "3", "--no-progress"]
    assert run_app([*predict, "--json", str(expected)]) == 0
    reference = {
        str(Path(row["path"]).resolve()): row
        for row in map(json.loads, expected.read_text().splitlines())
    }
    rows = load_results(out)
    assert sorted(row["path"] for row in rows) == sorted(good)
    for row in rows:
        assert (row["size"], row["mtime_ns"]) == (
            os.stat(row["path"]).st_size,
            os.stat(row["path"]).st_mtime_ns,
        )
        want = reference[row["path"]]
        assert row["label"] == want["label"]
        assert [t["label"] for t in row["topk"]] == [t["label"] for t in want["topk"]]
        for got, wanted in zip(row["topk"], want["topk"], strict=True):
            assert got["prob"] == pytest.approx(wanted["prob"], abs=1e-5)


@pytest.mark.slow
def test_ray_batch_survives_a_killed_worker_and_a_killed_driver(
    ray_session: None, archive: Path, checkpoint: Path, tmp_path: Path
) -> None:
    import ray

    videos = archive_videos(archive)
    good = sorted(video for video in videos if not video.endswith("broken.mp4"))
    options = BatchOptions(num_workers=2, progress=False)

    # A model worker is killed after the first result: the video it held is given to its
    # replacement, and every video still ends up in the results exactly once.
    out = tmp_path / "killed_worker"
    actors_seen: set[str] = set()

    def kill_a_worker(row: dict) -> None:
        names = [n for n in ray.util.list_named_actors() if n.startswith("resaction-batch-")]
        if not actors_seen:
            ray.kill(ray.get_actor(sorted(names)[0]), no_restart=True)
        actors_seen.update(names)

    summary = run_batch(archive, checkpoint, out, options, on_commit=kill_a_worker)
    assert len(actors_seen) > 2, "the killed worker was never replaced"
    rows = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(row)["path"] for row in rows) == good
    assert (summary.scored, summary.failed) == (len(good), 1)

    # The driver dies after three results and half of a fourth line: a second run keeps the
    # three, scores only the others, and a third run has nothing left to do.
    out = tmp_path / "killed_driver"

    class DriverKilled(Exception):
        pass

    def die_after_three(row: dict) -> None:
        if len(load_results(out)) == 3:
            with (out / "results.jsonl").open("a") as handle:
                handle.write('{"path": "' + row["path"][:10])
            raise DriverKilled

    with pytest.raises(DriverKilled):
        run_batch(archive, checkpoint, out, options, on_commit=die_after_three)
    done_before = {
        json.loads(line)["path"]
        for line in (out / "results.jsonl").read_text().splitlines()
        if line.endswith("}")
    }
    assert len(done_before) == 3
    scored_again: list[str] = []
    summary = run_batch(
        archive, checkpoint, out, options, on_commit=lambda row: scored_again.append(row["path"])
    )
    assert not set(scored_again) & done_before
    assert sorted([*scored_again, *done_before]) == good
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["path"] for line in lines) == good
    assert summary.already_done == 3
    again = run_batch(archive, checkpoint, out, options)
    assert (again.already_done, again.scored, again.failed) == (len(videos), 0, 0)


@pytest.mark.slow
def test_ray_timeline_mode_equals_the_timeline_api(
    ray_session: None, archive: Path, checkpoint: Path, videos_dir: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "two.txt"
    two = [videos_dir / REAL_VIDEOS[0], videos_dir / REAL_VIDEOS[3]]
    listing.write_text("\n".join(map(str, two)) + "\n")
    options = BatchOptions(mode="timeline", timeline={"stride": 16}, progress=False)
    summary = run_batch(listing, checkpoint, tmp_path / "out", options)
    assert (summary.scored, summary.failed) == (2, 0)
    predictor = Predictor.from_checkpoint(checkpoint)
    rows = {row["path"]: row for row in load_results(tmp_path / "out")}
    for video in two:
        timeline = run_timeline(predictor, video, TimelineConfig(stride=16))
        row = rows[str(video.resolve())]
        assert row["num_windows"] == len(timeline.starts) > 1
        assert [s["label"] for s in row["segments"]] == [s.label for s in timeline.segments]
        for got, segment in zip(row["segments"], timeline.segments, strict=True):
            assert got["start"] == pytest.approx(segment.start, abs=1e-4)
            assert got["end"] == pytest.approx(segment.end, abs=1e-4)


@pytest.mark.slow
def test_ray_batch_runs_an_exported_onnx_model_like_its_checkpoint(
    ray_session: None, archive: Path, checkpoint: Path, tmp_path: Path
) -> None:
    from resaction.deploy.export import export_checkpoint

    onnx_model = export_checkpoint(checkpoint, tmp_path / "tiny.onnx").path
    listing = tmp_path / "three.txt"
    listing.write_text("\n".join(archive_videos(archive)[-4:-1]) + "\n")
    options = BatchOptions(num_workers=1, topk=3, progress=False)
    for model, out in [(checkpoint, "torch"), (onnx_model, "onnx")]:
        summary = run_batch(listing, model, tmp_path / out, options)
        assert (summary.scored, summary.failed) == (3, 0)
    torch_rows = {row["path"]: row for row in load_results(tmp_path / "torch")}
    for row in load_results(tmp_path / "onnx"):
        want = torch_rows[row["path"]]
        assert [t["label"] for t in row["topk"]] == [t["label"] for t in want["topk"]]
        for got, wanted in zip(row["topk"], want["topk"], strict=True):
            assert got["prob"] == pytest.approx(wanted["prob"], abs=1e-4)


# ------------------------------------------------------------------------- local processes


@pytest.mark.slow
def test_local_cli_killed_mid_run_resumes_without_redoing(
    archive: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "resaction.cli",
        "batch",
        str(archive),
        "--model",
        str(checkpoint),
        "--out",
        str(out),
        "--local",
        "--num-workers",
        "1",
        "--no-progress",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen(
        command, env=environment, start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the driver and its worker processes, all at once
    run.communicate()
    lines = results.read_text().splitlines()
    done_before = {json.loads(line)["path"] for line in lines if line.endswith("}")}
    videos = archive_videos(archive)
    good = sorted(video for video in videos if not video.endswith("broken.mp4"))
    assert 2 <= len(done_before) < len(good)

    resumed = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "already done" in resumed.stdout
    lines = results.read_text().splitlines()
    assert sorted(json.loads(line)["path"] for line in lines) == good
    assert [Path(row["path"]).name for row in load_failures(out)] == ["broken.mp4"]
    record = json.loads((out / "batch.json").read_text())
    assert record["runs"][-1]["scored"] == len(good) - len(done_before)


def test_an_empty_file_s_key_survives_its_row(tmp_path: Path) -> None:
    """A stored size of 0 read back as -1 made every resume scan an empty file again."""
    empty = tmp_path / "empty.mp4"
    empty.touch()
    key = VideoKey.of(empty)
    assert key.size == 0
    assert VideoKey.from_row(key.fields()) == key
