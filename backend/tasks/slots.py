"""A task's slots: ``required_labels`` of them, each taken by a submitted crowd answer or an
unexpired lease. Every writer of a task's assignments locks the task row and, in the same
transaction, brings its slot columns up to date (``refresh_slots``), so the queue can tell a
free task by its row alone (see ``backend.tasks.service``)."""

from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    update,
)
from sqlmodel import Session

from backend.core.db import table_of
from backend.tasks.models import (
    Assignment,
    AssignmentState,
    Task,
    TaskKind,
    TaskState,
)

TASKS = table_of(Task)
ASSIGNMENTS = table_of(Assignment)


def const(value: StrEnum) -> ColumnElement[Any]:
    """An enum value written into the SQL text (see the module docstring)."""
    return literal_column(f"'{value.value}'")


class SlotState(NamedTuple):
    state: TaskState
    submitted_labels: int
    full_until: datetime | None


@cache
def _refresh_statement() -> Update:
    """UPDATE deriving a task's slot columns from its assignments (see ``Task``).

    ``full_until`` is the k-th latest expiry among active leases, k being the slots not yet
    answered: until then k unexpired leases hold every free slot. Written as counts rather than
    ``OFFSET k - 1`` so one statement serves PostgreSQL and SQLite.
    """
    s, a, b = ASSIGNMENTS.alias("s"), ASSIGNMENTS.alias("a"), ASSIGNMENTS.alias("b")
    active, submitted_state = const(AssignmentState.active), const(AssignmentState.submitted)
    crowd: ColumnElement[Any] = literal_column("false")  # experts' assignments take no slot
    submitted = (
        select(func.count())
        .where(s.c.task_id == TASKS.c.id, s.c.state == submitted_state, s.c.expert == crowd)
        # Explicit: it is also used two levels down, where auto-correlation would not reach
        # the updated row and would count every task's answers.
        .correlate(TASKS)
        .scalar_subquery()
    )
    at_or_after = (
        select(func.count())
        .where(
            b.c.task_id == TASKS.c.id,
            b.c.state == active,
            b.c.expert == crowd,
            b.c.lease_expires_at >= a.c.lease_expires_at,
        )
        .correlate(TASKS, a)
        .scalar_subquery()
    )
    full_until = (
        select(func.max(a.c.lease_expires_at))
        .where(
            a.c.task_id == TASKS.c.id,
            a.c.state == active,
            a.c.expert == crowd,
            at_or_after >= TASKS.c.required_labels - submitted,
        )
        .scalar_subquery()
    )
    becomes_complete = and_(
        TASKS.c.state == const(TaskState.open),
        TASKS.c.kind != const(TaskKind.gold),  # gold is answered by every volunteer once
        submitted >= TASKS.c.required_labels,
    )
    return (
        update(TASKS)
        .where(TASKS.c.id == bindparam("slot_task"))
        .values(
            submitted_labels=submitted,
            full_until=full_until,
            state=case((becomes_complete, const(TaskState.complete)), else_=TASKS.c.state),
        )
        .returning(TASKS.c.state, TASKS.c.submitted_labels, TASKS.c.full_until)
    )


def refresh_slots(session: Session, task_id: int) -> SlotState:
    """Bring the task's slot columns (and open -> complete) in line with its assignments.

    Call it, with the task locked, in every transaction that changes the task's assignments.
    Returns the new values; ORM-loaded copies of the task are not updated.
    """
    row = session.execute(_refresh_statement(), {"slot_task": task_id}).one()
    return SlotState(TaskState(row[0]), row[1], row[2])


def has_free_slot(state: TaskState, full_until: datetime | None, now: datetime) -> bool:
    """Whether a task with these (current) slot columns has a slot free at ``now``."""
    return state is TaskState.open and (full_until is None or full_until <= now)
