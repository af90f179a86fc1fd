"""Screenshots for the README, written to docs/: the landing page (laptop 1440 x 900 and
phone 360 x 640), the volunteer studio (a new volunteer who signs up, accepts the consent and
paints a stroke; laptop and phone), the expert workspace (gold with its overlays, the review
queue with the volunteers' masks, the raters; laptop), the rounds page with a learning-curve
point (laptop), and last the tutorial (tutorial-*.png: the studio sending a new volunteer
there, the lessons, a lesson, a practice slice's feedback, the field guide on a laptop and a
phone, a test's verdict). The site is a fresh embedded-default demo that scripts/demo_round.py
has put to work (four simulated volunteers, one finished round), or the one ``--data`` names.
For the tutorial, one demo case is set aside as tutorial material (``mscrowd tutorials
use-case``): a site given with ``--data`` keeps it so.

    .venv/bin/python scripts/screenshots.py [--out docs] [--data DIR] [--only tutorial]

Then a new volunteer's walk from sign-up to a first real task and its points, the points
page and the leaderboard, at laptop and phone size (walk-laptop-*.png, walk-phone-*.png;
``--only walk`` takes these alone).

``--only tutorial`` takes the tutorial's alone, on a plain ``mscrowd demo`` site when no
``--data`` is given (a minute, not the few that putting the demo to work takes).

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
import numpy as np
from playwright.sync_api import Browser, Page, sync_playwright
from scipy import ndimage
from sqlmodel import Session, col, select

from backend.core.config import Settings
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.imaging.demo import DEMO_PROJECT
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality.gold import FROZEN
from backend.tutorials.models import TutorialItem

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


def _tutorial_case(data: str) -> str:
    """The demo case to set aside for the tutorial: the first with an expert reference that
    is not held out."""
    settings = Settings(data_dir=Path(data))
    engine = create_db_engine(settings.database_url)
    with Session(engine) as session:
        project = session.exec(select(Project).where(Project.name == DEMO_PROJECT)).one()
        cases = session.exec(
            select(Case)
            .where(Case.project_id == project.id, col(Case.reference_voxels) > 0)
            .order_by(col(Case.id))
        ).all()
        chosen = next(c for c in cases if c.tutorial or c.public_id not in project.holdout_cases)
    engine.dispose()
    return chosen.public_id


def _reference(data: str, item_id: int) -> np.ndarray:
    """The expected answer [H, W] of a tutorial item: its slice's expert reference."""
    settings = Settings(data_dir=Path(data))
    engine = create_db_engine(settings.database_url)
    with Session(engine) as session:
        item = session.get(TutorialItem, item_id)
        assert item is not None
        shown = session.get(Slice, item.slice_id)
        assert shown is not None
        key = shown.reference_key
    engine.dispose()
    if key is None:
        return np.zeros((1, 1), dtype=bool)
    return np.asarray(FROZEN.get(Storage(settings.storage_url), key, mask=True), dtype=bool)


def _item_id(page: Page) -> int:
    """The tutorial item on screen (its image URLs name it)."""
    url = page.evaluate("() => document.querySelector('#view').viewer.sources.get('0/flair')")
    return int(str(url).split("/items/")[1].split("/")[0])


def _set_mask(page: Page, mask: np.ndarray) -> None:
    page.evaluate(
        "(pixels) => document.querySelector('#view').viewer.setMask(Uint8Array.from(pixels))",
        mask.astype(np.uint8).ravel().tolist(),
    )


def _as_a_volunteer_would(truth: np.ndarray) -> np.ndarray:
    """A fair but imperfect answer: most lesions, a little generous, the smallest missed,
    one spot painted that is none."""
    labels, count = ndimage.label(truth)
    sizes = np.bincount(labels.ravel())[1:]
    kept = np.isin(labels, [n + 1 for n in range(count) if sizes[n] != sizes.min() or count == 1])
    answer = ndimage.binary_dilation(kept)
    height, width = truth.shape
    y, x = np.argwhere(ndimage.binary_dilation(truth, iterations=8) & ~truth)[0]
    answer[max(0, y - 1) : min(height, y + 2), max(0, x - 1) : min(width, x + 2)] = True
    return answer


