"""The rounds page in a real headless Chromium: the learning curve of the closed rounds, the
running round's stage with its progress and ETA, starting a round and closing its labelling."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion, Round, RoundStatus
from tests.factories import PASSWORD, create_project, create_tasks
from tests.frontend.conftest import staff_page
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
ENGINEER = "ml@example.org"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Two closed rounds with models (Dice 0.41 on 20 slices, 0.58 on 40), a third training."""

    def seed(session: Session, storage: Storage) -> None:
        project = create_project(session, name="al")
        create_tasks(session, storage, count=12, project=project)
        assert project.id is not None
        for number, (used, dice) in enumerate([(20, 0.41), (40, 0.58)], start=1):
            done = Round(
                project_id=project.id,
                number=number,
                status=RoundStatus.closed,
                strategy="bald_diverse",
                budget=20,
                labels_used=used,
                progress=100.0,
            )
            session.add(done)
            session.flush()
            session.add(
                ModelVersion(
                    project_id=project.id,
                    round_id=done.id,
                    labels=LabelSource.fused,
                    status=ModelStatus.ready,
                    metrics={"dice": dice, "lesion_f1": dice / 2},
                    weights_key=f"models/{number}/model.pt",
                )
            )
        session.add(
            Round(
                project_id=project.id,
                number=3,
                status=RoundStatus.training,
                strategy="entropy",
                budget=20,
                progress=42.0,
                eta_seconds=75.0,
                detail="training: step 420, loss 0.512",
            )
        )
        engineer = auth.create_user(session=session, email=ENGINEER, password=PASSWORD)
        engineer.role = UserRole.engineer
        session.add(engineer)

    with seeded_site(tmp_path / "var", seed) as site:
        yield site


def test_engineer_watches_starts_and_closes_rounds(
    browser: "playwright_api.Browser", site: tuple[str, Path]
) -> None:
    base, data_dir = site
    page, errors = staff_page(browser, base, ENGINEER, PASSWORD, "/rounds")

    page.wait_for_selector("[data-testid=round-3]")
    running = page.inner_text("[data-testid=round-3]")
    assert "training" in running
    assert "42 %, about 75 s left: training: step 420" in running
    assert "Dice 0.580" in page.inner_text("[data-testid=round-2]")
    # The learning curve: one point per round with a model, at (labels used, Dice).
    assert page.locator("[data-testid=curve] circle").count() == 2
    titles = page.locator("[data-testid=curve] circle title").all_text_contents()
    assert titles == ["Round 1: 20 slices, Dice 0.410", "Round 2: 40 slices, Dice 0.580"]

    # Round 3 still runs: starting another is refused with the reason.
    page.click("[data-testid=start-round]")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('still training')"
    )
    engine = create_db_engine(f"sqlite:///{data_dir / 'mscrowd.sqlite'}")
    with Session(engine) as session:
        third = session.exec(select(Round).where(Round.number == 3)).one()
        third.status = RoundStatus.closed
        session.add(third)
        session.commit()
    page.select_option("[data-testid=strategy]", "random_fg")
    page.fill("[data-testid=budget]", "5")
    page.click("[data-testid=start-round]")
    page.wait_for_selector("[data-testid=round-4]")
    assert "0 of 5 labelled" in page.inner_text("[data-testid=round-4]")
    page.click("[data-testid=close-4]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=round-4]').textContent.includes('fusing')"
    )
    with Session(engine) as session:
        fourth = session.exec(select(Round).where(Round.number == 4)).one()
    engine.dispose()
    assert fourth.status is RoundStatus.fusing
    assert fourth.strategy == "random_fg"
    assert len(fourth.selected) == 5
    assert errors == []
