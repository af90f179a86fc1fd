"""The expert workspace in a real headless Chromium at 1440 x 900: candidates paged, a slice in
the detail pane with its overlays toggled (each volunteer named), approve, edit (paint, undo,
save as gold), reject with a reason, keys that stay quiet while typing, the rater table with
its history chart, and an axe-core scan (also at tablet size). Each action is checked in the
database."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.quality.gold import read_mask
from backend.quality.models import (
    GoldSource,
    GoldVersion,
    RaterAction,
    RejectionKind,
    SliceRejection,
)
from backend.tasks.models import Task
from tests.backend.quality.test_gold import _square_masks, create_case
from tests.backend.quality.test_workspace import answer_as_three
from tests.factories import PASSWORD, create_project
from tests.frontend.test_studio import _axe
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
Page = Any  # playwright_api.Page, resolved at run time
EXPERT = "expert@example.org"
SIZE = (48, 64)  # slice height, width: big enough to paint on
SLICES = 26  # more candidates than a page (20)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A live server: a case of 26 slices with reference masks; three named volunteers answer
    the crowd tasks of slices 2 and 3 (the third paints elsewhere)."""

    def seed(session: Session, storage: Storage) -> None:
        project = create_project(session, name="trial", min_labels=3, gold_rate=0.0)
        masks = _square_masks(SLICES, SIZE)
        slices = create_case(session, storage, project, masks)
        session.add_all(
            Task(project_id=project.id or 0, slice_id=s.id or 0, required_labels=3)
            for s in slices[2:4]
        )
        session.flush()
        elsewhere = np.zeros(SIZE, dtype=bool)
        elsewhere[30:40, 40:52] = True
        answer_as_three(session, storage, slices, masks, elsewhere)
        expert = auth.create_user(session=session, email=EXPERT, password=PASSWORD)
        expert.role = UserRole.expert
        session.add(expert)

    with seeded_site(tmp_path / "var", seed) as served:
        yield served


def _open(browser: Any, base: str, width: int = 1440, height: int = 900) -> tuple[Page, list[str]]:
    """The workspace, logged in as the expert (axe is injected: the page's CSP is lifted)."""
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept("scribbles on every slice"))
    login = context.request.post(
        f"{base}/api/auth/login", data={"email": EXPERT, "password": PASSWORD}
    )
    assert login.ok, login.text()
    page.goto(f"{base}/expert")
    _shown(page)
    return page, errors


def _shown(page: Page) -> str:
    """Wait for the detail pane to show a slice drawn in the view; its title."""
    page.wait_for_function("() => document.querySelector('#detail').dataset.shown")
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return page.inner_text("[data-testid=detail-title]")


def _status(page: Page, text: str) -> None:
    page.wait_for_function(
        "(t) => document.querySelector('[data-testid=status]').textContent.includes(t)", arg=text
    )


def _at(page: Page, u: float, v: float) -> tuple[float, float]:
    """The client point of slice coordinates (u, v) under the view's zoom and pan."""
    box = page.locator("#view").bounding_box()
    scale, pan_x, pan_y = page.evaluate(
        "() => { const d = document.querySelector('#view').dataset;"
        " return [Number(d.scale), Number(d.panX), Number(d.panY)]; }"
    )
    return box["x"] + pan_x + u * scale, box["y"] + pan_y + v * scale


def _mask(page: Page) -> np.ndarray:
    values = page.evaluate("() => Array.from(document.querySelector('#view').viewer.mask)")
    return np.asarray(values, dtype=np.uint8).reshape(SIZE).astype(bool)


def _db(data_dir: Path) -> Any:
    return create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")


def test_candidates_page_approve_and_reject_with_keys(browser: Any, site: tuple[str, Path]) -> None:
    base, data_dir = site
    page, errors = _open(browser, base)
    assert page.locator("[data-testid=gold-list] [data-testid=item]").count() == 20
    assert page.inner_text("[data-testid=gold-range]") == "1–20 of 26"
    assert "Reference" in page.inner_text("[data-testid=overlay-list]")
    # Paging: Next shows the last six; J past the end of page one does the same.
    page.click("[data-testid=gold-next]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=gold-range]').textContent === '21–26 of 26'"
    )
    assert page.locator("[data-testid=gold-list] [data-testid=item]").count() == 6
    page.keyboard.press("k")  # before the first row of page two: the last row of page one
    page.wait_for_function(
        "() => document.querySelector('[data-testid=gold-range]').textContent === '1–20 of 26'"
    )
    for _ in range(19):
        page.keyboard.press("k")
    first = _shown(page)
    assert page.locator("[aria-current=true]").count() == 1
    page.keyboard.press("j")
    page.wait_for_function(
        "(t) => document.querySelector('#detail-title').textContent !== t", arg=first
    )
    page.keyboard.press("k")
    page.wait_for_function(
        "(t) => document.querySelector('#detail-title').textContent === t", arg=first
    )

    # Approve the first candidate with A.
    page.keyboard.press("a")
    _status(page, "reference mask is gold now")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=gold-range]').textContent === '1–20 of 25'"
    )
    approved = first
    # Reject the next one: R opens the form; typing there fires no shortcut (an "a" included).
    rejected = _shown(page)
    assert rejected != approved
    page.keyboard.press("r")
    page.wait_for_selector("[data-testid=reject-form]", state="visible")
    page.keyboard.type("a blurred slice")
    assert page.input_value("[data-testid=reject-reason]") == "a blurred slice"
    page.click("[data-testid=reject-confirm]")
    _status(page, "is no gold candidate any more")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=gold-range]').textContent === '1–20 of 24'"
    )
    page.click("[data-testid=kind-gold]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=gold-range]').textContent === '1–1 of 1'"
    )
    assert _shown(page) == approved
    assert errors == []

    with Session(engine := _db(data_dir)) as session:
        (version,) = session.exec(select(GoldVersion)).all()
        assert version.source is GoldSource.reference
        assert version.created_by is not None
        (rejection,) = session.exec(select(SliceRejection)).all()
        assert rejection.kind is RejectionKind.candidate
        assert rejection.reason == "a blurred slice"
        assert rejection.slice_id != version.slice_id
    engine.dispose()


