"""The tutorial page in a real headless Chromium: a new volunteer sent there by the studio, a
lesson read (Markdown drawn safely, figures, a missing example said in words), a practice slice
painted with the studio's tools and its feedback, the field guide beside the slice (laptop) and
as a sheet (phone), the qualification test from start to verdict (failed with its cool-down,
and passed, which opens labelling), refusals in words, and axe-core scans of every screen."""

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlmodel import Session

from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.imaging.models import Slice
from backend.tutorials.models import TutorialItem
from tests.backend.tutorials.material import create_tutorial_case
from tests.factories import create_project, create_tasks
from tests.frontend.test_studio import PASSWORD, _axe, _drag, _frame, _page
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
Page = Any  # playwright_api.Page, resolved at run time

PROJECT = "demo"
LAPTOP, PHONE = (1440, 900), (360, 640)
LESSONS = 6


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A project that asks for its test, with crowd slices waiting, and one case set aside as
    tutorial material (``material.use_case``): lesion slices of each load, empty slices and two
    of the four kinds of look-alike, so two lessons lack an example."""

    def seed(session: Session, storage: Storage) -> None:
        project = create_project(session, name=PROJECT, qualification_required=True)
        create_tasks(session, storage, count=4, required_labels=1, project=project)
        create_tutorial_case(session, storage, project=project, mimic=2)

    with seeded_site(tmp_path_factory.mktemp("tutorials") / "var", seed) as served:
        yield served


def _sign_up(page: Page, base: str, name: str) -> None:
    """A new volunteer: account, consent, and the studio's way to the tutorial."""
    page.goto(base)
    page.fill("#signup-name", name)
    page.fill("#signup-password", PASSWORD)
    page.click("#signup")
    page.click("[data-testid=consent-accept]")
    page.wait_for_selector("[data-testid=qualify]", state="visible")


def _tutorial(page: Page, base: str, hash_: str = "") -> None:
    page.goto(f"{base}/tutorials?project={PROJECT}{hash_}")


def _painting(page: Page) -> None:
    """The painting view shows an item, drawn."""
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    _frame(page)


def _mask_sum(page: Page) -> int:
    return int(
        page.evaluate(
            "() => document.querySelector('#view').viewer.mask.reduce((a, b) => a + b, 0)"
        )
    )


def _inside(page: Page, selector: str, width: int, height: int) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0, selector
    assert box["x"] + box["width"] <= width + 0.5, selector
    assert box["y"] >= 0, selector
    assert box["y"] + box["height"] <= height + 0.5, selector


def _no_violations(found: dict[str, list[dict[str, Any]]]) -> None:
    summary = {
        where: [(v["id"], v["help"], len(v["nodes"])) for v in violations]
        for where, violations in found.items()
        if violations
    }
    assert summary == {}, json.dumps(summary, indent=1)


