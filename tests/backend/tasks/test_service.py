"""Lease rules: expiry returns slots to the pool, no rater gets a task twice, priorities."""

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from backend.annotations.masks import encode_rle
from backend.auth import service as auth
from backend.auth.models import User
from backend.core.errors import Conflict
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.tasks import service
from backend.tasks.models import Task, TaskState
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_tasks, rle, submit

LEASE = 600


def _users(session: Session, n: int) -> list[User]:
    return [
        auth.create_user(session=session, email=f"u{i}@example.org", password=PASSWORD)
        for i in range(n)
    ]


def test_expired_lease_returns_the_slot_to_the_pool(
    migrated_engine: Engine, storage: Storage
) -> None:
    now = utcnow()
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1, required_labels=1)
        first, second = _users(session, 2)
        lease = service.next_task(session=session, user=first, lease_seconds=LEASE, now=now)
        assert lease is not None
        assert lease.task.id == task.id
        # While the lease lasts the only slot is taken.
        assert service.next_task(session=session, user=second, lease_seconds=LEASE, now=now) is None
        later = now + timedelta(seconds=LEASE + 1)
        again = service.next_task(session=session, user=second, lease_seconds=LEASE, now=later)
        assert again is not None
        assert again.task.id == task.id
        # The first rater's late answer is refused: the slot went to someone else.
        with pytest.raises(Conflict, match="ran out"):
            submit(session, storage, first, lease, now=later)  # type: ignore[arg-type]


def test_late_answer_is_kept_while_a_slot_is_free(
    migrated_engine: Engine, storage: Storage
) -> None:
    now = utcnow()
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1, required_labels=2)
        (rater,) = _users(session, 1)
        lease = service.next_task(session=session, user=rater, lease_seconds=LEASE, now=now)
        assert lease is not None
        late = now + timedelta(seconds=LEASE * 3)
        mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        mask[2:5, 3:9] = 1
        result = submit(
            session,
            storage,
            rater,
            lease,
            mask=rle(encode_rle(mask)),
            key="late-1",
            now=late,  # type: ignore[arg-type]
        )
        assert result.annotation.lesion_pixels == 18
        assert storage.exists(result.annotation.mask_key)


def test_a_rater_never_gets_a_task_twice_and_tasks_complete(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        tasks = create_tasks(session, storage, count=2, required_labels=2)
        raters = _users(session, 3)
        seen: dict[int, list[int]] = {}
        for rater in raters:
            while lease := service.next_task(session=session, user=rater, lease_seconds=LEASE):
                assert lease.task.id is not None
                assert rater.id not in seen.get(lease.task.id, [])
                seen.setdefault(lease.task.id, []).append(rater.id)  # type: ignore[arg-type]
                submit(session, storage, rater, lease)
        assert sorted(len(v) for v in seen.values()) == [2, 2]
        for task in tasks:
            session.refresh(task)
            assert task.state is TaskState.complete


def test_higher_priority_tasks_come_first(migrated_engine: Engine, storage: Storage) -> None:
    with Session(migrated_engine) as session:
        low, high = create_tasks(session, storage, count=2, required_labels=1)
        high.priority = 5.0
        session.add(high)
        (rater,) = _users(session, 1)
        lease = service.next_task(session=session, user=rater, lease_seconds=LEASE)
        assert lease is not None
        assert lease.task.id == high.id
        assert isinstance(low, Task)
