"""The labelling page in a real headless Chromium: sign up, paint a lesion, submit, stored."""

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from tests.factories import HEIGHT, WIDTH, create_tasks
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A live server on the embedded default with two small tasks."""

    def seed(session: Session, storage: Storage) -> None:
        create_tasks(session, storage, count=2, required_labels=1)

    with seeded_site(tmp_path / "var", seed) as site:
        yield site


def test_volunteer_signs_up_paints_and_submits(
    browser: "playwright_api.Browser", site: tuple[str, Path]
) -> None:
    base, data_dir = site
    # A phone-sized screen with touch, as many volunteers use.
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base)
    page.click("#tab-signup")
    # A short password is explained in words before anything is sent.
    page.fill("#signup-email", "painter@example.org")
    page.fill("#signup-password", "short")
    page.press("#signup-password", "Enter")
    assert "at least 10 characters" in page.inner_text("[data-testid=signup-error]")
    page.fill("#signup-password", "a long enough password")
    page.press("#signup-password", "Enter")
    page.wait_for_selector("[data-testid=paint]", state="visible")
    assert page.inner_text("[data-testid=display-name]")
    first_status = page.inner_text("[data-testid=status]")
    assert "Task 1" in first_status

    # The slice fills the phone's width without horizontal scrolling.
    box = page.locator("[data-testid=paint]").bounding_box()
    assert box is not None
    assert box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Paint a horizontal stroke across the middle of the slice.
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=8)
    page.mouse.up()
    page.click("[data-testid=submit]")
    page.wait_for_function(
        "(first) => document.querySelector('[data-testid=status]').textContent !== first"
        " && !document.querySelector('[data-testid=submit]').disabled",
        arg=first_status,
    )
    assert errors == []

    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        annotation = session.exec(select(Annotation)).one()
    engine.dispose()
    assert annotation.client_info["ui"] == "minimal-labeller"
    assert annotation.duration_ms is not None
    mask = np.asarray(
        Image.open(io.BytesIO(Storage((data_dir / "storage").as_uri()).get(annotation.mask_key)))
    )
    assert mask.shape == (HEIGHT, WIDTH)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # The stroke lands in the middle rows and spans about half the width.
    assert abs(rows.mean() - HEIGHT / 2) <= 2
    assert cols.min() <= WIDTH * 0.3
    assert cols.max() >= WIDTH * 0.7
    assert annotation.lesion_pixels == int((mask > 0).sum())

    # The second task follows; after it the volunteer is told there is nothing left.
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=no-task]", state="visible")
    context.close()


def test_enter_in_the_login_form_logs_in_and_never_signs_up(
    browser: "playwright_api.Browser", site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base)
    page.fill("#login-email", "newcomer@example.org")
    page.fill("#login-password", "a long enough password")
    page.press("#login-password", "Enter")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=login-error]').textContent.length > 0"
    )
    assert page.inner_text("[data-testid=login-error]") == "Wrong login name or password"
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        assert session.exec(select(User)).all() == []  # no account was created
    engine.dispose()
    # Signing up, logging out and pressing Enter in the login form signs back in.
    page.click("#tab-signup")
    page.fill("#signup-email", "newcomer@example.org")
    page.fill("#signup-password", "a long enough password")
    page.click("#signup")
    page.wait_for_selector("[data-testid=paint]", state="visible")
    page.click("#logout")
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#login-email", "newcomer@example.org")
    page.fill("#login-password", "a long enough password")
    page.press("#login-password", "Enter")
    page.wait_for_selector("[data-testid=paint]", state="visible")
    assert errors == []