def test_the_studio_sends_a_new_volunteer_to_a_lesson_with_practice(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    page, errors = _page(browser, *LAPTOP, bypass_csp=True)
    found: dict[str, Any] = {}
    _sign_up(page, base, "Learner One")
    # The studio: a panel with the way to the tutorial, not a status line; and the link in help.
    assert "tutorial" in page.inner_text("[data-testid=qualify]")
    assert page.get_attribute("[data-testid=qualify-go]", "href") == f"/tutorials?project={PROJECT}"
    assert page.get_attribute(".site-nav a:has-text('Tutorial')", "href") == "/tutorials"
    found["studio panel"] = _axe(page)
    page.click("#help-open")
    assert page.get_attribute("[data-testid=help-tutorial]", "href") == "/tutorials"
    page.keyboard.press("Escape")
    page.click("[data-testid=qualify-go]")
    page.wait_for_selector("[data-testid=lesson-item]")
    # The list: every lesson, where the volunteer stands, the test's card, a missing example.
    items = page.locator("[data-testid=lesson-item]")
    assert items.count() == LESSONS
    assert page.inner_text("[data-testid=list-progress]") == f"(0 of {LESSONS} done)"
    assert (
        page.locator("[data-testid=lesson-state]").all_inner_texts() == ["Not done yet"] * LESSONS
    )
    page.wait_for_selector("[data-testid=test-card]", state="visible")
    assert "10 slices" in page.inner_text("[data-testid=test-card]")
    missing = page.locator("[data-testid=lesson-item]:has([data-testid=lesson-missing])")
    assert {m.get_attribute("data-id") for m in missing.all()} == {"mimics", "no-lesions"}
    found["lesson list"] = _axe(page)
    # A lesson: Markdown as headings, lists and emphasis; its figure with its caption.
    page.click("[data-testid=lesson-item][data-id=what-is-ms] a")
    page.wait_for_selector("[data-testid=lesson]", state="visible")
    assert page.inner_text("#lesson-title") == "What MS is, and why lesions matter"
    body = page.locator("[data-testid=lesson-body]")
    assert "What goes wrong" in body.locator("h2").all_inner_texts()
    assert body.locator("ul > li").count() == 3
    assert body.locator("strong", has_text="myelin").count() == 1
    assert "**" not in body.inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=figure-image]')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert "MS lesions" in page.inner_text("[data-testid=lesson-figure] figcaption")
    found["lesson"] = _axe(page)
    # Practise: the studio's view and tools on the exercise's slice.
    page.click("[data-testid=exercise] [data-testid=practise]")
    _painting(page)
    assert page.inner_text("[data-testid=slice-badge]") == "Practice"
    assert "brightest patches" in page.inner_text("[data-testid=task-title]")
    _inside(page, "#view", *LAPTOP)
    _inside(page, "[data-testid=submit]", *LAPTOP)
    assert page.locator("#thumbs canvas.thumb-image").count() >= 2  # neighbours, from the sprite
    fitted = float(page.get_attribute("#view", "data-scale") or 0)
    page.keyboard.press("+")  # zoom
    _frame(page)
    assert float(page.get_attribute("#view", "data-scale") or 0) > fitted
    page.keyboard.press("0")
    page.keyboard.press("]")
    page.keyboard.press("]")  # a bigger brush
    _drag(page, [(18, 20), (26, 20)])
    assert _mask_sum(page) > 0
    page.keyboard.press("e")  # the eraser takes some back
    assert page.get_attribute("#tool-eraser", "aria-pressed") == "true"
    before = _mask_sum(page)
    _drag(page, [(25, 20), (26, 20)])
    assert 0 < _mask_sum(page) < before
    page.keyboard.press("b")
    found["practice"] = _axe(page)
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=feedback]", state="visible")
    text = page.inner_text("[data-testid=feedback-text]")
    for words in ("Overlap with the expert:", "Lesions found:", "False alarms:"):
        assert words in text
    assert "lesions" in page.inner_text("[data-testid=feedback-explanation]")
    legend = page.inner_text("[data-testid=feedback]")
    for words in ("Hit", "Missed", "False alarm"):
        assert words in legend
    page.wait_for_function("() => document.querySelector('#feedback-image').naturalWidth > 0")
    assert page.get_attribute("#feedback-image", "src").startswith("data:image/png")
    found["feedback"] = _axe(page)
    page.click("[data-testid=feedback-back]")
    page.wait_for_selector("[data-testid=lesson]", state="visible")
    assert "Practised" in page.inner_text("[data-testid=exercise]")
    # Done at the end; the list says so.
    page.click("[data-testid=lesson-done]")
    page.wait_for_selector("[data-testid=lesson-status]:has-text('Marked done')")
    assert page.is_disabled("[data-testid=lesson-done]")
    assert page.inner_text("[data-testid=lesson-done]") == "✓ Lesson done"
    assert page.inner_text("[data-testid=lesson-next]").startswith("Next: Reading")
    page.click("[data-testid=lesson-back]")
    page.wait_for_selector("[data-testid=lesson-item][data-id=what-is-ms].done")
    assert page.inner_text("[data-testid=list-progress]") == f"(1 of {LESSONS} done)"
    assert "1 practice slice, 1 done" in page.inner_text(
        "[data-testid=lesson-item][data-id=what-is-ms]"
    )
    # A lesson whose example this site lacks says so, and shows no broken image.
    page.click("[data-testid=lesson-item][data-id=mimics] a")
    page.wait_for_selector("[data-testid=figure-missing]")
    assert page.locator("[data-testid=figure-missing]").count() == 1
    assert page.locator("[data-testid=exercise-missing]").count() == 1
    assert page.locator("[data-testid=practise]").count() == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    _no_violations(found)
    assert errors == []