def _tutorial_pages(browser: Browser, base: str, data: str, out: Path) -> None:
    """The tutorial, after one demo case is set aside as its material: the studio's way there,
    the lessons, a lesson, a practice slice's feedback, the field guide (laptop and phone),
    and the verdict of a test taken with a few lesions missed."""
    case = _tutorial_case(data)
    env = {**os.environ, "MSCROWD_DATA_DIR": data}
    command = [*CLI, "tutorials", "use-case", "--project", DEMO_PROJECT, case]
    subprocess.run(command, env=env, check=True, timeout=600, capture_output=True)
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    _volunteer(page, base, "Screenshot Learner")
    page.click("[data-testid=consent-accept]")
    page.wait_for_selector("[data-testid=qualify]", state="visible")
    page.screenshot(path=str(out / "tutorial-required.png"))
    page.click("[data-testid=qualify-go]")
    page.wait_for_selector("[data-testid=test-card]", state="visible")
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / "tutorial-lessons.png"))
    page.click("[data-testid=lesson-item][data-id=what-is-ms] a")
    page.wait_for_selector("[data-testid=figure-image]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=figure-image]').naturalWidth > 0"
    )
    page.locator("[data-testid=lesson-figure]").first.scroll_into_view_if_needed()
    page.evaluate("() => window.scrollBy(0, 200)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / "tutorial-lesson.png"))
    # A lesson whose first exercise a demo case has an example for (no demo slice holds the
    # 300 lesion pixels of a "large" load).
    page.click("[data-testid=lesson-back]")
    page.click("[data-testid=lesson-item][data-id=reading-the-images] a")
    page.click("[data-testid=practise]")
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    _set_mask(page, _as_a_volunteer_would(_reference(data, _item_id(page))))
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=feedback]", state="visible")
    page.wait_for_function("() => document.querySelector('#feedback-image').naturalWidth > 0")
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / "tutorial-practice-feedback.png"))
    page.click("[data-testid=feedback-again]")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    page.click("[data-testid=guide-open]")
    page.fill("[data-testid=guide-search]", "ventricle")
    page.wait_for_timeout(800)
    page.locator("[data-testid=guide-entry] summary").first.click()
    page.wait_for_timeout(600)
    page.screenshot(path=str(out / "tutorial-guide-desktop.png"))
    page.keyboard.press("Escape")
    # A test taken with the clean slices right and all lesion slices but one answered "no
    # lesions": not passed, whatever the pass marks.
    page.goto(f"{base}/tutorials?project={DEMO_PROJECT}#test")
    page.click("[data-testid=test-start]")
    painted = 0
    while True:
        page.wait_for_selector("#studio:not([hidden]), [data-testid=verdict]")
        if page.locator("[data-testid=verdict]").is_visible():
            break
        page.wait_for_function("() => document.querySelector('#loading').hidden")
        badge = page.inner_text("[data-testid=slice-badge]")
        truth = _reference(data, _item_id(page))
        if truth.any() and painted < 1:
            _set_mask(page, _as_a_volunteer_would(truth))
            page.click("[data-testid=submit]")
            painted += 1
        else:
            page.click("[data-testid=no-lesions]")
        page.wait_for_function(
            "(b) => document.querySelector('[data-testid=slice-badge]').textContent !== b"
            " || document.querySelector('[data-testid=verdict]')",
            arg=badge,
        )
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=item-result] img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / "tutorial-verdict.png"))
    page.context.close()
    phone = browser.new_context(
        viewport={"width": 360, "height": 640},
        device_scale_factor=2,
        has_touch=True,
        is_mobile=True,
    ).new_page()
    _volunteer(phone, base, "Screenshot Thumb")
    phone.click("[data-testid=consent-accept]")
    phone.wait_for_selector("[data-testid=qualify]", state="visible")
    phone.goto(
        f"{base}/tutorials?project={DEMO_PROJECT}#practise/reading-the-images/paint-on-flair"
    )
    phone.wait_for_selector("#studio:not([hidden])")
    phone.wait_for_function("() => document.querySelector('#loading').hidden")
    phone.click("[data-testid=guide-open]")
    phone.wait_for_selector("[data-testid=guide-entry]")
    phone.wait_for_timeout(500)
    phone.screenshot(path=str(out / "tutorial-guide-phone.png"))
    phone.context.close()


WALK_SIZES = {"laptop": (1440, 900, False), "phone": (360, 640, True)}


