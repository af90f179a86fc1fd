"""Handing out tasks under leases, safely under concurrency.

A task has ``required_labels`` slots. A slot is taken by a submitted assignment or by an active
lease that has not expired; an expired lease frees its slot without any sweeper. Every writer
that counts slots first locks the task row (``SELECT ... FOR UPDATE`` on PostgreSQL, the
database write lock on SQLite), so two raters can never both take the last slot.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.auth.models import EXPERT_ROLES, User
from backend.core.db import serialize_writers
from backend.core.errors import NotFound
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, ConsentScope, Slice
from backend.tasks.models import Assignment, AssignmentState, Task, TaskKind, TaskState

# How many locked-but-full candidates to step over before giving up for this request.
MAX_CANDIDATES = 50


@dataclass(frozen=True)
class Lease:
    task: Task
    slice: Slice
    case: Case
    assignment: Assignment


def slot_taken(now: datetime) -> ColumnElement[bool]:
    """Assignments that hold a slot: submitted, or leased and not yet expired."""
    return or_(
        col(Assignment.state) == AssignmentState.submitted,
        and_(
            col(Assignment.state) == AssignmentState.active,
            col(Assignment.lease_expires_at) > now,
        ),
    )


def taken_slots(session: Session, task_id: int, now: datetime) -> int:
    """Slots of ``task_id`` held right now (a fresh read: call it with the task locked)."""
    query = select(func.count()).where(Assignment.task_id == task_id, slot_taken(now))
    return int(session.exec(query).one())


def lock_task(session: Session, task_id: int) -> Task:
    """The task, locked for this transaction; ``NotFound`` when it does not exist."""
    serialize_writers(session)
    task = session.exec(select(Task).where(Task.id == task_id).with_for_update()).first()
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    return task


def _load(session: Session, task: Task, assignment: Assignment) -> Lease:
    slice_ = session.get(Slice, task.slice_id)
    assert slice_ is not None
    case = session.get(Case, slice_.case_id)
    assert case is not None
    return Lease(task=task, slice=slice_, case=case, assignment=assignment)


def _current_lease(session: Session, user_id: int, now: datetime) -> tuple[Assignment, Task] | None:
    query = (
        select(Assignment, Task)
        .join(Task, col(Task.id) == Assignment.task_id)
        .where(
            Assignment.user_id == user_id,
            Assignment.state == AssignmentState.active,
            col(Assignment.lease_expires_at) > now,
            Task.state == TaskState.open,
        )
        .order_by(col(Assignment.leased_at))
    )
    row = session.exec(query).first()
    return (row[0], row[1]) if row is not None else None


def next_task(
    *,
    session: Session,
    user: User,
    lease_seconds: int,
    project_id: int | None = None,
    now: datetime | None = None,
) -> Lease | None:
    """Lease the caller one open task they have not labelled, or None when there is none.

    A caller who already holds an unexpired lease gets that task again (a page reload must
    not take a second slot). None means no task has a free slot for this caller: a task whose
    row a concurrent transaction holds is waited for, not passed over, since that transaction
    may leave a slot free. Slots are counted at the time the lock is held (``now`` only fixes
    the clock for tests): a lease that lapsed while we waited for the lock is free.
    """
    assert user.id is not None
    serialize_writers(session)

    def clock() -> datetime:
        return now if now is not None else utcnow()

    held = _current_lease(session, user.id, clock())
    if held is not None:
        assignment, task = held
        if project_id is None or task.project_id == project_id:
            return _load(session, task, assignment)
    waits = session.get_bind().dialect.name == "postgresql"
    skipped: list[int] = []
    for _ in range(MAX_CANDIDATES):
        # Built afresh each time: its clock must not be older than the snapshot it reads.
        query = _candidates(user, project_id, clock())
        if skipped:
            query = query.where(col(Task.id).not_in(skipped))
        candidate = session.exec(query.with_for_update(skip_locked=True)).first()
        if candidate is not None:
            lease = _try_lease(session, candidate, user.id, clock(), lease_seconds)
        elif waits:
            # Every free-looking task is locked by a concurrent lease or submission (they take
            # milliseconds). Wait for the first one inside a savepoint, so that if it turns out
            # full its lock is released again before we look further.
            savepoint = session.begin_nested()
            candidate = session.exec(query.with_for_update()).first()
            if candidate is None:
                savepoint.commit()
                return None
            lease = _try_lease(session, candidate, user.id, clock(), lease_seconds)
            if lease is None:
                savepoint.rollback()
            else:
                savepoint.commit()
        else:
            return None
        if lease is not None:
            return lease
        assert candidate.id is not None
        skipped.append(candidate.id)
    return None


def _candidates(user: User, project_id: int | None, now: datetime) -> SelectOfScalar[Task]:
    """Open tasks with a free slot (as of the statement's snapshot) in queue order."""
    taken = (
        select(func.count())
        .where(col(Assignment.task_id) == Task.id, slot_taken(now))
        .correlate(Task)
        .scalar_subquery()
    )
    mine = exists().where(
        col(Assignment.task_id) == Task.id,
        col(Assignment.user_id) == user.id,
        col(Assignment.state) == AssignmentState.submitted,
    )
    candidates = (
        select(Task)
        .where(
            Task.state == TaskState.open,
            Task.kind != TaskKind.practice,
            ~mine,
            taken < Task.required_labels,
        )
        # Both descending, so an index on (priority, id) serves it read backwards.
        .order_by(col(Task.priority).desc(), col(Task.id).desc())
        .limit(1)
    )
    if project_id is not None:
        candidates = candidates.where(Task.project_id == project_id)
    if user.role not in EXPERT_ROLES:
        # NOT IN (a hashed subplan, built once) keeps the walk along the queue index; NOT EXISTS
        # would become an anti-join over every open task.
        restricted = (
            select(Slice.id)
            .join(Case, col(Case.id) == Slice.case_id)
            .where(Case.consent_scope == ConsentScope.restricted)
        )
        candidates = candidates.where(col(Task.slice_id).not_in(restricted))
    return candidates


def _try_lease(
    session: Session, task: Task, user_id: int, now: datetime, lease_seconds: int
) -> Lease | None:
    """Lease ``task`` (locked by the caller) when a slot is free under the lock, else None."""
    assert task.id is not None
    # The candidate query saw a snapshot taken before we held the lock; count again.
    if taken_slots(session, task.id, now) >= task.required_labels:
        return None
    return _load(session, task, _lease(session, task.id, user_id, now, lease_seconds))


def _lease(
    session: Session, task_id: int, user_id: int, now: datetime, lease_seconds: int
) -> Assignment:
    expires = now + timedelta(seconds=lease_seconds)
    assignment = session.exec(
        select(Assignment).where(Assignment.task_id == task_id, Assignment.user_id == user_id)
    ).first()
    if assignment is None:
        assignment = Assignment(
            task_id=task_id, user_id=user_id, leased_at=now, lease_expires_at=expires
        )
    else:  # the caller's own earlier lease on this task expired; renew it
        assignment.leased_at = now
        assignment.lease_expires_at = expires
    session.add(assignment)
    session.flush()
    return assignment


def neighbours(session: Session, slice_: Slice, reach: int = 2) -> list[Slice]:
    """Slices of the same case and axis within ``reach`` of ``slice_``, in index order."""
    query = (
        select(Slice)
        .where(
            Slice.case_id == slice_.case_id,
            Slice.axis == slice_.axis,
            col(Slice.index).between(slice_.index - reach, slice_.index + reach),
            Slice.id != slice_.id,
        )
        .order_by(col(Slice.index))
    )
    return list(session.exec(query).all())
