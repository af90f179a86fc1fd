"""The rounds page in a real headless Chromium: the learning curve of the closed rounds, the
running round's stage with its progress and ETA, the strategies' help with random_fg the
default, starting a round and closing its labelling: below its labelled share the page asks
first with the counts, and cancelling leaves the round open."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.db import create_db_engine
from backend.core.storage import Storage
from backend.rounds.models import LabelSource, ModelStatus, ModelVersion, Round, RoundStatus
from backend.rounds.selection import STRATEGIES
from backend.tasks.models import Task, TaskState
from tests.factories import PASSWORD, create_project, create_tasks
from tests.frontend.conftest import staff_page
from tests.live import seeded_site

playwright_api = pytest.importorskip("playwright.sync_api")
ENGINEER = "ml@example.org"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Two closed rounds with models (Dice 0.41 on 20 slices, 0.58 on 40), a third training;
    3 of the project's 12 crowd tasks are complete (labelled before the next round)."""

    def seed(session: Session, storage: Storage) -> None:
        project = create_project(session, name="al")
        tasks = create_tasks(session, storage, count=12, project=project)
        for task in tasks[:3]:
            task.state = TaskState.complete
            session.add(task)
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
    assert "trained on 40 labelled slices" in page.inner_text("[data-testid=labels-2]")
    assert "never trained on" in page.inner_text("[data-testid=curve-hint]")
    # The strategies, one line each, and random_fg the default until data says otherwise.
    assert page.input_value("[data-testid=strategy]") == "random_fg"
    assert page.is_visible("[data-testid=strategy-help]")
    help_text = page.inner_text("[data-testid=strategy-help]")
    for name in STRATEGIES:
        assert name in help_text
    assert "default until this project's own learning curve shows a strategy" in help_text
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
    page.fill("[data-testid=budget]", "5")  # the default strategy
    page.click("[data-testid=start-round]")
    page.wait_for_selector("[data-testid=round-4]")
    assert "0 of 5 chosen labelled" in page.inner_text("[data-testid=round-4]")
    # Volunteers label one of the 5 chosen slices (the page polls).
    with Session(engine) as session:
        fourth = session.exec(select(Round).where(Round.number == 4)).one()
        labelled = session.exec(select(Task).where(Task.slice_id == fourth.selected[0])).one()
        labelled.state = TaskState.complete
        session.add(labelled)
        session.commit()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=labels-4]').textContent"
        ".includes('chosen 5, labelled 1')"
    )
    labels = page.inner_text("[data-testid=labels-4]")
    assert "closing now trains on about 4 labelled slices (1 from this round)" in labels

    # 1 of 5 is below half: the page asks, with the counts, before closing.
    page.click("[data-testid=close-4]")
    page.wait_for_selector("[data-testid=close-dialog]", state="visible")
    counts = page.inner_text("[data-testid=close-counts]")
    assert "Only 1 of the 5 slices this round chose is labelled" in counts
    assert "needs 3" in counts
    training = page.inner_text("[data-testid=close-training]")
    assert "about 4 labelled slices in all, 1 of them from this round" in training
    assert "the other 3 were labelled before it" in training
    # Cancel: the round stays open.
    page.click("[data-testid=close-cancel]")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('stays open')"
    )
    assert not page.is_visible("[data-testid=close-dialog]")
    with Session(engine) as session:
        fourth = session.exec(select(Round).where(Round.number == 4)).one()
    assert fourth.status is RoundStatus.labelling
    assert "labelling" in page.inner_text("[data-testid=round-4]")
    # Confirm: it closes, forced, and the row keeps its counts.
    page.click("[data-testid=close-4]")
    page.wait_for_selector("[data-testid=close-dialog]", state="visible")
    page.click("[data-testid=close-force]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=round-4]').textContent.includes('fusing')"
    )
    assert "closed with 1 of 5 chosen slices labelled" in page.inner_text("#status")
    labels = page.inner_text("[data-testid=labels-4]")
    assert "chosen 5, labelled 1" in labels
    assert "trains on about 4 labelled slices (1 from this round)" in labels
    with Session(engine) as session:
        fourth = session.exec(select(Round).where(Round.number == 4)).one()
    engine.dispose()
    assert fourth.status is RoundStatus.fusing
    assert fourth.strategy == "random_fg"
    assert len(fourth.selected) == 5
    assert errors == []
