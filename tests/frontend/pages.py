"""What the page tests share: signing in from the labelling page and opening another page,
screenshots for the README, and the axe-core check at laptop and phone size."""

import os
from pathlib import Path
from typing import Any

from tests.factories import PASSWORD
from tests.frontend.conftest import staff_page
from tests.frontend.test_studio import _axe

SIZES = ((1440, 900, False), (360, 640, True))  # laptop; phone (touch)


def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    """A screenshot for the README when MSCROWD_SCREENSHOTS names a folder (never in CI)."""
    folder = os.environ.get("MSCROWD_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=full_page)


def log_in(
    browser: Any, base: str, email: str, path: str, width: int = 1440, height: int = 900,
    **options: Any,
) -> tuple[Any, list[str]]:  # fmt: skip
    """A page signed in as ``email`` (password ``PASSWORD``) opened at ``path``."""
    return staff_page(browser, base, email, PASSWORD, path, width, height, **options)


def axe_at_sizes(
    browser: Any, base: str, email: str, path: str, ready: str, phone_shot: str
) -> dict[int, list[Any]]:
    """axe-core's serious findings on ``path`` at laptop and phone size once ``ready`` shows,
    by width; the page must not scroll sideways nor raise script errors."""
    found = {}
    for width, height, touch in SIZES:
        page, errors = log_in(
            browser, base, email, path, width, height,
            has_touch=touch, is_mobile=touch, bypass_csp=True,
        )  # fmt: skip
        page.wait_for_selector(ready)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        if touch:
            shot(page, phone_shot)
        found[width] = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in _axe(page)]
        assert errors == []
        page.context.close()
    return found
