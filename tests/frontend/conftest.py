"""Browser fixtures: Debian's Chromium driven by Playwright."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MSCROWD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REQUIRE = os.environ.get("MSCROWD_REQUIRE_SERVICES") == "1"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator["playwright_api.Browser"]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}; install Debian's chromium package"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def staff_page(
    browser: "playwright_api.Browser", base: str, email: str, password: str, path: str
) -> tuple["playwright_api.Page", list[str]]:
    """A desktop page logged in as ``email`` on the labelling page, then opened at ``path``;
    with the list the page's script errors collect in."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base)
    page.fill("#login-email", email)
    page.fill("#login-password", password)
    page.press("#login-password", "Enter")
    page.wait_for_selector("#who", state="visible")
    page.goto(f"{base}{path}")
    return page, errors
