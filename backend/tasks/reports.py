"""Volunteers' problem reports: stored on the slice of a lease (which they release), listed
for experts, resolved; limited to one per task and a bounded number an hour.

Reports are read by experts, so each one costs a person's time: a volunteer could file 30 on
one skipped task. The per-hour count lives in the login throttle's table (one row per
account, kept exact under concurrency by its row lock, pruned hourly with the rest).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from backend.auth import throttle
from backend.auth.models import User
from backend.core.db import table_of
from backend.core.errors import Conflict, NotFound, TooManyAttempts
from backend.core.text import normalise_text
from backend.core.timeutil import utcnow
from backend.imaging.models import SliceAxis
from backend.tasks.models import (
    ReportReason,
    TaskReport,
)
from backend.tasks.queue import CASES, SLICES, TASKS
from backend.tasks.service import release

REPORT_WINDOW = timedelta(hours=1)
# Longest note stored (the column's length).
NOTE_LENGTH = 500


class AlreadyReported(Conflict):
    """The volunteer already reported this task (``already_reported``)."""


class TooManyReports(TooManyAttempts):
    """The volunteer filed the reports allowed this hour (``too_many_reports``)."""


def report_key(user_id: int) -> str:
    """The throttle key counting ``user_id``'s"""
    return f"report:user:{user_id}"


def admit_report(
    session: Session, *, task_id: int, user_id: int, per_hour: int, now: datetime
) -> None:
    """Count a new report of ``user_id`` on ``task_id``, or refuse it: ``AlreadyReported``
    for a second one on the task, ``TooManyReports`` past ``per_hour`` in the hour."""
    earlier = select(table_of(TaskReport).c.id).where(
        table_of(TaskReport).c.task_id == task_id, table_of(TaskReport).c.user_id == user_id
    )
    if session.execute(earlier).first() is not None:
        raise AlreadyReported("You already reported this task; experts will look at it")
    wait = throttle.take(
        session, report_key(user_id), limit=per_hour, window=REPORT_WINDOW, now=now
    )
    if wait:
        raise TooManyReports(
            f"You have sent {per_hour} reports this hour; skip the task instead, or report "
            f"again in {wait // 60 + 1} min",
            retry_after=wait,
        )


def report_problem(
    *,
    session: Session,
    user_id: int,
    lease_id: int,
    reason: ReportReason,
    note: str,
    per_hour: int = 30,
    now: datetime | None = None,
) -> TaskReport:
    """Store the caller's problem report on the slice of their lease and release the lease
    (a reported slice is not theirs to label any more). One report per task and caller
    (``AlreadyReported``), at most ``per_hour`` an hour (``TooManyReports``); the note is
    stored as ``normalise_text`` leaves it (no direction-changing or invisible characters)."""
    now = now or utcnow()
    released = release(session=session, user_id=user_id, lease_id=lease_id, now=now)
    # The task's row is locked by release: two reports of one task cannot both pass.
    admit_report(session, task_id=released.task_id, user_id=user_id, per_hour=per_hour, now=now)
    report = TaskReport(
        task_id=released.task_id,
        slice_id=released.slice_id,
        user_id=user_id,
        reason=reason,
        note=normalise_text(note)[:NOTE_LENGTH],
        created_at=now,
    )
    session.add(report)
    session.flush()
    return report


@dataclass(frozen=True)
class ReportRow:
    report: TaskReport
    project_id: int
    case_public_id: str
    slice_index: int
    axis: str
    reporter: str


def list_reports(
    *,
    session: Session,
    project_id: int | None,
    unresolved: bool,
    limit: int,
    report_id: int | None = None,
) -> list[ReportRow]:
    """Problem reports, newest first, with their slice and reporter's pseudonym (or the one
    report ``report_id``)."""
    table, users = table_of(TaskReport), table_of(User)
    query = (
        select(
            table.c.id,
            TASKS.c.project_id,
            CASES.c.public_id,
            SLICES.c.index,
            SLICES.c.axis,
            users.c.display_name,
        )
        .select_from(
            table.join(TASKS, TASKS.c.id == table.c.task_id)
            .join(SLICES, SLICES.c.id == table.c.slice_id)
            .join(CASES, CASES.c.id == SLICES.c.case_id)
            .join(users, users.c.id == table.c.user_id)
        )
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(limit)
    )
    if project_id is not None:
        query = query.where(TASKS.c.project_id == project_id)
    if unresolved:
        query = query.where(table.c.resolved_at.is_(None))
    if report_id is not None:
        query = query.where(table.c.id == report_id)
    rows = session.execute(query).all()
    found = {
        r.id: r
        for r in session.exec(
            sm_select(TaskReport).where(col(TaskReport.id).in_([row[0] for row in rows]))
        )
    }
    return [
        ReportRow(found[row[0]], row[1], row[2], row[3], SliceAxis(row[4]).value, row[5])
        for row in rows
    ]


def resolve_report(*, session: Session, report_id: int, now: datetime | None = None) -> TaskReport:
    """Mark a report as looked at by an expert (again: keeps the first time)."""
    report = session.get(TaskReport, report_id)
    if report is None:
        raise NotFound(f"No report {report_id}")
    if report.resolved_at is None:
        report.resolved_at = now or utcnow()
        session.add(report)
        session.flush()
    return report
