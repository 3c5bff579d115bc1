"""Every endpoint on its happy path, against the app through FastAPI's TestClient."""

from __future__ import annotations

import csv
import io
import json

import av
import pytest

from resaction.inference import Predictor
from tests.serve.conftest import (
    CLASSES,
    PREPROCESS,
    gated_predictor,
    upload,
    wait_for_job,
    wait_for_uploads_removed,
)


def test_health_and_model_describe_the_loaded_checkpoint(make_client, tiny_checkpoint):
    client = make_client()
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["jobs"] == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    model = client.get("/model").json()
    assert model["name"] == "tsn_resnet18"
    assert model["file"] == tiny_checkpoint.name
    assert model["classes"] == CLASSES
    assert model["backend"] == "torch"
    assert model["input"]["shape"] == [None, 3, PREPROCESS["clip_len"], 32, 32]
    assert model["protocol"]["num_clips"] == 2


def test_predict_gives_the_predictors_topk_for_an_upload(make_client, short_video, tiny_predictor):
    client = make_client()
    reply = client.post("/predict", params={"topk": 2}, files=upload(short_video, "clip.avi"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = tiny_predictor.predict(short_video, topk=2)
    assert [row["label"] for row in body["topk"]] == expected.labels
    assert body["label"] == expected.label
    assert body["confidence"] == pytest.approx(expected.confidence, abs=1e-5)
    assert body["path"] == "clip.avi"
    with av.open(str(short_video)) as container:
        assert body["video"]["width"] == container.streams.video[0].width
    assert not any((client.app.state.service.uploads_dir).iterdir())


def test_timeline_job_from_upload_to_annotated_video(make_client, short_video, tiny_predictor):
    client = make_client()
    created = client.post("/jobs", files=upload(short_video), data={"stride": "2", "topk": "3"})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.headers["location"] == f"/jobs/{job_id}"
    assert created.json()["options"]["stride"] == 2
    job = wait_for_job(client, job_id)
    assert job["status"] == "done", job["error"]
    assert job["progress"] == 1.0
    assert job["result"]["prediction"]["label"] == tiny_predictor.predict(short_video).label
    assert len(job["result"]["prediction"]["topk"]) == 3

    timeline = client.get(f"/jobs/{job_id}/timeline").json()
    assert timeline["segments"] == job["result"]["segments"]
    chart = timeline["chart"]
    assert len(chart["times"]) == job["result"]["num_windows"]
    assert all(len(series["probs"]) == len(chart["times"]) for series in chart["series"])
    assert {series["label"] for series in chart["series"]} <= set(CLASSES)

    rows = list(csv.DictReader(io.StringIO(client.get(f"/jobs/{job_id}/timeline?format=csv").text)))
    assert [row["label"] for row in rows] == [s["label"] for s in timeline["segments"]]

    plot = client.get(f"/jobs/{job_id}/timeline.png")
    assert plot.content.startswith(b"\x89PNG")

    video = client.get(f"/jobs/{job_id}/annotated.mp4")
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    ranged = client.get(f"/jobs/{job_id}/annotated.mp4", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    with av.open(io.BytesIO(video.content)) as annotated, av.open(str(short_video)) as source:
        assert annotated.streams.video[0].codec_context.name == "h264"
        frames = sum(1 for _ in annotated.decode(video=0))
        assert frames == sum(1 for _ in source.decode(video=0))


def test_job_without_annotation_has_no_video(make_client, short_video):
    client = make_client()
    job_id = client.post("/jobs", files=upload(short_video), data={"annotate": "false"}).json()[
        "id"
    ]
    assert wait_for_job(client, job_id)["status"] == "done"
    reply = client.get(f"/jobs/{job_id}/annotated.mp4")
    assert reply.status_code == 404
    assert reply.json()["error"] == "not_annotated"


def test_upload_is_removed_after_the_job_and_delete_removes_results(make_client, short_video):
    client = make_client()
    service = client.app.state.service
    job_id = client.post("/jobs", files=upload(short_video)).json()["id"]
    wait_for_job(client, job_id)
    wait_for_uploads_removed(service)
    results = service.results_dir / job_id
    assert any(results.rglob("annotated.mp4"))
    deleted = client.delete(f"/jobs/{job_id}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert not results.exists()
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.delete(f"/jobs/{job_id}").status_code == 404


def test_job_from_a_path_under_the_media_root(make_client, videos_dir):
    client = make_client(media_root=videos_dir)
    name = "hockey_fight/fight/fi102_xvid.avi"
    created = client.post("/jobs", json={"path": name, "options": {"annotate": False}})
    assert created.status_code == 202, created.text
    job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "done"
    assert job["name"] == name
    assert (videos_dir / name).is_file(), "a media-root video must never be deleted"


def test_openapi_schema_and_docs_page(make_client):
    client = make_client()
    schema = client.get("/openapi.json").json()
    for path in (
        "/health",
        "/model",
        "/predict",
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/timeline",
        "/jobs/{job_id}/annotated.mp4",
    ):
        assert path in schema["paths"], path
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "delete" in schema["paths"]["/jobs/{job_id}"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Swagger UI comes from the service itself, never from a CDN (offline it would be blank)
    assert "cdn" not in docs.text and "https://" not in docs.text
    script = client.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_web_page_and_its_assets_are_served(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200


def test_unfinished_job_results_answer_409(make_client, short_video, tiny_checkpoint):
    predictor, backend = gated_predictor(tiny_checkpoint)
    client = make_client(predictor)
    job_id = client.post("/jobs", files=upload(short_video), data={"annotate": "0"}).json()["id"]
    try:
        for suffix in ("timeline", "annotated.mp4", "timeline.png", "explain.mp4"):
            reply = client.get(f"/jobs/{job_id}/{suffix}")
            assert reply.status_code == 409
            assert reply.json()["error"] == "job_not_finished"
            assert f"GET /jobs/{job_id}" in reply.json()["message"]
    finally:
        backend.gate.set()
    assert wait_for_job(client, job_id)["status"] == "done"


def test_a_failing_job_reports_why(make_client, short_video, tiny_checkpoint):
    class Broken:
        name = "broken"

        def __call__(self, batch):
            raise RuntimeError("out of cheese")

    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    predictor.backend = Broken()
    client = make_client(predictor)
    job_id = client.post("/jobs", files=upload(short_video)).json()["id"]
    job = wait_for_job(client, job_id)
    assert job["status"] == "failed"
    assert "out of cheese" in job["error"]
    reply = client.get(f"/jobs/{job_id}/timeline")
    assert reply.status_code == 409 and reply.json()["error"] == "job_failed"
    wait_for_uploads_removed(client.app.state.service)


def test_error_replies_are_json_with_a_message(make_client):
    client = make_client()
    for reply in (client.get("/nowhere"), client.get("/jobs/abc"), client.post("/predict?topk=0")):
        body = reply.json()
        assert set(body) == {"error", "message"}, body
        assert body["message"]
    assert json.loads(client.post("/predict?topk=0").text)["error"] == "invalid_request"


def test_deleting_a_running_job_discards_its_results(make_client, short_video, tiny_checkpoint):
    predictor, backend = gated_predictor(tiny_checkpoint)
    client = make_client(predictor)
    service = client.app.state.service
    job_id = client.post("/jobs", files=upload(short_video), data={"annotate": "0"}).json()["id"]
    try:
        assert backend.entered.wait(30)
        deleted = client.delete(f"/jobs/{job_id}")
        assert deleted.json()["status_was"] == "running"
        assert list(service.uploads_dir.iterdir()) == []
    finally:
        backend.gate.set()
    # one worker: the next job finishes only after the deleted one's worker let go of it
    later = client.post("/jobs", files=upload(short_video), data={"annotate": "0"}).json()["id"]
    assert wait_for_job(client, later)["status"] == "done"
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert not (service.results_dir / job_id).exists()
