"""The volunteer studio in a real headless Chromium: accounts and consent, exact painting at any
zoom and pan, fill, undo and redo, "no lesions", skip and report, phones with touch, a dropped
answer, a reload mid-painting, gold feedback, and an accessibility scan with axe-core."""

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.imaging.models import Slice
from backend.imaging.preprocess import encode_png
from backend.quality import gold
from backend.quality import service as quality
from backend.quality.models import GoldSource
from backend.tasks.models import Assignment, Task, TaskReport
from tests.factories import create_case_row, create_project
from tests.frontend.conftest import staff_page
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
Page = Any  # playwright_api.Page, resolved at run time

W, H = 64, 48  # slice size: big enough that zoom and pan matter
PASSWORD = "a long enough password"
GOLD = np.zeros((H, W), dtype=bool)
GOLD[20:28, 28:36] = True


def _images(index: int) -> dict[str, np.ndarray]:
    """FLAIR, T1 and T2 that differ, so a contrast switch shows on the canvas."""
    yy, xx = np.mgrid[0:H, 0:W]
    flair = ((xx * 3 + yy * 2 + index * 7) % 200 + 30).astype(np.uint8)
    return {
        "flair": flair,
        "t1": (255 - flair).astype(np.uint8),
        "t2": (flair // 2).astype(np.uint8),
    }


def _seed_case(session: Session, storage: Storage, project_gold: bool, count: int) -> list[Slice]:
    project = create_project(
        session, min_labels=1, gold_rate=1.0 if project_gold else 0.0, gold_schedule=[]
    )
    case = create_case_row(session, project)
    slices = []
    for index in range(count):
        keys = {}
        for contrast, image in _images(index).items():
            keys[contrast] = f"cases/{case.public_id}/axial/{index:04d}/{contrast}.png"
            storage.put(keys[contrast], encode_png(image))
        slice_ = Slice(
            case_id=case.id or 0,
            index=index,
            crop_x0=0,
            crop_y0=0,
            crop_x1=W,
            crop_y1=H,
            image_keys=keys,
            brain_fraction=0.5,
        )
        session.add(slice_)
        session.flush()
        slices.append(slice_)
        if not project_gold:
            session.add(
                Task(project_id=project.id or 0, slice_id=slice_.id or 0, required_labels=1)
            )
    if project_gold:  # one gold task on the middle slice, and nothing else to label
        gold.set_gold(
            session=session,
            storage=storage,
            slice_id=slices[count // 2].id or 0,
            mask=GOLD.astype(np.uint8),
            source=GoldSource.expert,
            expert_id=None,
        )
    session.flush()
    return slices


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A live server on the embedded default: four 64 x 48 slices, one label each."""

    def seed(session: Session, storage: Storage) -> None:
        _seed_case(session, storage, project_gold=False, count=4)

    with seeded_site(tmp_path / "var", seed) as served:
        yield served


def _page(
    browser: Any, width: int = 1280, height: int = 800, **options: Any
) -> tuple[Page, list[str]]:
    page = browser.new_context(viewport={"width": width, "height": height}, **options).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def _volunteer(page: Page, base: str, name: str) -> None:
    """Sign up with a pseudonym alone, accept the consent, wait for the first slice."""
    page.goto(base)
    page.fill("#signup-name", name)
    page.fill("#signup-password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("[data-testid=consent]", state="visible")
    assert "research datasets" in page.inner_text("#consent-points")
    page.click("[data-testid=consent-accept]")
    _wait_slice(page)


def _wait_slice(page: Page) -> None:
    page.wait_for_selector("#studio:not([hidden])")
    page.wait_for_function("() => document.querySelector('#loading').hidden")
    _frame(page)


def _frame(page: Page) -> None:
    """Two animation frames: the view has drawn (and published its scale and pan)."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _at(page: Page, u: float, v: float) -> tuple[float, float]:
    """The client point of slice coordinates (u, v) under the view's current zoom and pan."""
    box = page.locator("#view").bounding_box()
    view = page.evaluate(
        "() => { const d = document.querySelector('#view').dataset;"
        " return [Number(d.scale), Number(d.panX), Number(d.panY)]; }"
    )
    scale, pan_x, pan_y = view
    return box["x"] + pan_x + u * scale, box["y"] + pan_y + v * scale


def _centre(page: Page, x: int, y: int) -> tuple[float, float]:
    return _at(page, x + 0.5, y + 0.5)


def _drag(page: Page, points: list[tuple[int, int]]) -> None:
    page.mouse.move(*_centre(page, *points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*_centre(page, x, y), steps=6)
    page.mouse.up()


def _on_one_screen(page: Page, width: int, height: int) -> None:
    """No scrolling either way; the slice, Submit and No lesions visible together."""
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert page.evaluate("() => document.documentElement.scrollHeight") <= height
    for selector in ("#view", "[data-testid=submit]", "[data-testid=no-lesions]"):
        box = page.locator(selector).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= width
        assert box["y"] >= 0
        assert box["y"] + box["height"] <= height, selector
    assert page.locator("#view").bounding_box()["height"] >= height * 0.45  # the slice is big


def _mask(page: Page) -> np.ndarray:
    values = page.evaluate("() => Array.from(document.querySelector('#view').viewer.mask)")
    return np.asarray(values, dtype=np.uint8).reshape(H, W).astype(bool)


def _stored(data_dir: Path) -> list[tuple[Annotation, np.ndarray]]:
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        rows = session.exec(select(Annotation).order_by(Annotation.id)).all()  # type: ignore[arg-type]
    engine.dispose()
    storage = Storage((data_dir / "storage").as_uri())
    return [(a, np.asarray(Image.open(io.BytesIO(storage.get(a.mask_key)))) > 0) for a in rows]


def _submitted(page: Page, done: int) -> None:
    """Wait until the header's counter says ``done`` answers were acknowledged."""
    page.wait_for_function(
        "(n) => document.querySelector('[data-testid=session-count]').dataset.answers === `${n}`",
        arg=done,
    )
    assert page.inner_text("[data-testid=session-count]").startswith(f"{done} done")


def test_a_stroke_at_a_known_zoom_and_pan_is_stored_pixel_for_pixel(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = _page(browser)
    _volunteer(page, base, "Painter One")
    fitted = float(page.get_attribute("#view", "data-scale") or 0)
    page.keyboard.press("+")
    page.keyboard.press("+")  # 1.25 x 1.25 about the centre
    page.keyboard.press("h")  # the hand tool: a drag moves the view and paints nothing
    page.mouse.move(600, 400)
    page.mouse.down()
    page.mouse.move(640, 425, steps=4)
    page.mouse.up()
    page.keyboard.press("b")
    page.keyboard.press("[")
    page.keyboard.press("[")  # brush 3 -> 1 pixel
    _frame(page)
    scale = float(page.get_attribute("#view", "data-scale") or 0)
    assert scale == pytest.approx(fitted * 1.5625, rel=1e-6)
    assert not _mask(page).any()  # the pan painted nothing
    page.mouse.click(*_centre(page, 28, 22))
    _drag(page, [(24, 26), (36, 26)])
    page.keyboard.press("]")
    page.keyboard.press("]")  # 3 pixels: a 3 x 3 block about a pixel centre
    page.mouse.click(*_centre(page, 38, 20))
    expected = np.zeros((H, W), dtype=bool)
    expected[22, 28] = True
    expected[26, 24:37] = True
    expected[19:22, 37:40] = True
    assert np.array_equal(_mask(page), expected)
    page.click("[data-testid=submit]")
    _submitted(page, 1)
    assert "Saved" in page.inner_text("[data-testid=toast]")
    assert page.inner_text("[data-testid=slice-badge]") == "Slice 2 today"
    ((annotation, stored),) = _stored(data_dir)
    assert np.array_equal(stored, expected)
    assert annotation.client_info["ui"] == "studio"
    assert annotation.client_info["zoom"] == pytest.approx(scale, abs=1e-3)
    assert annotation.lesion_pixels == int(expected.sum())
    assert errors == []


def test_fill_undo_redo_and_no_lesions(browser: Any, site: tuple[str, Path]) -> None:
    base, data_dir = site
    page, errors = _page(browser)
    _volunteer(page, base, "Painter Two")
    page.keyboard.press("[")
    page.keyboard.press("[")
    square = [(20, 15), (30, 15), (30, 25), (20, 25), (20, 15)]
    for a, b in zip(square, square[1:], strict=False):
        _drag(page, [a, b])
    outline = _mask(page)
    assert outline.sum() == 40  # an 11 x 11 square's edge
    page.keyboard.press("f")
    page.mouse.click(*_centre(page, 5, 40))  # outside: the region reaches the slice's edge
    assert "closed outline" in page.inner_text("[data-testid=toast]")
    assert np.array_equal(_mask(page), outline)
    page.mouse.click(*_centre(page, 25, 20))
    filled = np.zeros((H, W), dtype=bool)
    filled[15:26, 20:31] = True
    assert np.array_equal(_mask(page), filled)
    page.keyboard.press("Control+z")
    assert np.array_equal(_mask(page), outline)
    page.keyboard.press("Control+Shift+z")
    assert np.array_equal(_mask(page), filled)
    page.click("#undo")
    page.click("#undo")  # the last side of the outline
    partial = outline.copy()
    partial[16:25, 20] = False  # the left side, without its corners (drawn by other sides)
    assert np.array_equal(_mask(page), partial)
    page.click("#redo")
    page.click("#redo")
    assert np.array_equal(_mask(page), filled)
    assert page.is_disabled("#redo")
    page.click("[data-testid=submit]")
    _submitted(page, 1)
    page.click("[data-testid=no-lesions]")  # the next slice: nothing painted, a real answer
    _submitted(page, 2)
    (first, first_mask), (second, second_mask) = _stored(data_dir)
    assert np.array_equal(first_mask, filled)
    assert not second_mask.any()
    assert second.lesion_pixels == 0
    assert errors == []


def test_skip_and_report_give_a_new_slice_and_reach_experts(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = _page(browser)
    _volunteer(page, base, "Skipper")
    page.click("[data-testid=skip]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=toast]').textContent.includes('Skipped')"
    )
    page.click("[data-testid=report]")
    page.check("input[value=artefact]")
    page.fill("#report-note", "stripes across the slice")
    page.click("[data-testid=report-send]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=toast]').textContent.includes('expert')"
    )
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    for _ in range(50):  # the next slice's prefetch may still be on its way
        with Session(engine) as session:
            if len(session.exec(select(Assignment)).all()) == 4:
                break
        page.wait_for_timeout(100)
    with Session(engine) as session:
        (report,) = session.exec(select(TaskReport)).all()
        reported = (report.reason.value, report.note)
        states = sorted(a.state.value for a in session.exec(select(Assignment)))
        expert = auth.create_user(session=session, email="ex@example.org", password=PASSWORD)
        expert.role = UserRole.expert
        session.add(expert)
        session.commit()
    engine.dispose()
    assert reported == ("artefact", "stripes across the slice")
    # Two slices given back, a third on screen and a fourth prefetched; no answer counted.
    assert states == ["active", "active", "skipped", "skipped"]
    assert page.inner_text("[data-testid=slice-badge]") == "Slice 1 today · 2 skipped"
    assert page.get_attribute("[data-testid=session-count]", "data-answers") == "0"
    assert errors == []
    # Experts see it in their workspace, with the slice, and mark it as seen.
    workspace, staff_errors = staff_page(browser, base, "ex@example.org", PASSWORD, "/expert")
    workspace.click("#tab-reports")
    item = workspace.wait_for_selector("[data-testid=report-item]")
    text = item.inner_text()
    assert "Artefact" in text
    assert "stripes across the slice" in text
    assert "Skipper" in text
    workspace.click("[data-testid=report-item] button")
    workspace.wait_for_function(
        "() => document.querySelector('[data-testid=report-list]').textContent.includes('No open')"
    )
    assert staff_errors == []


def test_a_phone_with_touch_paints_with_one_finger_and_zooms_with_two(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = _page(browser, 360, 640, has_touch=True, is_mobile=True, device_scale_factor=2)
    _volunteer(page, base, "Phone User")
    _on_one_screen(page, 360, 640)
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send(
            "Input.dispatchTouchEvent",
            {
                "type": kind,
                "touchPoints": [{"x": x, "y": y, "id": n} for n, (x, y) in enumerate(points)],
            },
        )

    # Two fingers spread apart: a zoom, and not one pixel painted.
    before = float(page.get_attribute("#view", "data-scale") or 0)
    a, b = _centre(page, 28, 24), _centre(page, 36, 24)
    touch("touchStart", [a, b])
    for k in range(1, 6):
        touch("touchMove", [(a[0] - 6 * k, a[1]), (b[0] + 6 * k, b[1])])
    touch("touchEnd", [])
    _frame(page)
    assert float(page.get_attribute("#view", "data-scale") or 0) > before * 1.3
    assert not _mask(page).any()
    # One finger paints a stroke along row 24.
    start, end = _centre(page, 30, 24), _centre(page, 34, 24)
    touch("touchStart", [start])
    for k in range(1, 9):
        touch("touchMove", [(start[0] + (end[0] - start[0]) * k / 8, start[1])])
    touch("touchEnd", [])
    painted = _mask(page)
    assert painted[24, 30:35].all()
    assert set(np.flatnonzero(painted.any(axis=1))) <= {23, 24, 25}
    # Chrome's gesture detector makes no click of a tap that follows a touch sequence sent
    # through CDP within its double-tap window (a finger takes longer to reach the button).
    page.wait_for_timeout(500)
    page.tap("[data-testid=submit]")
    _submitted(page, 1)
    ((annotation, stored),) = _stored(data_dir)
    assert np.array_equal(stored, painted)
    assert annotation.client_info["pointer"] == "touch"
    assert errors == []


def test_a_lost_answer_is_retried_and_stored_exactly_once(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = _page(browser)
    _volunteer(page, base, "Flaky Line")
    keys: list[str] = []

    def flaky(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.fetch()  # the server stores it, but the answer never comes back
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/tasks/*/annotations", flaky)
    _drag(page, [(30, 20), (34, 20)])
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=net]", state="visible")
    assert "kept on this device" in page.inner_text("[data-testid=net]")
    _submitted(page, 1)  # retried by itself a second later
    assert page.is_hidden("[data-testid=net]")
    assert len(keys) == 2
    assert keys[0] == keys[1] != ""
    stored = _stored(data_dir)
    assert len(stored) == 1
    assert stored[0][1][20, 30:35].all()
    assert errors == []


def test_a_reload_in_the_middle_of_painting_restores_the_mask(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = _page(browser)
    _volunteer(page, base, "Reloader")
    _drag(page, [(10, 10), (40, 30)])
    painted = _mask(page)
    assert painted.sum() > 40
    page.wait_for_timeout(500)  # the draft is written 0.2 s after the last stroke
    page.reload()
    _wait_slice(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=toast]').textContent.includes('back')"
    )
    assert np.array_equal(_mask(page), painted)
    page.click("[data-testid=submit]")
    _submitted(page, 1)
    ((_annotation, stored),) = _stored(data_dir)
    assert np.array_equal(stored, painted)
    assert errors == []


POINTS_SHOWN = (
    "() => document.querySelector('[data-testid=session-count]').textContent.includes('pts')"
)


def test_gold_feedback_is_shown_before_moving_on(browser: Any, tmp_path: Path) -> None:
    def seed(session: Session, storage: Storage) -> None:
        _seed_case(session, storage, project_gold=True, count=3)

    with seeded_site(tmp_path / "var", seed) as (base, data_dir):
        page, errors = _page(browser)
        _volunteer(page, base, "Gold Digger")
        page.keyboard.press("]")
        page.keyboard.press("]")  # 5 pixels wide
        _drag(page, [(30, 22), (40, 22)])  # half on the expert's lesion, half a false alarm
        page.click("[data-testid=submit]")
        page.wait_for_selector("[data-testid=feedback]", state="visible")
        text = page.inner_text("[data-testid=feedback-text]")
        assert "Overlap with the expert:" in text
        assert "Lesions found: 1 of 1" in text
        page.wait_for_function("() => document.querySelector('#feedback-image').naturalWidth > 0")
        legend = page.inner_text("[data-testid=feedback]")
        for words in ("Hit", "Missed", "False alarm"):
            assert words in legend
        # The points of a check answer come at once, with the score card.
        assert re.search(r"\+\d+ points", text), text
        page.click("#feedback-next")
        page.wait_for_selector("[data-testid=no-task]", state="visible")
        # The first answer's badge and the total in the header's counter.
        page.wait_for_selector("[data-testid=reward-notice]", state="visible")
        assert "Badge earned: First label" in page.inner_text("[data-testid=reward-notice]")
        page.wait_for_function(POINTS_SHOWN)
        # Shown once: a reload does not repeat it.
        page.reload()
        page.wait_for_selector("[data-testid=no-task]", state="visible")
        page.wait_for_function(POINTS_SHOWN)
        assert page.locator("[data-testid=reward-notice]").is_hidden()
        assert errors == []


AXE = Path(__import__("axe_playwright_python").__file__).with_name("axe.min.js")


def _axe(page: Page, within: str | None = None) -> list[dict[str, Any]]:
    """Serious and critical WCAG 2 A/AA violations on the page as it is now (or in the part
    of it that the CSS selector ``within`` picks)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (within) => await axe.run(within ? {include: [within]} : document,"
        " {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})",
        within,
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_accessibility_scan_finds_no_serious_violations(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    found: dict[str, Any] = {}
    for size in ((1440, 900), (360, 640)):
        # axe is injected as a script tag: the test context lifts the page's CSP for it.
        page, errors = _page(browser, *size, bypass_csp=True)
        page.goto(base)
        page.wait_for_selector("#auth:not([hidden])")
        found[f"{size} landing"] = _axe(page)
        page.fill("#signup-name", f"Axe {size[0]}")
        page.fill("#signup-password", PASSWORD)
        page.click("#signup")
        page.wait_for_selector("[data-testid=consent]", state="visible")
        found[f"{size} consent"] = _axe(page)
        page.click("[data-testid=consent-accept]")
        _wait_slice(page)
        _on_one_screen(page, *size)
        found[f"{size} studio"] = _axe(page)
        page.click("#help-open")
        found[f"{size} help"] = _axe(page)
        assert errors == []
    summary = {
        where: [(v["id"], v["help"], len(v["nodes"])) for v in violations]
        for where, violations in found.items()
        if violations
    }
    assert summary == {}, json.dumps(summary, indent=1)


def test_enter_in_the_login_form_logs_in_and_never_signs_up(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = _page(browser)
    page.goto(base)
    page.fill("#login-email", "Newcomer")
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=login-error]').textContent.length > 0"
    )
    assert page.inner_text("[data-testid=login-error]") == "Wrong login name or password"
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        assert session.exec(select(User)).all() == []  # no account was created
    engine.dispose()
    _volunteer(page, base, "Newcomer")
    page.click("#logout")
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#login-email", "newcomer")  # pseudonyms log in whatever their case
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    _wait_slice(page)  # consent is asked once, not at every log-in
    assert errors == []


def test_a_suspended_volunteer_is_told_why_and_what_to_do(
    browser: Any, site: tuple[str, Path]
) -> None:
    """Not "all caught up": the reason, and the way back (the help, an expert's review)."""
    base, data_dir = site
    page, errors = _page(browser, 360, 640)
    _volunteer(page, base, "Paused Painter")
    page.click("[data-testid=no-lesions]")
    _submitted(page, 1)
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        volunteer = session.exec(select(User).where(User.display_name == "Paused Painter")).one()
        (project_id,) = {t.project_id for t in session.exec(select(Task))}
        quality.set_suspension(
            session=session,
            project_id=project_id,
            user_id=volunteer.id or 0,
            suspend=True,
            reason="painting outside the brain",
            expert_id=volunteer.id or 0,
        )
        session.commit()
    engine.dispose()
    # The slice on screen was leased before: its answer is refused, and the studio says why.
    page.click("[data-testid=no-lesions]")
    page.wait_for_selector("[data-testid=paused]", state="visible")
    text = page.inner_text("[data-testid=paused]")
    assert "painting outside the brain" in text
    assert "expert can reinstate" in text
    assert page.locator("[data-testid=no-task]").is_hidden()
    # A fresh visit says the same.
    page.reload()
    page.wait_for_selector("[data-testid=paused]", state="visible")
    assert "painting outside the brain" in page.inner_text("[data-testid=paused]")
    assert errors == []


def test_a_context_slice_never_moves_the_view_and_home_resets_it(
    browser: Any, site: tuple[str, Path]
) -> None:
    """Dragging with the brush on a neighbouring slice neither paints nor pans (it used to
    pan), and Home returns to the marked slice with zoom and pan reset (it used to keep them).
    Everything on screen comes from the lease's sprite."""
    base, _data_dir = site
    page, errors = _page(browser)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    _volunteer(page, base, "Context Looker")

    def view() -> list[float]:
        return page.evaluate(
            "() => { const d = document.querySelector('#view').dataset;"
            " return [Number(d.scale), Number(d.panX), Number(d.panY)]; }"
        )

    fitted = view()
    page.keyboard.press("+")
    _frame(page)
    zoomed = view()
    assert zoomed[0] > fitted[0]
    up = not page.is_disabled("#slice-up")  # the slice above, else the one below
    page.keyboard.press("ArrowUp" if up else "ArrowDown")
    page.wait_for_function(
        "(o) => document.querySelector('#view').dataset.offset === o", arg="1" if up else "-1"
    )
    page.mouse.move(*_centre(page, 20, 20))
    page.mouse.down()
    page.mouse.move(*_centre(page, 40, 30), steps=6)
    page.mouse.up()
    _frame(page)
    assert view() == zoomed
    assert not _mask(page).any()
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('#view').dataset.offset === '0'")
    _frame(page)
    assert view() == pytest.approx(fitted)
    # Issue 35: the slice, its contrasts, the context slices and their thumbnails all came
    # from one sprite per lease (this one and the next, fetched ahead): no single image.
    assert not [url for url in asked if "/images/" in url]
    assert 1 <= len([url for url in asked if url.endswith("/sprite.png")]) <= 2
    assert page.locator("#thumbs canvas.thumb-image").count() >= 2
    assert errors == []
    # The site's slices were seeded without sprites (as if imported before them): serve built
    # them all before its first answer, so no lease is slower for building one (a timing
    # that would tell a never-leased slice from gold).
    storage = Storage((_data_dir / "storage").as_uri())
    assert len([k for k in storage.list("cases") if "/sprite-" in k]) == 4
