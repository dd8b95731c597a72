"""A non-painting in a real browser (issue #14): the page draws no year, no style and no
resemblance for it, and the API's answer follows the documented novelty contract.

Uses ``tests/test_browser.py``'s live server (real default predictor) and Debian chromium;
skips the same way when chromium or playwright is missing (never ``playwright install``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from test_browser import ARTIFACTS, browser, live, new_page  # noqa: F401  (module-scoped fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def make_screenshot(folder: Path) -> Path:
    """A screenshot-like picture: flat white page, grey toolbar, text lines, a blue button."""
    img = Image.new("RGB", (1280, 800), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 1280, 56], fill=(236, 236, 240))
    draw.rectangle([40, 12, 900, 44], fill=(255, 255, 255), outline=(200, 200, 205))
    for i in range(14):
        draw.text((60, 100 + 40 * i), f"Settings line {i}: enable notifications for account number {1000 + 7 * i}", fill=(20, 20, 20))
    draw.rectangle([60, 700, 260, 750], fill=(30, 100, 230))
    draw.text((110, 718), "Save changes", fill=(255, 255, 255))
    path = folder / "screenshot.png"
    img.save(path)
    return path


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory) -> Path:
    return make_screenshot(tmp_path_factory.mktemp("nonpainting"))


@pytest.fixture(scope="module")
def screenshot_answer(live, screenshot) -> dict:  # noqa: F811
    import httpx

    r = httpx.post(f"{live.url}/api/v1/predict", files={"file": (screenshot.name, screenshot.read_bytes(), "image/png")}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_api_answer_for_a_non_painting_makes_no_claims(screenshot_answer):
    a = screenshot_answer
    assert set(a["novelty"]) == {"novel", "score", "threshold", "detector", "reason"}
    assert a["novelty"]["novel"] is True and a["novelty"]["reason"]
    assert "year" not in a  # null fields are omitted (docs/contract.md)
    assert not a.get("affinity")
    assert set(a["verdict"].values()) == {"unknown"}
    assert all(len(rows) >= 1 for rows in a["predictions"].values())  # best guesses stay, under "unknown"


def test_page_draws_no_year_style_or_resemblance_for_a_non_painting(browser, live, screenshot, screenshot_answer):  # noqa: F811
    context, page, foreign, errors = new_page(browser, live)
    page.goto(live.url + "/")
    page.set_input_files("#file-input", str(screenshot))
    page.wait_for_selector("#tasks .task .bar-row")
    assert page.locator("#year").is_hidden()
    assert page.locator("#affinity").is_hidden()
    for task in ("timeframe", "style", "artist"):
        assert page.locator(f"#task-{task}").count() == 0
    summary = page.locator("#summary").inner_text()
    assert "not sure" in summary.lower() and "painted" not in summary
    assert "Resemblance" not in page.locator("#result").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-nonpainting.png"), full_page=True)
    assert not foreign and not errors, (foreign, errors)
    context.close()
