"""The expert workspace in a real headless Chromium: approve gold, settle a disputed slice by
painting gold, and suspend a rater, each stored with who did it."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.quality.models import GoldSource, GoldVersion, RaterAction
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskKind, TaskState
from tests.backend.quality.test_gold import _mask_rle, _normal_tasks, _square_masks, create_case
from tests.factories import PASSWORD, create_project, submit
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
EXPERT = "expert@example.org"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A live server with a project: reference slices, and three volunteers who disagree."""

    def seed(session: Session, storage: Storage) -> None:
        project = create_project(session, name="trial", min_labels=3)
        masks = _square_masks(4)
        slices = create_case(session, storage, project, masks)
        _normal_tasks(session, project, slices[2:])
        mask_of = {s.id: m for s, m in zip(slices, masks, strict=True)}
        elsewhere = np.zeros((16, 24), dtype=bool)
        elsewhere[10:14, 15:20] = True
        for n in range(3):
            rater = auth.create_user(session=session, email=f"v{n}@example.org", password=PASSWORD)
            while lease := tasks.next_task(session=session, user=rater, lease_seconds=600):
                painted = elsewhere if n == 2 else mask_of[lease.task.slice_id]
                submit(session, storage, rater, lease, mask=_mask_rle(painted))
        expert = auth.create_user(session=session, email=EXPERT, password=PASSWORD)
        expert.role = UserRole.expert
        session.add(expert)

    with seeded_site(tmp_path / "var", seed) as site:
        yield site


def test_expert_approves_gold_paints_gold_and_suspends_a_rater(
    browser: "playwright_api.Browser", site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept("scribbles on every slice"))
    page.goto(f"{base}/expert")
    page.wait_for_selector("[data-testid=gate]", state="visible")
    assert "Log in" in page.inner_text("[data-testid=gate]")
    page.goto(base)
    page.fill("#login-email", EXPERT)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_selector("#who", state="visible")
    page.goto(f"{base}/expert")

    # Gold: four candidates; approve the first.
    page.wait_for_selector("[data-testid=candidate]")
    assert page.locator("[data-testid=candidate]").count() == 4
    page.locator("[data-testid=approve]").first.click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=status]').textContent.includes('is gold')"
    )
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=candidate]').length === 3"
    )

    # Review: the disputed slices (two, less one if the gold just approved was one of them:
    # candidates come in the gold pool's order); paint a gold mask for the first.
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        gold = {v.slice_id for v in session.exec(select(GoldVersion)) if v.retired_at is None}
        disputed = [
            t
            for t in session.exec(select(Task).where(Task.kind == TaskKind.normal))
            if t.state is not TaskState.retired and t.slice_id not in gold
        ]
    engine.dispose()
    page.click("#tab-review")
    page.wait_for_selector("[data-testid=review-item]")
    assert page.locator("[data-testid=review-item]").count() == len(disputed) >= 1
    page.locator("[data-testid=paint-gold]").first.click()
    page.wait_for_selector("[data-testid=paint-mask]", state="visible")
    box = page.locator("[data-testid=paint-mask]").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=6)
    page.mouse.up()
    page.click("[data-testid=paint-save]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=status]')"
        ".textContent.includes('gold version 1')"
    )

    # Raters: three volunteers; suspend the first (the least reliable one).
    page.click("#tab-raters")
    page.wait_for_selector("[data-testid=rater-row]")
    assert page.locator("[data-testid=rater-row]").count() == 3
    page.locator("[data-testid=suspend]").first.click()
    page.wait_for_selector("[data-testid=reinstate]")
    page.locator("[data-testid=rater-row] td button").first.click()
    page.wait_for_selector("[data-testid=rater-detail]", state="visible")
    assert page.locator("#history polyline").count() == 1
    assert errors == []

    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        versions = session.exec(select(GoldVersion)).all()
        assert sorted(v.source for v in versions) == [GoldSource.expert, GoldSource.reference]
        assert all(v.created_by is not None for v in versions)
        (action,) = session.exec(select(RaterAction)).all()
        assert action.reason == "scribbles on every slice"
        assert action.by_user_id is not None
    engine.dispose()
