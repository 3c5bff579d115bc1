"""A server that stops mid-job loses nothing: the next one over the same state folder re-runs
unfinished jobs and still serves finished results."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from resaction.errors import ConfigError
from resaction.serve import create_app
from resaction.serve.job_store import JobStore
from resaction.serve.jobs import JobPool, JobStopped
from tests.serve.conftest import (
    gated_predictor,
    upload,
    wait_for_job,
    wait_for_uploads_removed,
    wait_until,
)


@pytest.mark.slow
def test_restart_reruns_unfinished_jobs_and_keeps_finished_ones(
    make_settings, tiny_predictor, tiny_checkpoint, short_video
):
    settings = make_settings(workers=1, max_queued=4)

    with TestClient(create_app(settings, tiny_predictor)) as first:
        finished = first.post("/jobs", files=upload(short_video)).json()["id"]
        assert wait_for_job(first, finished)["status"] == "done"
        finished_video = first.get(f"/jobs/{finished}/annotated.mp4").content

    predictor, backend = gated_predictor(tiny_checkpoint)
    stuck_app = create_app(settings, predictor)
    stuck_app.state.service.pool.stop_timeout = 0.1
    try:
        with TestClient(stuck_app) as second:
            running = second.post("/jobs", files=upload(short_video)).json()["id"]
            assert backend.entered.wait(30)
            waiting = second.post("/jobs", files=upload(short_video), data={"stride": "3"}).json()[
                "id"
            ]
            assert second.get(f"/jobs/{running}").json()["status"] == "running"
            assert second.get(f"/jobs/{waiting}").json()["status"] == "queued"
        # the second server is gone with one job half done and one never started

        with TestClient(create_app(settings, tiny_predictor)) as third:
            rerun = wait_for_job(third, running)
            assert rerun["status"] == "done"
            assert rerun["attempts"] == 2
            started_late = wait_for_job(third, waiting)
            assert started_late["status"] == "done"
            assert started_late["options"]["stride"] == 3
            assert third.get(f"/jobs/{running}/timeline").status_code == 200
            assert third.get(f"/jobs/{finished}").json()["status"] == "done"
            assert third.get(f"/jobs/{finished}/annotated.mp4").content == finished_video

            # the second server's worker wakes up late: its result must not replace the rerun's
            backend.gate.set()
            stale_dirs = lambda: [  # noqa: E731
                path
                for path in (third.app.state.service.results_dir / running).iterdir()
                if path.name.startswith("attempt-1-")
            ]
            wait_until(lambda: not stale_dirs())
            attempts = list((third.app.state.service.results_dir / running).iterdir())
            assert [path.name[:10] for path in attempts] == ["attempt-2-"]
            assert third.get(f"/jobs/{running}").json() == rerun
            wait_for_uploads_removed(third.app.state.service)
    finally:
        backend.gate.set()


def test_a_second_server_on_one_state_folder_is_refused_until_the_first_stops(
    make_settings, tiny_predictor
):
    """A second server would run the first one's unfinished jobs again."""
    settings = make_settings()
    refused = pytest.raises(ConfigError, match=r"another resaction serve is using .*--state-dir")
    with TestClient(create_app(settings, tiny_predictor)), refused:
        create_app(settings, tiny_predictor)
    with TestClient(create_app(settings, tiny_predictor)) as again:
        assert again.get("/health").status_code == 200


def test_stopping_the_pool_ends_a_running_job_at_its_next_progress_report(tmp_path):
    """A job mid-way stops with the server (not after it, when torch may still be running as
    the interpreter exits) and the next start runs it again from the beginning."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    reports: list[str] = []
    started = threading.Event()

    def endless(job, out_dir, progress):
        started.set()
        try:
            while True:
                progress(0.5, "timeline")
                time.sleep(0.01)
        except JobStopped:
            reports.append("stopped")
            raise

    pool = JobPool(store, endless, tmp_path / "results")
    pool.start()
    job = store.create(tmp_path / "v.mp4", "v.mp4", is_upload=False, options={}, video={})
    pool.reserve().submit(job.id)
    assert started.wait(10)
    pool.stop(timeout=30)
    assert reports == ["stopped"]
    assert store.get(job.id).status == "running"
    assert not any((tmp_path / "results" / job.id).iterdir())

    finished = JobPool(store, lambda job, out_dir, progress: {"ok": True}, tmp_path / "results")
    assert finished.start() == 1
    wait_until(lambda: store.get(job.id).status == "done", timeout=10)
    finished.stop()
    assert store.get(job.id).attempts == 2
