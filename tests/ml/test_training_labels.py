"""What training reads of the fused labels (``ml.jobs.training_labels``): the newest version of
complete crowd tasks only, never a withdrawn one, so a suspended rater's answers never reach
a model; on PostgreSQL."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session

from backend.auth import service as auth
from backend.core.db import create_db_engine, table_of, transaction
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.fusion import labels
from backend.fusion import service as fusion
from backend.fusion.models import FusionResult
from backend.quality import gold
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskState
from ml import jobs
from tests.backend.fusion.test_refuse import crowd, exclude, refuse
from tests.backend.quality.test_gold import _mask_rle
from tests.factories import PASSWORD, submit

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = create_db_engine(pg_url)
    upgrade(made)
    yield made
    made.dispose()


def trained_on(engine: Engine, project_id: int) -> dict[int, FusionResult]:
    """The fused versions training would read, by task."""
    with Session(engine) as session:
        ids = [f.result_id for f in jobs.training_labels(session, project_id)]
        found = [session.get_one(FusionResult, i) for i in ids]
    return {r.task_id: r for r in found}


def test_training_reads_complete_tasks_and_never_a_suspended_raters_label(
    engine: Engine, storage: Storage
) -> None:
    project_id, task_ids, (first, second), expert = crowd(engine, storage, raters=2, tasks_=3)
    used = trained_on(engine, project_id)
    assert sorted(used) == task_ids
    assert all(r.raters == [first.id, second.id] for r in used.values())
    # Tasks in the experts' review queue or still collecting answers are not trained on.
    with transaction(engine) as session:
        tasks_table = table_of(Task)
        for task_id, state in zip(task_ids[:2], (TaskState.review, TaskState.open), strict=True):
            session.execute(
                update(tasks_table).where(tasks_table.c.id == task_id).values(state=state)
            )
    assert sorted(trained_on(engine, project_id)) == task_ids[2:]
    with transaction(engine) as session:
        session.execute(
            update(table_of(Task))
            .where(table_of(Task).c.id.in_(task_ids[:2]))
            .values(state=TaskState.complete)
        )
    # The second rater is suspended: one usable answer each, every label withdrawn.
    exclude(engine, project_id, second, expert)
    refuse(engine, storage, project_id, second)
    assert trained_on(engine, project_id) == {}
    with Session(engine) as session:
        assert all(labels.results(session, t)[0].withdrawn for t in task_ids)
        # The versions made with them stay, for provenance, and are never read.
        assert all(second.id in labels.results(session, t)[1].raters for t in task_ids)
    # Reinstated: labels again, but the tasks still collect the answer they asked for.
    exclude(engine, project_id, second, expert, suspend=False)
    refuse(engine, storage, project_id, second)
    assert trained_on(engine, project_id) == {}
    with transaction(engine) as session:
        third = auth.create_user(session=session, email="t3@example.org", password=PASSWORD)
    with transaction(engine) as session:
        lease = tasks.next_task(session=session, user=third, lease_seconds=600)
        assert lease is not None
        answered = lease.task.id or 0
        mask = gold.read_mask(storage, labels.results(session, answered)[-1].soft_key or "")
        submit(session, storage, third, lease, mask=_mask_rle(mask))
    with transaction(engine) as session:
        fusion.fuse_task(session=session, storage=storage, task_id=answered)
    used = trained_on(engine, project_id)
    assert list(used) == [answered]
    assert used[answered].raters == [first.id, second.id, third.id]