def test_a_lesson_s_text_never_becomes_markup(browser: Any, site: tuple[str, Path]) -> None:
    """Whatever a lesson file holds, it is shown as text: no element, no script."""
    base, _data_dir = site
    page, errors = _page(browser, *LAPTOP)
    _sign_up(page, base, "Careful Reader")

    def tampered(route: Any) -> None:
        response = route.fetch()
        lesson = response.json()
        lesson["body"] = (
            '## A <img src=x onerror="window.pwned=1"> title\n\n'
            "Text with **<b>bold</b>** and *<i>em</i>* and [a link](javascript:alert(1)).\n\n"
            "- an item\n  that goes on\n- **two**\n\n"
            "![caption](figure:no-such-figure)\n"
        )
        route.fulfill(response=response, json=lesson)

    page.route("**/api/tutorials/lessons/what-is-ms", tampered)
    _tutorial(page, base, "#lesson/what-is-ms")
    page.wait_for_selector("[data-testid=lesson]", state="visible")
    body = page.locator("[data-testid=lesson-body]")
    assert body.locator("h2").inner_text() == 'A <img src=x onerror="window.pwned=1"> title'
    assert body.locator("img, b, i, script, a").count() == 0
    assert body.locator("strong").all_inner_texts() == ["<b>bold</b>", "two"]
    assert body.locator("em").all_inner_texts() == ["<i>em</i>"]
    assert body.locator("ul > li").all_inner_texts() == ["an item that goes on", "two"]
    assert "[a link](javascript:alert(1))" in body.inner_text()
    assert body.locator("[data-testid=figure-missing]").count() == 1
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.pwned") is None
    assert errors == []


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_field_guide_searches_and_leaves_the_slice_in_view(
    browser: Any, site: tuple[str, Path], size: tuple[int, int]
) -> None:
    base, _data_dir = site
    phone = size == PHONE
    page, errors = _page(browser, *size, bypass_csp=True, has_touch=phone, is_mobile=phone)
    found: dict[str, Any] = {}
    _sign_up(page, base, f"Guide Reader {size[0]}")
    # From the studio: the header's Guide button, at any time.
    page.click("[data-testid=guide-open]")
    page.wait_for_selector("[data-testid=guide-entry]")
    assert page.evaluate("() => document.activeElement.id") == "guide-search"
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=guide]", state="hidden")
    assert page.evaluate("() => document.activeElement.id") == "guide-open"
    # Over a practice slice on the tutorial page.
    _tutorial(page, base, "#practise/what-is-ms/first-look")
    _painting(page)
    page.click("[data-testid=guide-open]")
    page.wait_for_selector("[data-testid=guide-entry]")
    everything = page.locator("[data-testid=guide-entry]").count()
    assert everything >= 8
    found["guide"] = _axe(page)
    guide = page.locator("[data-testid=guide]").bounding_box()
    _frame(page)
    view = page.locator("#view").bounding_box()
    assert guide is not None
    assert view is not None
    if phone:
        # A sheet over the lower part of the screen: the slice's top stays in view above it.
        assert guide["y"] > size[1] * 0.3
        assert guide["y"] + guide["height"] == pytest.approx(size[1], abs=1)
        assert view["y"] < guide["y"] - 80
        assert view["y"] + view["height"] <= guide["y"] + 1  # the whole slice, smaller
    else:
        # A panel beside the slice, which narrows to stay whole on screen.
        assert view["x"] + view["width"] <= guide["x"] + 0.5
        assert view["width"] >= size[0] * 0.4
    page.fill("[data-testid=guide-search]", "ventricle")
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=guide-entry]').length < n", arg=everything
    )
    matching = page.locator("[data-testid=guide-entry]")
    assert 1 <= matching.count() < everything
    assert "ventricle" in page.inner_text("[data-testid=guide-count]")
    first = matching.first
    first.locator("summary").click()
    assert first.get_attribute("open") is not None
    shown = first.locator(".guide-more")
    assert shown.is_visible()
    assert len(shown.inner_text()) > 40
    # An entry's picture when the site has its example; else words, never a broken image.
    assert first.locator("[data-testid=guide-image]").count() + first.locator(".note").count() == 1
    page.fill("[data-testid=guide-search]", "look-alike")
    page.fill("[data-testid=guide-search]", "zzzz nothing")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=guide-count]')"
        ".textContent.startsWith('Nothing')"
    )
    assert page.locator("[data-testid=guide-entry]").count() == 0
    found["guide searched"] = _axe(page)
    if phone:
        page.click("#guide-close")
    else:
        page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=guide]", state="hidden")
    assert page.evaluate("() => document.activeElement.id") == "guide-open"
    _no_violations(found)
    assert errors == []


