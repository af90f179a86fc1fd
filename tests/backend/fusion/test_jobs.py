"""The fusion job end to end: the answer that completes a task is committed, the job goes
through a real broker to a real worker process, and the worker fuses the task and applies
adaptive redundancy; on PostgreSQL with Redis (production) and on the embedded default."""

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.core.config import Settings
from backend.core.db import create_db_engine, transaction
from backend.core.migrations import upgrade
from backend.core.outbox import OutboxJob, Relay, celery_sender
from backend.core.storage import Storage
from backend.fusion.models import FusionResult
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskState
from backend.worker import create_celery
from tests.backend.quality.test_gold import _mask_rle, _normal_tasks, _square_masks, create_case
from tests.backend.test_worker import _worker
from tests.factories import PASSWORD, create_project, submit


def _wait_for_result(engine: Engine, task_id: int, timeout: float = 60) -> FusionResult:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(engine) as session:
            found = session.exec(select(FusionResult).where(FusionResult.task_id == task_id))
            result = found.first()
            if result is not None and result.decision is not None:
                return result
        time.sleep(0.2)
    raise AssertionError(f"no fused result for task {task_id} after {timeout} s")


@pytest.mark.parametrize(
    "broker", [pytest.param("redis", marks=pytest.mark.postgres), pytest.param("embedded")]
)
def test_a_completed_task_is_fused_by_a_real_worker(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if broker == "redis":
        database_url = request.getfixturevalue("pg_url")
        broker_url = request.getfixturevalue("redis_url")
    else:
        database_url, broker_url = f"sqlite:///{tmp_path / 'mscrowd.sqlite'}", ""
    settings = Settings(
        database_url=database_url,
        broker_url=broker_url,
        data_dir=tmp_path / "var",
        storage_url=(tmp_path / "storage").as_uri(),
    )
    if broker == "redis":
        create_celery(settings).control.purge()  # nothing left over from an earlier run
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    storage = Storage(settings.storage_url)
    with transaction(engine) as session:
        project = create_project(session, min_labels=3)
        (truth,) = _square_masks(1)
        (task,) = _normal_tasks(session, project, create_case(session, storage, project, [truth]))
        users = [
            auth.create_user(session=session, email=f"w{n}@example.org", password=PASSWORD)
            for n in range(3)
        ]
    relay = Relay(engine, celery_sender(settings))
    env = {
        "MSCROWD_DATABASE_URL": settings.database_url,
        "MSCROWD_BROKER_URL": broker_url,
        "MSCROWD_DATA_DIR": str(settings.data_dir),
        "MSCROWD_STORAGE_URL": settings.storage_url,
    }
    try:
        with _worker(**env):
            for user in users:  # three agreeing answers: the last one completes the task
                with transaction(engine, relay) as session:
                    lease = tasks.next_task(session=session, user=user, lease_seconds=600)
                    assert lease is not None
                    submit(session, storage, user, lease, mask=_mask_rle(truth))
            result = _wait_for_result(engine, task.id or 0)
        assert result.decision == "retire"
        assert result.raters == [u.id for u in users]
        with Session(engine) as session:
            assert session.get_one(Task, task.id).state is TaskState.complete
            # Sent and forgotten: the outbox is empty.
            assert session.exec(select(func.count()).select_from(OutboxJob)).one() == 0
    finally:
        engine.dispose()
