"""A rater's own counters: answers today and in all, and slices given back, from the database
so they survive a reload, a second device and a crash (the studio counted in the page, and a
volunteer with 21 answers read "0 done" after a reload)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from backend.annotations.models import Annotation
from backend.core.db import table_of
from backend.core.timeutil import utcnow
from backend.tasks.models import Assignment, AssignmentState, TaskReport

ANNOTATIONS = table_of(Annotation)
ASSIGNMENTS = table_of(Assignment)
REPORTS = table_of(TaskReport)


@dataclass(frozen=True)
class Progress:
    answers: int
    answers_today: int
    skipped: int
    skipped_today: int
    reported: int


def day_start(utc_offset_minutes: int, now: datetime | None = None) -> datetime:
    """The UTC instant at which the caller's day began, for a clock ``utc_offset_minutes``
    ahead of UTC (``-new Date().getTimezoneOffset()`` in a browser)."""
    offset = timedelta(minutes=utc_offset_minutes)
    local = (now or utcnow()).astimezone(UTC) + offset
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - offset


def progress(*, session: Session, user_id: int, since: datetime) -> Progress:
    """The counters of ``user_id``; "today" is from ``since`` on.

    Answers are the rater's stored annotations (a skip or a report never counts as one).
    Skipped counts every lease given back without an answer: skips and reports (a report
    releases the lease too), and the few a server ended (a suspension, a case held out); a
    given-back lease's expiry is set to the moment it was given back, which dates it.
    """
    answers, answers_today = session.execute(
        select(
            func.count(),
            func.count().filter(ANNOTATIONS.c.created_at >= since),
        ).where(ANNOTATIONS.c.user_id == user_id)
    ).one()
    skipped, skipped_today = session.execute(
        select(
            func.count(),
            func.count().filter(ASSIGNMENTS.c.lease_expires_at >= since),
        ).where(
            ASSIGNMENTS.c.user_id == user_id,
            ASSIGNMENTS.c.state == AssignmentState.skipped,
        )
    ).one()
    reported = session.execute(
        select(func.count()).where(REPORTS.c.user_id == user_id)
    ).scalar_one()
    return Progress(
        answers=answers,
        answers_today=answers_today,
        skipped=skipped,
        skipped_today=skipped_today,
        reported=reported,
    )
