"""The service runs an ONNX file from ``resaction export`` like the checkpoint it came from."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from resaction.deploy.export import export_checkpoint
from resaction.serve import create_app
from tests.serve.conftest import CLASSES, upload, wait_for_job


@pytest.mark.slow
def test_onnx_model_serves_the_same_answers_as_its_checkpoint(
    make_settings, tiny_checkpoint, tiny_predictor, short_video, tmp_path
):
    onnx_path = export_checkpoint(tiny_checkpoint, tmp_path / "tiny.onnx").path
    with TestClient(create_app(make_settings(model=onnx_path))) as client:
        model = client.get("/model").json()
        assert model["backend"] == "onnx"
        assert model["file"] == "tiny.onnx"
        assert model["classes"] == CLASSES
        assert model["input"]["shape"] == [None, 3, 4, 32, 32]

        reply = client.post("/predict", files=upload(short_video)).json()
        expected = tiny_predictor.predict(short_video)
        assert [row["label"] for row in reply["topk"]] == expected.labels
        assert reply["confidence"] == pytest.approx(expected.confidence, abs=1e-4)

        job_id = client.post("/jobs", files=upload(short_video), data={"annotate": "0"}).json()
        assert wait_for_job(client, job_id["id"])["status"] == "done"
        assert client.get(f"/jobs/{job_id['id']}/timeline").status_code == 200

        # no gradients in ONNX Runtime: Grad-CAM is refused, occlusion is the default
        refused = client.get(f"/jobs/{job_id['id']}/explain.mp4", params={"method": "gradcam"})
        assert refused.status_code == 422 and refused.json()["error"] == "no_gradients"
        assert "method=occlusion" in refused.json()["message"]
        explained = client.get(f"/jobs/{job_id['id']}/explain.json")
        assert explained.status_code == 200 and explained.json()["method"] == "occlusion"
