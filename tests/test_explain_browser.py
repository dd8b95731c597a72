"""The "Why?" button of the visitor page in a real browser (Debian chromium + Playwright):
upload a generated picture to the app around the quadrant bundle (``explain_data``), check
that nothing is explained before a click, click "Why?" on the type card, and read the overlay
that appears back as a PNG. Skips with a reason when chromium or playwright is missing."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from explain_data import quadrant_predictor
from test_browser import CHROMIUM, CHROMIUM_ARGS, new_page
from vasari.explain.sanity import quadrant_picture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: the overlay as the browser decoded it, re-encoded as PNG through a canvas (the page's CSP
#: does not let a script fetch its blob URL; Playwright does not keep a consumed blob body)
CANVAS_PNG = """img => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  return canvas.toDataURL("image/png").split(",")[1];
}"""

@pytest.fixture(scope="module")
def live():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (run: bash .ci/install-chromium.sh)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed (pip install -e '.[dev]')")
    from test_service import LiveServer

    from vasari.service import ServiceConfig, create_app

    with LiveServer(create_app(quadrant_predictor(), ServiceConfig(shed_wait_s=None))) as server:
        yield server


def test_why_shows_the_overlay_only_when_clicked(live, tmp_path):
    from playwright.sync_api import sync_playwright

    picture = tmp_path / "green-top-left.png"
    quadrant_picture(np.random.default_rng(21), "landscape", "top-left").save(picture)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context, page, foreign, errors = new_page(browser, live)
        explains: list[str] = []
        page.on("request", lambda req: explains.append(req.url) if "/api/v1/explain" in req.url else None)
        page.goto(live.url + "/")
        page.set_input_files("#file-input", str(picture))
        page.wait_for_selector("#task-type .bar-row")
        why = page.locator("#task-type .why-link")
        assert why.is_visible() and why.get_attribute("aria-expanded") == "false"
        assert explains == []  # no request until the visitor asks
        with page.expect_response(lambda r: "/api/v1/explain" in r.url, timeout=120_000) as answer:
            why.click()
        overlay = page.locator("#task-type img.why-overlay")
        overlay.wait_for(timeout=60_000)
        shown = page.wait_for_function("img => img.complete && img.naturalWidth", arg=overlay.element_handle())
        assert len(explains) == 1 and "task=type" in explains[0]
        headers = answer.value.headers
        assert answer.value.status == 200 and headers["content-type"] == "image/png" and int(headers["content-length"]) > 5000
        image = Image.open(io.BytesIO(base64.b64decode(overlay.evaluate(CANVAS_PNG))))  # the pixels the page shows
        assert image.format == "PNG" and 292 <= image.width <= 1024 and 292 < image.height <= 1024
        assert shown.json_value() == image.width
        pixels = np.asarray(image.convert("RGB"), dtype=float)
        assert pixels.std() > 10  # a picture, not a blank
        why.click()  # hides it again, without another request
        assert page.locator("#task-type .why-panel").is_hidden() and len(explains) == 1
        assert not foreign and not errors, (foreign, errors)
        context.close()
        browser.close()