def test_review_overlays_edit_and_save_as_gold(browser: Any, site: tuple[str, Path]) -> None:
    base, data_dir = site
    page, errors = _open(browser, base)
    page.click("#tab-review")
    page.wait_for_selector("[data-testid=review-list] [data-testid=item]")
    assert page.locator("[data-testid=review-list] [data-testid=item]").count() == 2
    assert "Heron, Marlin, Quokka" in page.inner_text("[data-testid=review-list]")
    _shown(page)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=overlay-toggle]').length === 4"
    )
    overlays = page.inner_text("[data-testid=overlay-list]")
    for name in ("Reference", "Heron", "Marlin", "Quokka"):
        assert name in overlays
    shown = lambda: page.get_attribute("#view", "data-overlays").split()  # noqa: E731
    assert len(shown()) == 4
    # One rater off, then every overlay off with O, then back.
    page.locator("[data-testid=overlay-toggle]").nth(3).uncheck()
    assert len(shown()) == 3
    page.keyboard.press("o")
    assert page.get_attribute("#view", "data-overlays") == ""
    assert not page.is_checked("[data-testid=overlays-on]")
    page.keyboard.press("o")
    assert len(shown()) == 3
    # Contrast keys and neighbours: the context slice does not move the view when dragged.
    before = page.evaluate("() => ({...document.querySelector('#view').dataset})")
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => document.querySelector('#view').dataset.offset === '1'")
    # The badge follows once the neighbour's image is drawn: wait for it, never race it.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=offset-badge]').textContent.includes('Context')"
    )
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('#view').dataset.offset === '0'")

    # Edit from the reference: paint, undo, paint again, save with S.
    page.keyboard.press("e")
    page.wait_for_selector("[data-testid=edit-tools]", state="visible")
    reference = _mask(page)
    assert reference.sum() == 30
    assert page.input_value("[data-testid=edit-start]") == "reference"
    page.keyboard.press("ArrowUp")  # on a context slice a drag neither paints nor pans
    page.wait_for_function("() => document.querySelector('#view').dataset.offset === '1'")
    page.mouse.move(*_at(page, 10, 40))
    page.mouse.down()
    page.mouse.move(*_at(page, 30, 40), steps=5)
    page.mouse.up()
    after = page.evaluate("() => ({...document.querySelector('#view').dataset})")
    assert (after["panX"], after["panY"], after["scale"]) == (
        before["panX"],
        before["panY"],
        before["scale"],
    )
    assert np.array_equal(_mask(page), reference)
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('#view').dataset.offset === '0'")
    stroke = [(10.5, 40.5), (30.5, 40.5)]
    page.mouse.move(*_at(page, *stroke[0]))
    page.mouse.down()
    page.mouse.move(*_at(page, *stroke[1]), steps=8)
    page.mouse.up()
    painted = _mask(page)
    assert painted.sum() > reference.sum()
    page.keyboard.press("Control+z")
    assert np.array_equal(_mask(page), reference)
    page.keyboard.press("Control+Shift+z")
    assert np.array_equal(_mask(page), painted)
    page.keyboard.press("j")  # J while editing keeps the edit
    assert page.is_visible("[data-testid=edit-tools]")
    page.keyboard.press("s")
    _status(page, "your mask is gold version 1")
    assert errors == []

    with Session(engine := _db(data_dir)) as session:
        (version,) = session.exec(select(GoldVersion)).all()
        assert version.source is GoldSource.expert
        stored = read_mask(Storage((data_dir / "storage").as_uri()), version.mask_key)
        assert np.array_equal(stored, painted)
    engine.dispose()
    # The slice left the queue (it is gold now); the other one is shown.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=review-range]').textContent === '1–1 of 1'"
    )


