"""Many raters asking for and submitting tasks at once: exact label counts, nothing lost."""

import threading
from collections import Counter

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.auth import service as auth
from backend.auth.models import User
from backend.core.storage import Storage
from backend.tasks import service
from backend.tasks.models import Task, TaskState
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_tasks, rle, submit

TASKS, REQUIRED, RATERS, FLAKY = 12, 3, 8, 2


def _rater(engine: Engine, storage: Storage, user: User, errors: list[BaseException]) -> None:
    try:
        while True:
            with Session(engine, expire_on_commit=False) as session:
                lease = service.next_task(session=session, user=user, lease_seconds=600)
                session.commit()
            if lease is None:
                return
            assert lease.task.id is not None
            mask = rle([user.id or 0, 1, WIDTH * HEIGHT - (user.id or 0) - 1])
            key = f"{user.id}-{lease.task.id}"
            for _attempt in range(2):  # the client retries: the second call is a replay
                with Session(engine, expire_on_commit=False) as session:
                    submit(session, storage, user, lease, mask=mask, key=key)
                    session.commit()
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)


def _flaky(engine: Engine, user: User, errors: list[BaseException]) -> None:
    # Takes leases that lapse at once and never answers: its slots must return to the pool.
    try:
        for _ in range(10):
            with Session(engine) as session:
                service.next_task(session=session, user=user, lease_seconds=0)
                session.commit()
    except BaseException as exc:
        errors.append(exc)


def test_concurrent_raters_fill_every_task_exactly(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine, expire_on_commit=False) as session:
        create_tasks(session, storage, count=TASKS, required_labels=REQUIRED)
        users = [
            auth.create_user(session=session, email=f"r{i}@example.org", password=PASSWORD)
            for i in range(RATERS + FLAKY)
        ]
        session.commit()
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_rater, args=(migrated_engine, storage, u, errors))
        for u in users[:RATERS]
    ] + [threading.Thread(target=_flaky, args=(migrated_engine, u, errors)) for u in users[RATERS:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a rater thread hung"
    assert errors == []

    with Session(migrated_engine) as session:
        per_task = Counter(session.exec(select(Annotation.task_id)).all())
        assert sorted(per_task.values()) == [REQUIRED] * TASKS
        states = session.exec(select(Task.state, func.count()).group_by(Task.state)).all()
        assert dict(states) == {TaskState.complete: TASKS}
        pairs = session.exec(select(Annotation.task_id, Annotation.user_id)).all()
        assert len(set(pairs)) == len(pairs) == TASKS * REQUIRED
        keys = session.exec(select(Annotation.mask_key)).all()
    # Every stored mask belongs to an annotation, and every annotation has its mask.
    assert sorted(storage.list("annotations")) == sorted(keys)
