"""``GET /jobs/{id}/explain.mp4`` and ``.json``: a finished job's video explained, whole or a
stretch, computed once and then served from the job's folder; every refusal is one line.

(The event endpoints are tested on the watching server in ``test_watch_api.py``, ONNX in
``test_onnx.py``.)"""

from __future__ import annotations

import io
from pathlib import Path

import av
from fastapi.testclient import TestClient

from tests.serve.conftest import CLASSES, upload, wait_for_job, wait_for_uploads_removed


def frames_of(content: bytes) -> int:
    with av.open(io.BytesIO(content)) as container:
        return sum(1 for _ in container.decode(video=0))


def explanations(results: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in results.rglob("explain.mp4")}


def test_a_job_is_explained_whole_and_by_segment_then_from_the_cache(make_client, short_video):
    client: TestClient = make_client()
    service = client.app.state.service
    job_id = client.post("/jobs", files=upload(short_video, "walk.avi"), data={"annotate": "0"})
    job_id = job_id.json()["id"]
    job = wait_for_job(client, job_id)
    assert job["status"] == "done", job["error"]
    wait_for_uploads_removed(service)  # the upload is kept with the results only
    url = f"/jobs/{job_id}/explain"

    whole = client.get(f"{url}.mp4")
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["x-explain-cache"] == "miss"
    assert frames_of(whole.content) > 0
    written = explanations(service.results_dir / job_id)
    again = client.get(f"{url}.mp4")
    assert again.headers["x-explain-cache"] == "hit" and again.content == whole.content
    assert explanations(service.results_dir / job_id) == written  # not written again
    facts = client.get(f"{url}.json").json()
    assert facts["method"] == "gradcam"
    assert facts["target"]["label"] == facts["top1"]["label"]
    assert facts["range_s"][0] == 0.0 and facts["video"] == "walk.avi"  # never a server path

    segment = {"label": "class_b", "start": 0.2, "end": 1.0, "method": "gradcam++"}
    part = client.get(f"{url}.mp4", params=segment)
    assert part.status_code == 200 and part.headers["x-explain-cache"] == "miss"
    assert frames_of(part.content) > 0
    facts = client.get(f"{url}.json", params=segment)
    assert facts.headers["x-explain-cache"] == "hit"
    assert facts.json()["target"]["label"] == "class_b"
    assert facts.json()["range_s"] == [0.2, 1.0] and facts.json()["method"] == "gradcam++"
    # a segment that ends where the video does, its end rounded past the last frame
    to_end = {"start": 0.5, "end": job["result"]["duration"] + 4e-4}
    assert client.get(f"{url}.mp4", params=to_end).status_code == 200


def test_explanation_refusals_are_one_line_json(make_client, short_video):
    client: TestClient = make_client()
    job_id = client.post("/jobs", files=upload(short_video, "walk.avi"), data={"annotate": "0"})
    job_id = job_id.json()["id"]
    assert wait_for_job(client, job_id)["status"] == "done"
    url = f"/jobs/{job_id}/explain.mp4"
    refusals = [
        ("/jobs/0123abcd/explain.mp4", {}, 404, "job_not_found", "no job"),
        (url, {"label": "jump"}, 422, "unknown_label", ", ".join(CLASSES)),
        (url, {"start": 0.5, "end": 7}, 422, "cannot_explain", "start=0.5 s / end=7 s is outside"),
        (url, {"start": 1, "end": 0.5}, 422, "cannot_explain", "start=1 s is not before end="),
        (url, {"method": "lime"}, 422, "bad_method", "gradcam, gradcam++, occlusion"),
        (url, {"start": "soon"}, 422, "invalid_request", "start"),
    ]
    for path, params, status, code, words in refusals:
        answer = client.get(path, params=params)
        assert answer.status_code == status, (params, answer.text)
        body = answer.json()
        assert body["error"] == code and words in body["message"], body
        assert "\n" not in body["message"]
        assert "kept-upload" not in body["message"] and "/results/" not in body["message"]
    assert "walk.avi" in client.get(url, params={"start": 0, "end": 7}).json()["message"]

    service = client.app.state.service
    (kept,) = (service.results_dir / job_id).rglob("kept-upload")
    kept.unlink()
    gone = client.get(url)
    assert gone.status_code == 404 and gone.json()["error"] == "no_video"
