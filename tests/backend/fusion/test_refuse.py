"""Excluded raters leave fused labels: ``refuse_rater`` re-fuses a rater's tasks when they are
suspended or reinstated, a task left with too few usable answers gets a withdrawn version and
collects answers again, project runs never leave a stale label carrying an excluded rater,
and stale pooled rates are refitted. On PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.annotations.sweep import check
from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine, transaction
from backend.core.migrations import upgrade
from backend.core.outbox import Relay
from backend.core.storage import Storage
from backend.fusion import FUSE_PROJECT, REFRESH_RATES, jobs, labels
from backend.fusion import service as fusion
from backend.fusion.models import FusionResult, FusionRun
from backend.main import create_app
from backend.quality import service as quality
from backend.quality.reliability import SPECIFICITY_PRIOR
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskState
from backend.worker import celery_app
from tests.backend.core.test_outbox import Broker
from tests.backend.quality.test_gold import _mask_rle, _normal_tasks, _square_masks, create_case
from tests.factories import PASSWORD, create_project, create_token, submit

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL database."""
    made = create_db_engine(pg_url)
    upgrade(made)
    yield made
    made.dispose()


@pytest.fixture
def api(
    engine: Engine, pg_url: str, settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[TestClient]:
    """An API client on that database and the test storage folder."""
    settings = Settings(database_url=pg_url, storage_url=(tmp_path / "storage").as_uri())
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


def crowd(
    engine: Engine, storage: Storage, raters: int, tasks_: int = 2
) -> tuple[int, list[int], list[User], User]:
    """A committed project (``min_labels`` = ``raters``) of ``tasks_`` crowd tasks, each
    answered alike by every one of ``raters`` volunteers and fused when complete (as the job
    does): each retires; (project id, task ids, volunteers, an expert)."""
    with transaction(engine) as session:
        project = create_project(session, min_labels=raters)
        masks = _square_masks(tasks_)
        slices = create_case(session, storage, project, masks)
        made = _normal_tasks(session, project, slices)
        truth = {s.id: m for s, m in zip(slices, masks, strict=True)}
        volunteers = [
            auth.create_user(session=session, email=f"r{n}@example.org", password=PASSWORD)
            for n in range(raters)
        ]
        expert = auth.create_user(session=session, email="rx@example.org", password=PASSWORD)
        expert.role = UserRole.expert
        session.add(expert)
        for user in volunteers:
            while lease := tasks.next_task(session=session, user=user, lease_seconds=600):
                mask = truth[lease.task.slice_id]
                submit(session, storage, user, lease, mask=_mask_rle(mask))
        project_id, task_ids = project.id or 0, [t.id or 0 for t in made]
    for task_id in task_ids:
        with transaction(engine) as session:
            fusion.fuse_task(session=session, storage=storage, task_id=task_id)
    return project_id, task_ids, volunteers, expert


def exclude(engine: Engine, project_id: int, user: User, by: User, suspend: bool = True) -> None:
    """An expert suspends (or reinstates) ``user``; then the job the quality service defers
    for it runs, as the worker would."""
    with transaction(engine) as session:
        quality.set_suspension(
            session=session,
            project_id=project_id,
            user_id=user.id or 0,
            suspend=suspend,
            reason="test",
            expert_id=by.id or 0,
        )


def refuse(engine: Engine, storage: Storage, project_id: int, user: User) -> list[FusionResult]:
    with transaction(engine) as session:
        return fusion.refuse_rater(
            session=session, storage=storage, project_id=project_id, user_id=user.id or 0
        )


def newest(engine: Engine, task_id: int) -> FusionResult:
    with Session(engine) as session:
        return labels.results(session, task_id)[0]


def versions(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(FusionResult)).one()


def state(engine: Engine, task_id: int) -> tuple[TaskState, int]:
    with Session(engine) as session:
        task = session.get_one(Task, task_id)
        return task.state, task.required_labels


def test_a_suspended_rater_leaves_the_newest_labels_and_comes_back_when_reinstated(
    engine: Engine, storage: Storage
) -> None:
    project_id, task_ids, (first, second, third), expert = crowd(engine, storage, raters=3)
    for task_id in task_ids:
        fused = newest(engine, task_id)
        assert (fused.version, fused.raters) == (1, [first.id, second.id, third.id])
        assert state(engine, task_id)[0] is TaskState.complete
        with Session(engine) as session:
            rates = session.get_one(FusionRun, fused.run_id).rater_rates
        # No project run yet: their gold priors' means, specificity on the near-vote scale
        # (the population prior says 0.995 over the whole brain).
        assert all(0.5 < q < SPECIFICITY_PRIOR.mean for _p, q in rates.values())
    exclude(engine, project_id, third, expert)
    done = refuse(engine, storage, project_id, third)
    assert sorted(r.task_id for r in done) == sorted(task_ids)
    for task_id in task_ids:
        fused = newest(engine, task_id)
        assert (fused.version, fused.raters, fused.withdrawn) == (2, [first.id, second.id], False)
        assert fused.decision == "wait"  # two labels of the three needed: one more wanted
        assert state(engine, task_id) == (TaskState.open, 4)
        with Session(engine) as session:
            run = session.get_one(FusionRun, fused.run_id)
        assert run.excluded == [third.id]
    count = versions(engine)
    assert [r.id for r in refuse(engine, storage, project_id, third)] == [r.id for r in done]
    assert versions(engine) == count  # the job run twice changes nothing
    exclude(engine, project_id, third, expert, suspend=False)
    back = refuse(engine, storage, project_id, third)
    for task_id in task_ids:
        fused = newest(engine, task_id)
        assert (fused.version, fused.raters) == (3, [first.id, second.id, third.id])
    assert [r.id for r in refuse(engine, storage, project_id, third)] == [r.id for r in back]
    assert versions(engine) == count + len(task_ids)
    # A rater who answered nothing there, and a project that is gone: nothing to do.
    assert refuse(engine, storage, project_id, expert) == []
    assert refuse(engine, storage, 999_999, third) == []


def test_too_few_usable_answers_withdraw_the_label_and_reopen_the_task(
    engine: Engine, storage: Storage, api: TestClient
) -> None:
    project_id, task_ids, (first, second), expert = crowd(engine, storage, raters=2)
    task_id = task_ids[0]
    assert newest(engine, task_id).raters == [first.id, second.id]
    exclude(engine, project_id, second, expert)
    refuse(engine, storage, project_id, second)
    withdrawn = newest(engine, task_id)
    assert (withdrawn.version, withdrawn.withdrawn, withdrawn.soft_key) == (2, True, None)
    assert (withdrawn.raters, withdrawn.annotation_ids, withdrawn.uncertainty) == ([], [], None)
    # One usable answer of the two needed: the task collects one more.
    assert state(engine, task_id) == (TaskState.open, 3)
    count = versions(engine)
    refuse(engine, storage, project_id, second)
    assert versions(engine) == count  # withdrawn once, not again
    with Session(engine) as session:  # the storage check knows withdrawn versions have no file
        assert check(session=session, storage=storage).missing == []
    # fuse_task on the task (its completion job, sent again) withdraws nothing more either.
    with transaction(engine) as session:
        again = fusion.fuse_task(session=session, storage=storage, task_id=task_id)
        assert again is not None
        assert again.id == withdrawn.id
    # The API says so and serves no label.
    with Session(engine) as session:
        header = {"Authorization": f"Bearer {create_token(session, expert)}"}
        session.commit()
    read = api.get(f"/api/fusion/tasks/{task_id}", headers=header)
    assert read.status_code == 200, read.text
    body = read.json()
    assert (body["withdrawn"], body["soft_url"], body["hard_url"]) == (True, None, None)
    assert body["excluded"] == [second.id]
    assert body["versions"] == [2, 1]
    soft = api.get(f"/api/fusion/tasks/{task_id}/soft.png", headers=header)
    assert soft.status_code == 404
    assert "withdrawn" in soft.json()["detail"]
    old = api.get(f"/api/fusion/tasks/{task_id}/hard.png?version=1", headers=header)
    assert old.status_code == 200  # the old version stays, for provenance
    # Reinstated: a label again, with both raters (the task still collects its answer).
    exclude(engine, project_id, second, expert, suspend=False)
    refuse(engine, storage, project_id, second)
    back = newest(engine, task_id)
    assert (back.version, back.withdrawn, back.raters) == (3, False, [first.id, second.id])


def test_project_runs_leave_no_stale_label_with_an_excluded_rater(
    engine: Engine, storage: Storage
) -> None:
    project_id, task_ids, (first, second), expert = crowd(engine, storage, raters=2)
    with transaction(engine) as session:
        fusion.fuse_project(session=session, storage=storage, project_id=project_id)
    assert [newest(engine, t).version for t in task_ids] == [2, 2]
    exclude(engine, project_id, second, expert)
    # No refuse_rater job yet: the project run alone must not keep the second rater's label
    # as the newest (one usable answer: below min_answers, so not fused jointly).
    with transaction(engine) as session:
        run = fusion.fuse_project(session=session, storage=storage, project_id=project_id)
    assert run.slices == 0
    assert run.excluded == [second.id]
    for task_id in task_ids:
        assert newest(engine, task_id).withdrawn
        assert state(engine, task_id) == (TaskState.open, 3)
    count = versions(engine)
    refuse(engine, storage, project_id, second)
    assert versions(engine) == count
    with transaction(engine) as session:
        fusion.fuse_project(session=session, storage=storage, project_id=project_id)
    assert versions(engine) == count  # withdrawn labels stay withdrawn, nothing added
    assert first.id is not None


def test_stale_pooled_rates_are_refitted_once(
    engine: Engine, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id, _tasks, _volunteers, _expert = crowd(engine, storage, raters=3, tasks_=3)
    with Session(engine) as session:
        # Each task was fused complete once: three since the (absent) last project run.
        assert fusion.completed_since_last_run(session, project_id) == 3
        assert fusion.stale_projects(session, every=3) == [project_id]
        assert fusion.stale_projects(session, every=4) == []
    broker = Broker()
    monkeypatch.setattr(jobs, "job_resources", lambda: (engine, storage, Relay(engine, broker)))
    monkeypatch.setenv("MSCROWD_FUSE_PROJECT_EVERY", "3")
    get_settings.cache_clear()
    try:
        assert jobs.refresh_rates() == [project_id]
    finally:
        get_settings.cache_clear()
    assert broker.sent == [(FUSE_PROJECT, [project_id, 3])]
    # The conditional job refits once; sent twice (the beat fired again meanwhile), the
    # second finds the rates fresh.
    run_id = jobs.fuse_project(project_id, 3)
    assert run_id is not None
    assert jobs.fuse_project(project_id, 3) is None
    with Session(engine) as session:
        assert fusion.completed_since_last_run(session, project_id) == 0
        assert session.get_one(FusionRun, run_id).slices == 3
    # The beat runs the check; every job is registered under its name.
    schedule = celery_app.conf.beat_schedule
    assert schedule["refresh-fusion-rates"]["task"] == REFRESH_RATES
    assert {REFRESH_RATES, FUSE_PROJECT, "fusion.refuse_rater"} <= set(celery_app.tasks)
    assert schedule["refresh-fusion-rates"]["schedule"] > 0
