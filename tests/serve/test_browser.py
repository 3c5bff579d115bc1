"""The web page end to end: headless Chromium (Debian's) uploads a real video through the page
and sees the label, the timeline and the annotated video; a screenshot is kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from resaction.serve import create_app
from tests.serve.conftest import LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.mark.slow
def test_page_uploads_a_video_and_shows_label_timeline_and_video(
    make_settings, tiny_predictor, longer_video, tmp_path
):
    app = create_app(make_settings(), tiny_predictor)
    with LiveServer(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "/")
            expect(page.locator("#model-text")).to_contain_text("tsn_resnet18")

            page.set_input_files("#file-input", str(longer_video))
            expect(page.locator("#status-badge")).to_have_text("done", timeout=120_000)

            service = app.state.service
            (job,) = [service.store.get(p.name) for p in service.results_dir.iterdir()]
            assert job is not None and job.result is not None
            expected = job.result["prediction"]
            expect(page.locator("#topk li").first.locator(".label")).to_have_text(expected["label"])
            expect(page.locator("#topk li")).to_have_count(len(expected["topk"]))
            expect(page.locator("#upload-pct")).to_have_text("100%")

            segments = job.result["segments"]
            assert segments, "the sharpened tiny model should give at least one segment"
            expect(page.locator("#timeline-chart svg polyline")).not_to_have_count(0)
            expect(page.locator("#timeline-chart .seg rect")).to_have_count(len(segments))
            expect(page.locator("#segments tbody tr")).to_have_count(len(segments))
            expect(page.locator("#segments tbody tr").first).to_contain_text(segments[0]["label"])

            page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=60_000,
            )
            width = page.evaluate("document.getElementById('video').videoWidth")
            assert width == job.video["width"]
            page.evaluate("document.getElementById('video').pause()")

            explain = page.locator("#segments tbody tr a.explain")
            expect(explain).to_have_count(len(segments))
            expect(page.locator("#explain-whole")).to_have_attribute(
                "href", f"/jobs/{job.id}/explain.mp4?method=gradcam"
            )
            explain.first.click()
            expect(page.locator("#explain-status")).to_contain_text(
                f"gradcam for {segments[0]['label']}", timeout=30_000
            )
            page.wait_for_function(
                "() => { const v = document.getElementById('explain-video');"
                " return v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=30_000,
            )
            page.evaluate("document.getElementById('explain-video').pause()")
            assert errors == []

            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(shot, ARTIFACTS / "serve_page.png")
            assert shot.stat().st_size > 10_000

            not_a_video = tmp_path / "notes.mp4"
            not_a_video.write_text("not a video\n" * 100)
            page.set_input_files("#file-input", str(not_a_video))
            expect(page.locator("#status-badge")).to_have_text("failed")
            expect(page.locator("#error-box")).to_contain_text("notes.mp4 is not a decodable video")
            expect(page.locator("#results")).to_be_hidden()
        finally:
            browser.close()


@pytest.mark.slow
def test_page_asks_for_the_token_when_the_server_needs_one(make_settings, tiny_predictor):
    app = create_app(make_settings(token="page-token-123"), tiny_predictor)
    with LiveServer(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            expect(page.locator("#auth-card")).to_be_visible()
            expect(page.locator("#intake")).to_be_hidden()
            page.fill("#token-input", "wrong-token-000")
            page.click("#token-form button")
            expect(page.locator("#model-text")).to_have_text("token required")
            page.fill("#token-input", "page-token-123")
            page.click("#token-form button")
            expect(page.locator("#model-text")).to_contain_text("tsn_resnet18")
            expect(page.locator("#intake")).to_be_visible()
            expect(page.locator("#auth-card")).to_be_hidden()
        finally:
            browser.close()


LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.mark.slow
def test_docs_page_renders_with_the_network_blocked(make_settings, tiny_predictor):
    """Every request that leaves the machine is aborted: Swagger UI must come from the service."""
    app = create_app(make_settings(), tiny_predictor)
    with LiveServer(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            blocked: list[str] = []
            errors: list[str] = []

            def loopback_only(route: Route) -> None:
                if urlparse(route.request.url).hostname in LOOPBACK:
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", loopback_only)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("resaction")
            expect(page.locator(".opblock-summary-path", has_text="/predict")).to_be_visible()
            health = page.locator(".opblock-summary", has_text="/health")
            expect(health).to_contain_text("Liveness")
            health.click()
            expect(page.locator(".opblock-body").first).to_contain_text("Successful Response")
            assert blocked == [] and errors == []
        finally:
            browser.close()