def test_review_reject_and_rater_table(browser: Any, site: tuple[str, Path]) -> None:
    base, data_dir = site
    page, errors = _open(browser, base)
    page.click("#tab-review")
    page.wait_for_selector("[data-testid=review-list] [data-testid=item]")
    _shown(page)
    page.click("[data-testid=reject]")
    page.fill("[data-testid=reject-reason]", "flow artefact: unreadable")
    page.keyboard.press("Enter")
    _status(page, "left the review queue")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=review-range]').textContent === '1–1 of 1'"
    )
    # Raters: three volunteers; suspend the first; the history chart draws.
    page.click("#tab-raters")
    page.wait_for_selector("[data-testid=rater-row]")
    assert page.locator("[data-testid=rater-row]").count() == 3
    assert "Last active" in page.inner_text("[data-testid=rater-table]")
    page.locator("[data-testid=suspend]").first.click()
    page.wait_for_selector("[data-testid=reinstate]")
    assert "scribbles on every slice" in page.inner_text("[data-testid=rater-table]")
    page.locator("[data-testid=rater-name]").first.click()
    page.wait_for_selector("[data-testid=rater-detail]", state="visible")
    assert page.locator("#history polyline").count() == 1
    assert "No gold answer yet" in page.inner_html("#history")
    # One gold answer: a dot, its value and a level line, not an empty chart.
    page.evaluate(
        """async () => {
            const { drawHistory } = await import('/static/expert-raters.js');
            drawHistory(document.querySelector('#history'), [{ dice: 0.8 }]);
        }"""
    )
    assert page.locator("#history circle").count() == 1
    assert page.locator("#history line.level").count() == 1
    assert "Dice 0.80" in page.inner_html("#history")
    # Training: every lesson charted; without tutorial material no project has a test.
    page.click("#tab-training")
    page.wait_for_selector("#lesson-chart rect.bar", state="attached")
    assert page.locator("#lesson-chart rect.bar").count() == 6
    assert "needs a case set aside as tutorial material" in page.inner_html("#pass-chart")
    page.wait_for_function(
        "() => document.querySelector('#exercise-rows').textContent.includes('No practice')"
    )
    # A mimic with answers draws its share; one without says so and draws no bar.
    page.evaluate(
        """async () => {
            const { drawBars } = await import('/static/expert-training.js');
            drawBars(document.querySelector('#mimic-chart'), [
                { label: 'Choroid plexus', value: 0.4, figure: '40 % of 5' },
                { label: 'Flow artefact', value: null, figure: 'no answer yet' },
            ], { empty: 'none' });
        }"""
    )
    widths = page.eval_on_selector_all(
        "#mimic-chart rect.bar", "bars => bars.map(b => Number(b.getAttribute('width')))"
    )
    assert widths == [120, 0]
    assert errors == []
    with Session(engine := _db(data_dir)) as session:
        (rejection,) = session.exec(select(SliceRejection)).all()
        assert rejection.kind is RejectionKind.review
        (action,) = session.exec(select(RaterAction)).all()
        assert action.reason == "scribbles on every slice"
        assert action.by_user_id is not None
    engine.dispose()


def test_the_workspace_asks_anonymous_visitors_to_log_in(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(f"{base}/expert")
    page.wait_for_selector("[data-testid=gate]", state="visible")
    assert "Log in" in page.inner_text("[data-testid=gate]")


def test_accessibility_scan_and_one_screen_at_laptop_and_tablet_sizes(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    found: dict[str, Any] = {}
    for width, height in ((1440, 900), (1024, 768)):
        page, errors = _open(browser, base, width, height)
        # The slice, the actions and the list on one screen: no page scrolling.
        assert page.evaluate("() => document.documentElement.scrollHeight") <= height
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        for selector in (
            "#view",
            "[data-testid=approve]",
            "[data-testid=reject]",
            "[data-testid=gold-next]",
        ):
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= width, selector
            assert box["y"] + box["height"] <= height, selector
        assert page.locator("#view").bounding_box()["height"] >= height * 0.45
        found[f"{width} gold"] = _axe(page)
        page.click("#tab-review")
        page.wait_for_selector("[data-testid=review-list] [data-testid=item]")
        _shown(page)
        found[f"{width} review"] = _axe(page)
        page.keyboard.press("e")
        page.wait_for_selector("[data-testid=edit-tools]", state="visible")
        found[f"{width} edit"] = _axe(page)
        page.keyboard.press("Escape")
        page.click("#tab-raters")
        page.wait_for_selector("[data-testid=rater-row]")
        found[f"{width} raters"] = _axe(page)
        page.click("#tab-training")
        page.wait_for_selector("#lesson-chart rect.bar", state="attached")
        found[f"{width} training"] = _axe(page)
        assert errors == []
    summary = {
        where: [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
        for where, violations in found.items()
        if violations
    }
    assert summary == {}, summary