def _reference_of(data_dir: Path, item_id: int) -> np.ndarray:
    """The expected answer of a tutorial item (the slice's expert reference), as 0/1 pixels."""
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        item = session.get(TutorialItem, item_id)
        assert item is not None
        shown = session.get(Slice, item.slice_id)
        assert shown is not None
        key = shown.reference_key
        assert key is not None
    engine.dispose()
    png = Storage((data_dir / "storage").as_uri()).get(key)
    return (np.asarray(Image.open(io.BytesIO(png))) > 0).astype(np.uint8)


def _take_the_test(page: Page, data_dir: Path, *, right: bool) -> int:
    """Answer every item of the test: "No lesions" throughout, or (``right``) the expected
    answer painted in; returns how many items there were."""
    page.click("[data-testid=test-start]")
    answered = 0
    while True:
        page.wait_for_selector("#studio:not([hidden]), [data-testid=verdict]")
        if page.locator("[data-testid=verdict]").is_visible():
            return answered
        _painting(page)
        badge = page.inner_text("[data-testid=slice-badge]")
        assert badge == f"Item {answered + 1} of 10"
        assert page.locator("[data-testid=feedback]").is_hidden()
        item_id = page.evaluate(
            "() => Number(new URL(document.querySelector('#view').viewer.sources.get('0/flair'),"
            " location.href).pathname.split('/')[4])"
        )
        reference = _reference_of(data_dir, item_id) if right else None
        if reference is not None and reference.any():
            page.evaluate(
                "(pixels) => document.querySelector('#view').viewer"
                ".setMask(Uint8Array.from(pixels))",
                reference.ravel().tolist(),
            )
            page.click("[data-testid=submit]")
        else:
            page.click("[data-testid=no-lesions]")
        answered += 1
        page.wait_for_function(
            "(badge) => document.querySelector('[data-testid=slice-badge]').textContent !== badge"
            " || document.querySelector('[data-testid=verdict]')",
            arg=badge,
        )


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_test_ends_in_a_verdict_with_what_to_do_next(
    browser: Any, site: tuple[str, Path], size: tuple[int, int]
) -> None:
    """No lesion painted anywhere: not passed, why, the lessons to take again, each slice's
    result, and the cool-down counting down."""
    base, data_dir = site
    phone = size == PHONE
    page, errors = _page(browser, *size, bypass_csp=True, has_touch=phone, is_mobile=phone)
    found: dict[str, Any] = {}
    _sign_up(page, base, f"Test Taker {size[0]}")
    _tutorial(page, base, "#test")
    page.wait_for_selector("[data-testid=test-start]")
    # What passes, as the project sets it.
    marks = page.inner_text("[data-testid=pass-marks]")
    limits = page.evaluate(
        f"() => fetch('/api/tutorials/qualification?project={PROJECT}').then((r) => r.json())"
    )["thresholds"]
    assert f"{limits['lesion_f1']:.2f}" in marks
    assert f"{limits['dice']:.2f}" in marks
    assert f"{round(limits['clean'] * 100)}%" in marks
    assert "10 slices" in page.inner_text("[data-testid=qualification]")
    found["test intro"] = _axe(page)
    assert _take_the_test(page, data_dir, right=False) == 10
    verdict = page.inner_text("[data-testid=verdict]")
    assert "Not passed" in verdict
    assert "0 of" in page.inner_text("[data-testid=scores]")
    assert "You found 0 of" in page.inner_text("[data-testid=reasons]")
    retake = page.locator("[data-testid=retake] a")
    assert retake.count() >= 1
    assert retake.first.get_attribute("href") == "#lesson/reading-the-images"
    title = retake.first.inner_text()
    assert title
    assert title != "reading-the-images"  # the lesson's title, not its id
    assert re.match(
        r"You can try again in \d+:\d\d \(at ", page.inner_text("[data-testid=cooldown]")
    )
    assert page.is_disabled("[data-testid=test-again]")
    page.wait_for_function(  # they come after the verdict, with their own request
        "() => document.querySelectorAll('[data-testid=item-result]').length === 10"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=item-result] figcaption')]"
        ".every((c) => !c.textContent.includes('loading'))"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=item-result] img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert "Start labelling" not in page.inner_text("[data-testid=qualification]")
    found["verdict"] = _axe(page)
    # The lesson it points to, one click away; the list marks it; a reload keeps the verdict.
    retake.first.click()
    page.wait_for_selector("[data-testid=lesson]", state="visible")
    assert page.inner_text("#lesson-title") == title
    page.click("[data-testid=lesson-back]")
    page.wait_for_selector("[data-testid=lesson-retake]")
    assert "did not pass" in page.inner_text("[data-testid=test-card]")
    _tutorial(page, base, "#test")
    page.reload()
    page.wait_for_selector("[data-testid=verdict]")
    assert page.locator("[data-testid=cooldown]").inner_text().startswith("You can try again in")
    # The slice-by-slice results come after the verdict (their own request): wait for them.
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=item-result]').length === 10"
    )
    _no_violations(found)
    assert errors == []


