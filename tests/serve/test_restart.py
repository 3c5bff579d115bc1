"""A server that stops mid-job loses nothing: the next one over the same state folder re-runs
unfinished jobs and still serves finished results."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from resaction.serve import create_app
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
