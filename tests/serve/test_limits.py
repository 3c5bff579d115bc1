"""Every refusal: size (413, while streaming), content (415), duration, token (401), paths
outside the media root, a full queue (429), CORS, retention, and unsafe start-up settings."""

from __future__ import annotations

import os
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from resaction.errors import ConfigError
from resaction.serve import ServeSettings, create_app
from tests.serve.conftest import LiveServer, gated_predictor, upload, wait_for_job, wait_until


def test_upload_over_the_size_limit_is_refused_with_413(make_client, short_video):
    client = make_client(max_upload_mb=0.1)
    assert short_video.stat().st_size > 0.1 * 2**20
    for endpoint in ("/predict", "/jobs"):
        reply = client.post(endpoint, files=upload(short_video))
        assert reply.status_code == 413
        assert reply.json()["error"] == "upload_too_large"
        assert "0.1 MiB" in reply.json()["message"]
    assert list(client.app.state.service.uploads_dir.iterdir()) == []


def test_size_limit_holds_while_streaming_without_content_length(
    make_settings, tiny_predictor, short_video
):
    """A chunked upload with no declared length is cut off at the limit: the server answers 413
    while the client has not finished sending, so it never waited for (or stored) the rest."""
    limit = 64 * 1024
    app = create_app(make_settings(max_upload_mb=limit / 2**20), tiny_predictor)
    payload = short_video.read_bytes()
    assert len(payload) > 3 * limit
    boundary = "resactionboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.avi"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with LiveServer(app) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            (
                "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
            ).encode()
        )
        body = head + payload[: 2 * limit]
        for start in range(0, len(body), 16 * 1024):
            chunk = body[start : start + 16 * 1024]
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        sock.settimeout(20)
        reply = read_response(sock)
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "upload_too_large" in reply
    assert list(app.state.service.uploads_dir.iterdir()) == []