def test_passing_the_test_opens_labelling(browser: Any, site: tuple[str, Path]) -> None:
    base, data_dir = site
    page, errors = _page(browser, *LAPTOP)
    _sign_up(page, base, "Sharp Eye")
    _tutorial(page, base, "#test")
    page.wait_for_selector("[data-testid=test-start]")
    assert _take_the_test(page, data_dir, right=True) == 10
    assert "You passed" in page.inner_text("[data-testid=verdict]")
    assert page.locator("[data-testid=cooldown]").count() == 0
    assert page.locator("[data-testid=reasons]").count() == 0
    page.click("[data-testid=start-labelling]")
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    assert page.locator("[data-testid=qualify]").is_hidden()
    # The field guide beside the slice in the studio: the slice narrows, whole, and can be
    # painted on meanwhile; Esc closes the guide.
    page.click("[data-testid=guide-open]")
    page.wait_for_selector("[data-testid=guide-entry]")
    _frame(page)
    guide = page.locator("[data-testid=guide]").bounding_box()
    view = page.locator("#view").bounding_box()
    assert guide is not None
    assert view is not None
    assert view["x"] + view["width"] <= guide["x"] + 0.5
    assert view["width"] >= LAPTOP[0] * 0.4
    _drag(page, [(10, 10), (14, 10)])
    assert _mask_sum(page) > 0
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=guide]", state="hidden")
    # The tutorial's page says so too, and leads back.
    _tutorial(page, base)
    page.wait_for_selector("[data-testid=test-card]", state="visible")
    assert "You passed" in page.inner_text("[data-testid=test-card]")
    assert page.get_attribute("[data-testid=test-card-go]", "href") == "/"
    assert errors == []


@pytest.mark.parametrize(
    ("status", "answer", "words"),
    [
        (
            429,
            {"detail": "You can take the test again in 7 minute(s)", "code": "too_many_attempts"},
            "Not yet: you can start the test again at",
        ),
        (409, {"detail": "No material", "code": "qualification_unavailable"}, "not available yet"),
        (
            403,
            {"detail": "Paused", "code": "rater_suspended"},
            "an expert must allow a new attempt",
        ),
    ],
    ids=["cool-down", "unavailable", "suspended"],
)
def test_refusals_to_start_are_said_in_words(
    browser: Any, site: tuple[str, Path], status: int, answer: dict[str, str], words: str
) -> None:
    base, _data_dir = site
    page, errors = _page(browser, *PHONE)
    _sign_up(page, base, f"Refused {status}")

    def refuse(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(status=status, json=answer, headers={"Retry-After": "420"})

    page.route(f"**/api/tutorials/qualification?project={PROJECT}", refuse)
    _tutorial(page, base, "#test")
    page.click("[data-testid=test-start]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=test-error]').textContent.length > 0"
    )
    assert words in page.inner_text("[data-testid=test-error]")
    assert not page.is_disabled("[data-testid=test-start]")
    assert errors == []


def test_a_visitor_signs_in_and_comes_back_to_the_project_s_tutorial(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    first, _first_errors = _page(browser, *PHONE)
    _sign_up(first, base, "Returning Learner")
    first.context.close()
    page, errors = _page(browser, *PHONE)
    _tutorial(page, base)
    page.wait_for_selector("[data-testid=gate]", state="visible")
    page.click("[data-testid=gate] a")
    page.wait_for_selector("[data-testid=next-note]", state="visible")
    assert "Tutorial" in page.inner_text("[data-testid=next-note]")
    page.fill("#login-email", "Returning Learner")
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_url(f"{base}/tutorials?project={PROJECT}")
    page.wait_for_selector("[data-testid=test-card]", state="visible")
    assert page.locator("[data-testid=lesson-item]").count() == LESSONS
    # On a phone the header lists no pages for a volunteer elsewhere; here, the way back.
    assert page.locator(".site-nav a:has-text('Label')").is_visible()
    assert errors == []