def _answer_as_an_expert(page: Page, data: str) -> None:
    """Answer the item on screen with its expected mask ("No lesions" where it is empty)."""
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    truth = _reference(data, _item_id(page))
    badge = page.inner_text("[data-testid=slice-badge]")
    if truth.any():
        _set_mask(page, truth)
        page.click("[data-testid=submit]")
    else:
        page.click("[data-testid=no-lesions]")
    page.wait_for_function(
        "(b) => document.querySelector('[data-testid=slice-badge]').textContent !== b"
        " || document.querySelector('[data-testid=verdict]')",
        arg=badge,
    )


def _walk(browser: Browser, base: str, data: str, out: Path, size: str) -> None:
    """A new volunteer from sign-up to a first real task (walk-SIZE-N-step.png): sign-up,
    consent, the studio sending them to the tutorial, the lessons, a lesson, a practice
    slice's feedback, a test item, the passed verdict, the first real task, its points, the
    points page and the leaderboard."""
    width, height, touch = WALK_SIZES[size]
    page = browser.new_context(
        viewport={"width": width, "height": height}, has_touch=touch, is_mobile=touch
    ).new_page()
    step = iter(range(1, 20))

    def shot(name: str) -> None:
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / f"walk-{size}-{next(step)}-{name}.png"))

    page.goto(base)
    page.fill("#signup-name", f"Walk {size}")
    page.fill("#signup-password", PASSWORD)
    shot("sign-up")
    page.click("#signup")
    page.wait_for_selector("[data-testid=consent-accept]", state="visible")
    shot("consent")
    page.click("[data-testid=consent-accept]")
    page.wait_for_selector("[data-testid=qualify]", state="visible")
    shot("sent-to-tutorial")
    page.click("[data-testid=qualify-go]")
    page.wait_for_selector("[data-testid=test-card]", state="visible")
    shot("lessons")
    page.click("[data-testid=lesson-item][data-id=reading-the-images] a")
    page.wait_for_selector("[data-testid=figure-image]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=figure-image]').naturalWidth > 0"
    )
    shot("lesson")
    page.click("[data-testid=practise]")
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    _set_mask(page, _as_a_volunteer_would(_reference(data, _item_id(page))))
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=feedback]", state="visible")
    page.wait_for_function("() => document.querySelector('#feedback-image').naturalWidth > 0")
    shot("practice-feedback")
    page.click("[data-testid=feedback-back]")
    page.goto(f"{base}/tutorials?project={DEMO_PROJECT}#test")
    page.click("[data-testid=test-start]")
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    shot("test-item")
    while True:
        page.wait_for_selector("#studio:not([hidden]), [data-testid=verdict]")
        if page.locator("[data-testid=verdict]").is_visible():
            break
        _answer_as_an_expert(page, data)
    assert "passed" in (page.get_attribute("[data-testid=verdict]", "class") or "")
    shot("passed")
    page.click("[data-testid=start-labelling]")
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    shot("first-task")
    # The first real answer: its points (pending until enough volunteers agree), the badges
    # the test and the answer earned, then the points page and its leaderboard.
    _paint(page)
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=reward-notice]", state="visible")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    shot("points-after-submit")
    page.goto(f"{base}/rewards")
    page.wait_for_selector("[data-testid=board-row]")
    page.wait_for_selector("[data-testid=goal-bar]")
    shot("points-page")
    page.locator("[data-testid=board]").scroll_into_view_if_needed()
    shot("leaderboard")
    page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--data", type=Path, help="a demo site put to work (default: a new one)")
    parser.add_argument("--only", choices=["tutorial", "walk"], help="take these screenshots alone")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as fresh:
        data = str(args.data or fresh)
        env = {**os.environ, "MSCROWD_DATA_DIR": data}
        if args.data is None and args.only in ("tutorial", "walk"):
            for command in ("migrate", "demo"):
                subprocess.run([*CLI, command], env=env, check=True, timeout=1800)
        elif args.data is None:
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
                if args.only is not None:
                    sizes = {}
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
                if args.only is None:
                    _staff_pages(browser, base, args.out)
                # Last: the tutorial's material gates the demo project's labelling.
                if args.only != "walk":
                    _tutorial_pages(browser, base, data, args.out)
                for size in WALK_SIZES:
                    _walk(browser, base, data, args.out, size)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"screenshots written to {args.out}")


if __name__ == "__main__":
    main()
