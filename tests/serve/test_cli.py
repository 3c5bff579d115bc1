"""``resaction serve`` as a user runs it: flags reach the service, mistakes are one line."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from resaction.cli.app import run_app
from tests.serve.conftest import free_port, upload, wait_until


def test_a_missing_model_is_one_line(tmp_path, capsys):
    code = run_app(["serve", "--model", str(tmp_path / "nope.pt"), "--state-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "nope.pt" in err and "does not exist" in err and "Traceback" not in err


def test_cli_refuses_an_exposed_server_in_one_line(tiny_checkpoint, tmp_path, capsys):
    code = run_app(
        [
            "serve",
            "--model",
            str(tiny_checkpoint),
            "--host",
            "0.0.0.0",
            "--state-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "--token" in err and "Traceback" not in err


@pytest.mark.slow
def test_serve_command_applies_its_flags(tiny_checkpoint, short_video, tmp_path):
    port = free_port()
    command = [
        sys.executable, "-m", "resaction.cli", "serve", "--model", str(tiny_checkpoint),
        "--port", str(port), "--state-dir", str(tmp_path / "state"), "--token", "cli-token-1",
        "--max-upload-mb", "0.1", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=120)
        assert httpx.get(f"{url}/model").status_code == 401
        auth = {"Authorization": "Bearer cli-token-1"}
        assert httpx.get(f"{url}/model", headers=auth).json()["classes"]
        too_big = httpx.post(f"{url}/predict", headers=auth, files=upload(short_video))
        assert too_big.status_code == 413
        assert (tmp_path / "state" / "jobs.sqlite3").is_file()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "serving tsn_resnet18" in output