def read_response(sock: socket.socket) -> str:
    """One HTTP/1.1 response with a Content-Length, as text."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_declared_content_length_over_the_limit_is_refused_before_reading(make_client):
    client = make_client(max_upload_mb=1)
    reply = client.post(
        "/predict",
        content=b"x" * 10,
        headers={
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(50 * 2**20),
        },
    )
    assert reply.status_code == 413


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.mp4", b"this is a text file pretending to be a video\n" * 200),
        ("empty.mp4", b""),
        ("truncated.mp4", None),
    ],
)
def test_content_that_is_not_a_video_is_refused_with_415(make_client, longer_video, name, content):
    client = make_client()
    data = content if content is not None else longer_video.read_bytes()[:3000]
    for endpoint in ("/predict", "/jobs"):
        reply = client.post(endpoint, files={"file": (name, data, "video/mp4")})
        assert reply.status_code == 415, reply.text
        assert reply.json()["error"] == "not_a_video"
        assert name in reply.json()["message"]
    assert list(client.app.state.service.uploads_dir.iterdir()) == []


def test_a_body_that_is_not_multipart_is_refused(make_client, short_video):
    client = make_client()
    reply = client.post(
        "/predict", content=short_video.read_bytes(), headers={"Content-Type": "video/x-msvideo"}
    )
    assert reply.status_code == 415
    assert "multipart/form-data" in reply.json()["message"]
    reply = client.post("/predict", files={"other": ("v.avi", b"abc")})
    assert reply.status_code == 400


def test_video_longer_than_the_limit_is_refused(make_client, short_video):
    client = make_client(max_duration_s=1.0)
    reply = client.post("/jobs", files=upload(short_video))
    assert reply.status_code == 413
    assert reply.json()["error"] == "video_too_long"
    assert "1 s" in reply.json()["message"]
    assert list(client.app.state.service.uploads_dir.iterdir()) == []


def test_token_is_required_when_set(make_client, short_video):
    client = make_client(token="s3cret-token")
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200
    for method, path in (("get", "/model"), ("get", "/jobs/abc"), ("delete", "/jobs/abc")):
        reply = getattr(client, method)(path)
        assert reply.status_code == 401, path
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in reply.json()["message"]
    wrong = client.get("/model", headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status_code == 401 and "wrong" in wrong.json()["message"]
    reply = client.post("/predict", files=upload(short_video))
    assert reply.status_code == 401
    assert list(client.app.state.service.uploads_dir.glob("*")) == []
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.get("/model", headers=good).status_code == 200
    assert client.post("/predict", files=upload(short_video), headers=good).status_code == 200


@pytest.fixture
def media_root(tmp_path: Path, short_video: Path) -> Path:
    """A media root holding one video and a symlink to a video outside it."""
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    shutil.copy(short_video, root / "sub" / "inside.avi")
    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(short_video, outside / "secret.avi")
    os.symlink(outside / "secret.avi", root / "link.avi")
    os.symlink(outside, root / "linkdir")
    return root


@pytest.mark.parametrize(
    "path",
    [
        "../private/secret.avi",
        "sub/../../private/secret.avi",
        "link.avi",
        "linkdir/secret.avi",
        "ABSOLUTE",
    ],
)
def test_paths_leading_outside_the_media_root_are_refused(make_client, media_root, path):
    client = make_client(media_root=media_root)
    if path == "ABSOLUTE":
        path = str(media_root.parent / "private" / "secret.avi")
    reply = client.post("/jobs", json={"path": path})
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"] == "outside_media_root"
    assert client.get("/health").json()["jobs"]["queued"] == 0


def test_paths_inside_the_media_root_are_accepted(make_client, media_root):
    client = make_client(media_root=media_root)
    quick = {"annotate": False}
    inside = client.post("/jobs", json={"path": "sub/inside.avi", "options": quick})
    assert inside.status_code == 202
    absolute = client.post(
        "/jobs", json={"path": str(media_root / "sub" / "inside.avi"), "options": quick}
    )
    assert absolute.status_code == 202
    missing = client.post("/jobs", json={"path": "sub/missing.avi"})
    assert missing.status_code == 404
    assert client.post("/jobs", json={"path": "sub"}).status_code == 400
    for created in (inside, absolute):
        assert wait_for_job(client, created.json()["id"])["status"] == "done"


def test_paths_are_refused_without_a_media_root(make_client):
    reply = make_client().post("/jobs", json={"path": "video.mp4"})
    assert reply.status_code == 403
    assert "--media-root" in reply.json()["message"]


def test_a_full_queue_answers_429(make_client, short_video, tiny_checkpoint):
    predictor, backend = gated_predictor(tiny_checkpoint)
    client = make_client(predictor, workers=1, max_queued=1)
    quick = {"annotate": "0"}
    try:
        running = client.post("/jobs", files=upload(short_video), data=quick)
        assert running.status_code == 202
        assert backend.entered.wait(30), "the first job never started"
        queued = client.post("/jobs", files=upload(short_video), data=quick)
        assert queued.status_code == 202
        refused = client.post("/jobs", files=upload(short_video), data=quick)
        assert refused.status_code == 429
        assert refused.json()["error"] == "busy"
        assert refused.headers["retry-after"]
        assert len(list(client.app.state.service.uploads_dir.iterdir())) == 2
        assert client.delete(f"/jobs/{queued.json()['id']}").status_code == 200
        queued = client.post("/jobs", files=upload(short_video), data=quick)
        assert queued.status_code == 202, "deleting a queued job must free its place"
    finally:
        backend.gate.set()
    for reply in (running, queued):
        assert wait_for_job(client, reply.json()["id"])["status"] == "done"
    assert client.post("/jobs", files=upload(short_video), data=quick).status_code == 202


def test_predictions_beyond_running_and_waiting_capacity_answer_429(
    make_client, short_video, tiny_checkpoint
):
    predictor, backend = gated_predictor(tiny_checkpoint)
    client = make_client(predictor, workers=1, max_queued=1)
    with ThreadPoolExecutor(2) as pool:
        try:
            held = [pool.submit(client.post, "/predict", files=upload(short_video)) for _ in "ab"]
            assert backend.entered.wait(30)
            wait_until(lambda: client.app.state.service.gate.active == 2)
            refused = client.post("/predict", files=upload(short_video))
            assert refused.status_code == 429
            assert refused.json()["error"] == "busy"
        finally:
            backend.gate.set()
        assert [future.result().status_code for future in held] == [200, 200]


def test_cors_is_off_by_default_and_on_for_named_origins(make_client):
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in make_client().get("/health", headers=origin).headers
    allowed = make_client(cors_origins=["https://example.org"]).get("/health", headers=origin)
    assert allowed.headers["access-control-allow-origin"] == "https://example.org"


def test_finished_jobs_expire_after_the_retention_time(make_client, short_video):
    client = make_client(retention_s=1.0)
    service = client.app.state.service
    job_id = client.post("/jobs", files=upload(short_video), data={"annotate": "0"}).json()["id"]
    assert wait_for_job(client, job_id)["status"] == "done"
    wait_until(lambda: client.get(f"/jobs/{job_id}").status_code == 404, timeout=15)
    assert not (service.results_dir / job_id).exists()


def test_bad_job_options_are_refused_by_name(make_client, short_video):
    client = make_client()
    for fields, word in (
        ({"stride": "0"}, "stride"),
        ({"speed": "2"}, "speed"),
        ({"threshold": "lots"}, "threshold"),
    ):
        reply = client.post("/jobs", files=upload(short_video), data=fields)
        assert reply.status_code == 422
        assert word in reply.json()["message"]
    assert list(client.app.state.service.uploads_dir.iterdir()) == []


def test_refuses_to_start_exposed_without_a_token(tiny_checkpoint, tmp_path):
    exposed = ServeSettings(model=tiny_checkpoint, host="0.0.0.0", state_dir=tmp_path)
    with pytest.raises(ConfigError, match="--token"):
        exposed.check()
    ServeSettings(
        model=tiny_checkpoint, host="0.0.0.0", token="long-enough", state_dir=tmp_path
    ).check()
    ServeSettings(model=tiny_checkpoint, host="0.0.0.0", insecure=True, state_dir=tmp_path).check()
    ServeSettings(model=tiny_checkpoint, host="::1", state_dir=tmp_path).check()
