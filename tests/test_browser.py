"""The web demo in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

Never `playwright install`: it downloads a browser. The test skips when Chromium is not installed
(`.ci/run` installs it with apt). The screenshot goes to $OMNIBYTE_SCREENSHOT, or a temp folder.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--metrics-recording-only", "--disable-extensions"]


@pytest.fixture(scope="module")
def url():
    import app

    _, local_url, _ = app.launch(prevent_thread_lock=True, quiet=True)
    yield local_url
    app.demo.close()


@pytest.fixture(scope="module")
def page(url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.locator("#generate").wait_for()
        yield page
        browser.close()


def test_upload_generate_stream_and_segments(page, tmp_path):
    page.locator("#upload input[type=file]").set_input_files(str(EXAMPLES / "red-circle.png"))
    # the upload is described: converted to a 32x32 BMP, half its rows kept as the prompt
    sync_api.expect(page.locator("#prompt-info")).to_contain_text("converted to image", timeout=30_000)
    sync_api.expect(page.locator("#prompt-info")).to_contain_text("16 of 32 pixel rows")
    page.locator("#generate").click()
    # the image streams in: the live image appears while bytes are still coming
    sync_api.expect(page.locator("#live-image img")).to_be_visible(timeout=30_000)
    sync_api.expect(page.locator("#progress")).to_contain_text(re.compile(r"[\d,]+ / 1,536 bytes"))
    # then the detector's segments, the byte map and the plot
    sync_api.expect(page.locator("#segments .ob-segment")).to_have_count(1, timeout=90_000)
    sync_api.expect(page.locator("#segments")).to_contain_text("image · bmp")
    sync_api.expect(page.locator("#byte-map .ob-bar-piece")).to_have_count(1)
    sync_api.expect(page.locator("#surprisal-plot svg")).to_be_visible()
    sync_api.expect(page.locator("#progress")).to_contain_text("1,536 / 1,536 bytes")
    # the live picture is sent at its own 32 x 32 pixels; the page draws it large
    live = page.locator("#live-image img")
    assert live.evaluate("img => img.naturalHeight") == 32 and live.bounding_box()["height"] >= 200
    assert live.evaluate("img => getComputedStyle(img).objectFit") == "contain"  # drawn to fill its box
    shot = Path(os.environ.get("OMNIBYTE_SCREENSHOT") or tmp_path / "app.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_stop_cancels_a_long_run(page):
    page.locator("#text textarea").fill("A long story begins here.")
    page.locator("#upload button[aria-label*='Clear'], #upload button[aria-label*='clear']").first.click()
    page.locator("#text textarea").blur()
    # each prompt change sets max bytes to what finishes the part: let those answers arrive first
    sync_api.expect(page.locator("#prompt-info")).to_contain_text("continues text", timeout=30_000)
    page.wait_for_timeout(1500)
    page.get_by_text("Sampling").click()
    max_bytes = page.locator("#max-bytes input[type=number]")
    for _ in range(5):  # a late prompt description may still reset it once
        max_bytes.fill("16384")
        max_bytes.press("Enter")
        page.wait_for_timeout(700)
        if max_bytes.input_value() == "16384":
            break
    sync_api.expect(max_bytes).to_have_value("16384")
    page.locator("#stop-at-end input[type=checkbox]").uncheck()
    page.locator("#generate").click()
    sync_api.expect(page.locator("#progress")).to_contain_text(re.compile(r"[1-9][\d,]* / 16,384 bytes"),
                                                               timeout=30_000)
    page.locator("#stop").click()
    page.wait_for_timeout(1500)
    stopped_at = page.locator("#progress").inner_text()
    page.wait_for_timeout(1500)
    assert page.locator("#progress").inner_text() == stopped_at, "bytes kept streaming after Stop"
    assert "16,384 / 16,384" not in stopped_at
