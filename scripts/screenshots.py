"""Screenshots for the README, written to docs/: the landing page (laptop 1440 x 900 and
phone 360 x 640), the volunteer studio (a new volunteer who signs up, accepts the consent and
paints a stroke; laptop and phone), the expert workspace (gold with its overlays, the review
queue with the volunteers' masks, the raters; laptop) and the rounds page with a learning-curve
point (laptop). The site is a fresh embedded-default demo that scripts/demo_round.py has put to
work (four simulated volunteers, one finished round), or the one ``--data`` names.

    .venv/bin/python scripts/screenshots.py [--out docs] [--data DIR]

Needs Debian's Chromium (/usr/bin/chromium, or MSCROWD_TEST_CHROMIUM) and Playwright.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "backend"]
CHROMIUM = os.environ.get("MSCROWD_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "a long enough password"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _paint(page: Page) -> None:
    """A short stroke over the brightest part of the slice's middle, as a volunteer would."""
    box = page.locator("#view").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.05, y + box["height"] * 0.03, steps=6)
    page.mouse.up()


def _volunteer(page: Page, base: str, name: str) -> None:
    page.goto(base)
    page.fill("#signup-name", name)
    page.fill("#signup-password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("[data-testid=consent-accept]", state="visible")


def _staff(page: Page, base: str, email: str, path: str) -> None:
    page.goto(base)
    page.fill("#login-email", email)
    page.fill("#login-password", "mscrowd-demo")
    page.press("#login-password", "Enter")
    page.wait_for_selector("#who", state="visible")
    page.goto(f"{base}{path}")


def _staff_pages(browser: Browser, base: str, out: Path) -> None:
    """The expert workspace's three lists and the rounds page, at laptop size."""
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    _staff(page, base, "expert@demo.mscrowd.org", "/expert")
    page.wait_for_selector("[data-testid=item]")
    page.wait_for_timeout(800)
    page.screenshot(path=str(out / "expert-gold.png"))
    page.click("#tab-review")
    page.wait_for_selector("[data-testid=review-list] [data-testid=item]")
    page.wait_for_timeout(800)
    page.screenshot(path=str(out / "expert-review.png"))
    page.click("#tab-raters")
    page.wait_for_selector("[data-testid=rater-row]")
    page.locator("[data-testid=rater-name]").first.click()
    page.wait_for_selector("[data-testid=rater-detail]", state="visible")
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "expert-raters.png"))
    page.context.close()
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    _staff(page, base, "admin@demo.mscrowd.org", "/rounds")
    page.wait_for_selector("[data-testid=round-1]")
    page.wait_for_timeout(800)
    page.screenshot(path=str(out / "rounds.png"))
    page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--data", type=Path, help="a demo site put to work (default: a new one)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as fresh:
        data = str(args.data or fresh)
        env = {**os.environ, "MSCROWD_DATA_DIR": data}
        if args.data is None:
            work = [sys.executable, str(ROOT / "scripts" / "demo_round.py"), data]
            subprocess.run(work, env=env, check=True, timeout=1800)
        port = _port()
        server = subprocess.Popen(
            [*CLI, "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                sizes = {"desktop": (1440, 900, False), "phone": (360, 640, True)}
                for n, (label, (width, height, touch)) in enumerate(sizes.items()):
                    context = browser.new_context(
                        viewport={"width": width, "height": height},
                        device_scale_factor=2 if touch else 1,
                        has_touch=touch,
                        is_mobile=touch,
                    )
                    page = context.new_page()
                    page.goto(base)
                    page.wait_for_selector("#signup-name", state="visible")
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(args.out / f"landing-{label}.png"))
                    _volunteer(page, base, f"Screenshot {n + 1}")
                    if touch:
                        page.screenshot(path=str(args.out / "studio-consent-phone.png"))
                    page.click("[data-testid=consent-accept]")
                    page.wait_for_selector("#studio:not([hidden])")
                    page.wait_for_function("() => document.querySelector('#loading').hidden")
                    page.wait_for_timeout(600)
                    _paint(page)
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(args.out / f"studio-{label}.png"))
                    if not touch:
                        page.click("#help-open")
                        page.wait_for_timeout(200)
                        page.screenshot(path=str(args.out / "studio-help-desktop.png"))
                    context.close()
                _staff_pages(browser, base, args.out)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()
