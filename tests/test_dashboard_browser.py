"""The pool page in a real browser: Debian's chromium driven by Playwright, against the app over HTTP."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from bot.web.app import create_app
from tests.conftest import ROOT
from tests.test_dashboard import TOKEN, seeded  # noqa: F401 (the seeded pool fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("NIMBYS_BROWSER_TESTS") == "1"  # set by .ci/run: there a missing browser fails


def _browser_or_skip() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        if REQUIRED:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")


def test_the_page_in_chromium(seeded, r, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    server = make_server("127.0.0.1", 0, create_app(seeded, r), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1100, "height": 900},
                                    extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
            answer = page.goto(url + "/")
            assert answer is not None and answer.status == 200
            rows = page.locator("#runners tbody tr")
            assert rows.count() == 6
            bad = page.locator('tr[data-runner="r0-stx-1"]')
            assert bad.get_attribute("data-state") == "quarantined by bot"
            assert "quarantined-row" in (bad.get_attribute("class") or "")
            assert bad.locator(".strip a").count() == 6
            colour = bad.evaluate("row => getComputedStyle(row.querySelector('td')).backgroundColor")
            assert colour == "rgb(255, 245, 245)"  # the highlight
            assert page.locator('tr[data-runner="r5-stx-1"]').get_attribute("data-state") == "taken out by hand"
            assert page.locator("#queue tbody tr").count() == 2
            assert "quarantine" in page.locator("#decisions").inner_text()
            shot = tmp_path / "pool.png"
            page.screenshot(path=str(shot), full_page=True)
            phone = browser.new_page(viewport={"width": 390, "height": 844},
                                     extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
            phone.goto(url + "/")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 400  # readable on a phone
            phone.screenshot(path=str(tmp_path / "pool-phone.png"), full_page=True)
            browser.close()
        assert shot.stat().st_size > 10_000
        keep = ROOT / "test-output"
        keep.mkdir(exist_ok=True)
        shutil.copy(shot, keep / "pool.png")
        shutil.copy(tmp_path / "pool-phone.png", keep / "pool-phone.png")
    finally:
        server.shutdown()
