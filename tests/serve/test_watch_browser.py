"""The live page end to end: headless Chromium (Debian's) on a token-protected server watching
two real file cameras sees both tiles with a fresh frame, label and state, then an event appear
with its snapshot, end, and play its clip; a screenshot is kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from resaction.serve import ServeSettings, create_app
from tests.serve.conftest import LiveServer
from tests.serve.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.serve.watch_setup import watch_files

TOKEN = "live-page-token-1"
LOADED = "(img) => img.complete && img.naturalWidth > 0"


@pytest.mark.slow
def test_live_page_shows_tiles_then_an_event_with_snapshot_and_clip(
    tmp_path: Path, videos_dir: Path
) -> None:
    checkpoint, cameras = watch_files(tmp_path / "files", videos_dir)
    settings = ServeSettings(
        model=checkpoint, state_dir=tmp_path / "state", token=TOKEN, watch=cameras
    )
    with LiveServer(create_app(settings)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "/watch")
            expect(page.locator("#auth-card")).to_be_visible()
            page.fill("#token-input", TOKEN)
            page.click("#token-form button")
            expect(page.locator("#auth-card")).to_be_hidden()

            expect(page.locator(".tile")).to_have_count(2, timeout=10_000)
            for name in ("door", "hall"):
                tile = page.locator(f'.tile[data-camera="{name}"]')
                expect(tile.locator(".state")).to_have_text("live", timeout=10_000)
                expect(tile.locator(".cam-label")).not_to_have_text("–", timeout=10_000)
                expect(tile.locator(".cam-score")).to_contain_text("%")
                tile.locator("img.frame").wait_for(state="visible", timeout=10_000)
                frame = f'.tile[data-camera="{name}"] img.frame'
                page.wait_for_function(f"() => ({LOADED})(document.querySelector('{frame}'))")
            expect(page.locator("#live-text")).to_have_text("2 of 2 cameras live")

            door = page.locator("#events tr[data-event]").filter(has_text="door")
            expect(door.first).to_be_visible(timeout=15_000)
            expect(door.first).to_contain_text("fight")
            snapshot = door.first.locator("img.thumb")
            snapshot.wait_for(timeout=10_000)
            assert snapshot.evaluate(LOADED)

            closed = page.locator('#events tr[data-state="closed"]').filter(has_text="door")
            expect(closed.first.locator("a.play")).to_be_visible(timeout=15_000)
            closed.first.locator("a.play").click()
            page.wait_for_function(
                "() => { const v = document.getElementById('clip-video');"
                " return v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=15_000,
            )
            assert page.evaluate("document.getElementById('clip-video').videoWidth") == 320
            page.evaluate("document.getElementById('clip-video').pause()")

            clip_src = page.evaluate("document.getElementById('clip-video').src")
            closed.first.locator("a.explain").click()
            expect(page.locator("#player-title")).to_contain_text("Why fight", timeout=30_000)
            page.wait_for_function(
                "(old) => { const v = document.getElementById('clip-video');"
                " return v.src !== old && v.readyState >= 2 && v.videoWidth > 0; }",
                arg=clip_src,
                timeout=15_000,
            )
            page.evaluate("document.getElementById('clip-video').pause()")
            expect(page.locator("#events tr[data-event]").filter(has_text="hall")).to_have_count(0)
            assert errors == []

            shot = tmp_path / "watch_page.png"
            page.screenshot(path=str(shot), full_page=True)
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(shot, ARTIFACTS / "watch_page.png")
        finally:
            browser.close()
