"""The points page in Chromium: totals, level, badges earned and next, the history chart, the
leaderboards with the volunteer's own row (also when off the first page), settings with an
unknown time zone refused and a good one saved, the opt-out, and axe-core at laptop and phone
size."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlmodel import Session

from backend.auth import consent
from backend.auth import service as auth
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.gamification import ledger
from backend.gamification.models import BadgeAward, PointReason
from backend.tasks.models import TaskState
from tests.backend.quality.test_gold import _normal_tasks, create_case
from tests.factories import PASSWORD, create_project
from tests.frontend.test_studio import _axe, _page
from tests.live import seeded_site

Page = Any


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """25 volunteers with more points than "The Learner" (30 points, one badge)."""

    def seed(session: Session, storage: Storage) -> None:
        now = utcnow()
        for n in range(25):
            other = auth.create_user(
                session=session,
                email=f"v{n}@example.org",
                password=PASSWORD,
                display_name=f"Volunteer {n:02d}",
            )
            assert other.id is not None
            row = ledger.entry(
                user_id=other.id,
                reason=PointReason.gold,
                points=100 + n,
                now=now,
                annotation_id=1000 + n,
            )
            ledger.write(session, [row])
        me = auth.create_user(
            session=session, email="me@example.org", password=PASSWORD, display_name="The Learner"
        )
        me.consent_version = consent.VERSION
        session.add(me)
        session.flush()
        assert me.id is not None
        ledger.write(
            session,
            [
                ledger.entry(
                    user_id=me.id, reason=PointReason.gold, points=25, now=now, annotation_id=1
                ),
                ledger.entry(
                    user_id=me.id, reason=PointReason.badge, points=5, now=now, badge="first-label"
                ),
            ],
        )
        session.add(BadgeAward(user_id=me.id, badge="first-label", awarded_at=now))
        # A project with four crowd slices, one of them labelled by enough volunteers.
        project = create_project(session, name="demo-ms")
        slices = create_case(session, storage, project, [np.zeros((16, 24), bool)] * 4)
        tasks = _normal_tasks(session, project, slices)
        tasks[0].state = TaskState.complete
        session.add(tasks[0])

    with seeded_site(tmp_path_factory.mktemp("rewards") / "var", seed) as served:
        yield served


def _status(page: Page, testid: str, text: str, start: bool = False) -> None:
    """Wait until the element's text starts with (or holds) ``text``."""
    check = "startsWith" if start else "includes"
    page.wait_for_function(
        f"(t) => document.querySelector('[data-testid={testid}]').textContent.{check}(t)", arg=text
    )


def _open(
    browser: Any, base: str, width: int, height: int, **options: Any
) -> tuple[Page, list[str]]:
    page, errors = _page(browser, width, height, **options)
    page.goto(base)
    page.fill("#login-email", "me@example.org")
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_selector("#who", state="visible")
    page.goto(f"{base}/rewards")
    page.wait_for_selector("[data-testid=board-row]")
    _status(page, "level-name", "Level")
    page.wait_for_selector("#history rect.bar, #history text", state="attached")
    return page, errors


def test_the_points_page_and_the_board(browser: Any, site: tuple[str, Path]) -> None:
    base, _data_dir = site
    page, errors = _open(browser, base, 1440, 900)
    assert page.inner_text("[data-testid=total]") == "30"
    assert page.inner_text("[data-testid=level-name]") == "Level 1: Newcomer"
    assert "20 points to level 2, Spotter." in page.inner_text("[data-testid=level-next]")
    assert page.locator("[data-testid=badge]").count() == 1
    assert page.locator("[data-testid=next-badge]").count() == 3
    assert page.locator("#history rect.bar").count() == 30  # a slot a day, empty or not
    # The community's goal, and where the impact of a trained model will show.
    page.wait_for_selector("[data-testid=goal-bar]")
    goal = page.inner_text("[data-testid=goals]")
    assert "The project: 1 of 4 slices finished (25 %)" in goal
    assert "A slice is finished once 3 volunteers labelled it. Yours so far: 0 answers." in goal
    # Off the first page: the volunteer's own rank is said under the board.
    assert page.locator("[data-testid=board-row]").count() == 20
    assert "number 26 of 26" in page.inner_text("[data-testid=board-me]")
    page.click("[data-testid=board-all]")
    page.wait_for_selector("[data-testid=board-all][aria-pressed=true]")
    assert "Volunteer 24" in page.inner_text("[data-testid=board]")
    # Settings: a made-up time zone is refused with its reason, a real one saved.
    page.fill("[data-testid=time-zone]", "Mars/Olympus")
    page.click("[data-testid=save-settings]")
    _status(page, "settings-status", "Not saved", start=True)
    assert "time zone" in page.inner_text("[data-testid=settings-status]")
    page.fill("[data-testid=time-zone]", "Europe/Berlin")
    page.uncheck("[data-testid=on-board]")
    page.click("[data-testid=save-settings]")
    _status(page, "settings-status", "Saved", start=True)
    _status(page, "board-me", "not on this board")
    page.check("[data-testid=on-board]")
    page.click("[data-testid=save-settings]")
    _status(page, "board-me", "number 26")
    assert errors == []


def test_no_serious_accessibility_violations_at_laptop_and_phone_size(
    browser: Any, site: tuple[str, Path]
) -> None:
    base, _data_dir = site
    found = {}
    for width, height, touch in ((1440, 900, False), (360, 640, True)):
        page, errors = _open(
            browser, base, width, height, has_touch=touch, is_mobile=touch, bypass_csp=True
        )
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        found[width] = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in _axe(page)]
        assert errors == []
    assert found == {1440: [], 360: []}


def test_a_volunteer_deletes_their_account(browser: Any, site: tuple[str, Path]) -> None:
    """Last in this module: it erases the volunteer the others sign in as."""
    base, _data_dir = site
    page, errors = _open(browser, base, 360, 640, has_touch=True, is_mobile=True)
    page.click("[data-testid=erase] summary")
    page.fill("[data-testid=erase-password]", "not my password")
    page.click("[data-testid=erase-button]")
    _status(page, "erase-status", "Not deleted", start=True)
    assert "Wrong password" in page.inner_text("[data-testid=erase-status]")
    page.fill("[data-testid=erase-password]", PASSWORD)
    page.click("[data-testid=erase-button]")
    page.wait_for_selector("[data-testid=erased]")
    assert "Your account is deleted" in page.inner_text("[data-testid=erased]")
    # Signed out, and the password no longer opens anything.
    assert page.request.get(f"{base}/api/auth/me").status == 401
    again = page.request.post(
        f"{base}/api/auth/login", data={"email": "me@example.org", "password": PASSWORD}
    )
    assert again.status == 401
    # Signed out, the page says how to log in and shows no empty cards.
    page.goto(f"{base}/rewards")
    page.wait_for_selector("[data-testid=gate]", state="visible")
    assert "Log in to see your points" in page.inner_text("[data-testid=gate]")
    assert page.is_hidden("#page")
    assert page.is_hidden("[data-testid=level-card]")
    assert errors == []
