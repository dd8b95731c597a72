"""The page's "Add an artist" form in a real browser (Debian chromium + Playwright), around a
bundle trained on generated artists: a wrong token shows the 401 message and changes nothing;
the right one enrols the artist, the page says the new version, and the next picture of the
same generated artist is attributed to her. Skips when chromium or playwright is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from enrol_data import NEW_ARTIST, enrol_world
from test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TOKEN = "a curator's secret"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (run: bash .ci/install-chromium.sh)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed (pip install -e '.[dev]')")
    from test_service import LiveServer

    from vasari.inference.predictor import Predictor
    from vasari.service import ServiceConfig, create_app

    w = enrol_world()
    config = ServiceConfig(admin_token=TOKEN, bundle_dir=str(tmp_path_factory.mktemp("served-bundles")))
    with LiveServer(create_app(Predictor.load(w.bundle), config)) as server:
        yield w, server


def test_enrol_form_wrong_token_then_right_token_then_prediction(live):
    from playwright.sync_api import sync_playwright

    w, server = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url)
        assert not page.locator("#enrol").evaluate("d => d.open")  # collapsed until opened
        page.click("#enrol summary")
        page.fill("#enrol-name", NEW_ARTIST)
        page.set_input_files("#enrol-files", w.images("enrol"))
        page.fill("#enrol-token", "not the token")
        page.click("#enrol-submit")
        status = page.locator("#enrol-status")
        status.filter(has_text="401").wait_for()
        assert "not accepted" in status.inner_text()
        page.fill("#enrol-token", TOKEN)
        page.click("#enrol-submit")
        status.filter(has_text="version 2").wait_for()
        assert NEW_ARTIST in status.inner_text()
        page.set_input_files("#file-input", w.images("held")[0])
        page.wait_for_selector("#task-artist .verdict strong")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "enrol-then-predict.png"), full_page=True)
        assert page.locator("#task-artist .verdict strong").inner_text() == NEW_ARTIST
        assert not errors, errors
        browser.close()
