"""Handing out tasks under leases, safely under concurrency.

A task has ``required_labels`` slots. A slot is taken by a submitted assignment or by an active
lease that has not expired; an expired lease frees its slot without any sweeper. Every writer
of a task's assignments locks the task row first (``SELECT ... FOR UPDATE`` on PostgreSQL, the
database write lock on SQLite) and, in the same transaction, brings the row's slot columns up
to date (``refresh_slots``). The queue can then tell a free task by its row alone, and the
update is what makes concurrent leases safe: a task another transaction filled after our
snapshot is checked again, on its new version, before we may lock it.

These are the hottest statements of the app (issue 18), so they are SQLAlchemy Core built once
per process with bound parameters: no ORM identity map, no expression building per request,
and PostgreSQL runs them as prepared statements. Constants (task states) are written into the
SQL rather than bound, so the prepared statements' generic plans can still use the partial
queue index ``ix_tasks_open_queue`` (a bound ``state = $1`` cannot match its predicate).
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from backend.auth.models import EXPERT_ROLES, User, UserRole
from backend.core.db import serialize_writers, table_of
from backend.core.errors import Conflict, NotFound, PermissionDenied
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, ConsentScope, CropSize, Slice, SliceAxis
from backend.projects.models import Project
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel
from backend.tasks.models import (
    Assignment,
    AssignmentState,
    ReportReason,
    Task,
    TaskKind,
    TaskReport,
    TaskState,
)

# Slices either side of the leased one sent for scrolling context.
NEIGHBOUR_REACH = 2

TASKS = table_of(Task)
ASSIGNMENTS = table_of(Assignment)
SLICES = table_of(Slice)
CASES = table_of(Case)
PROJECTS = table_of(Project)
RATER_STATS = table_of(RaterStats)


def const(value: StrEnum) -> ColumnElement[Any]:
    """An enum value written into the SQL text (see the module docstring)."""
    return literal_column(f"'{value.value}'")


class Rater(Protocol):
    """Who asks for or answers a task: a ``User``, or the hot endpoints' ``Caller``."""

    @property
    def id(self) -> int | None: ...

    @property
    def role(self) -> UserRole: ...


class LeasedTask(NamedTuple):
    id: int
    project_id: int
    slice_id: int
    kind: TaskKind
    required_labels: int


@dataclass(frozen=True, slots=True)
class SliceView(CropSize):
    """What a rater's client needs of a slice (the leased one or a neighbour)."""

    id: int
    axis: SliceAxis
    index: int
    crop_x0: int
    crop_y0: int
    crop_x1: int
    crop_y1: int
    image_keys: dict[str, str]


@dataclass(frozen=True)
class Lease:
    id: int  # the assignment's id: what the rater's client knows the task by
    task: LeasedTask
    slice: SliceView
    neighbours: list[SliceView]  # same case and axis, within NEIGHBOUR_REACH, in index order
    lease_expires_at: datetime


class SlotState(NamedTuple):
    state: TaskState
    submitted_labels: int
    full_until: datetime | None


_TASK_COLUMNS = (
    TASKS.c.id,
    TASKS.c.project_id,
    TASKS.c.slice_id,
    TASKS.c.kind,
    TASKS.c.required_labels,
)


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


@cache
def _held_statement(in_project: bool) -> Select[Any]:
    """The caller's oldest unexpired lease on an open task."""
    query = (
        select(*_TASK_COLUMNS, ASSIGNMENTS.c.lease_expires_at, ASSIGNMENTS.c.id.label("lease"))
        .select_from(ASSIGNMENTS.join(TASKS, TASKS.c.id == ASSIGNMENTS.c.task_id))
        .where(
            ASSIGNMENTS.c.user_id == bindparam("user"),
            ASSIGNMENTS.c.state == const(AssignmentState.active),
            ASSIGNMENTS.c.lease_expires_at > bindparam("now"),
            TASKS.c.state == const(TaskState.open),
            ASSIGNMENTS.c.id != bindparam("after"),
        )
        .order_by(ASSIGNMENTS.c.leased_at)
        .limit(literal_column("1"))
    )
    if in_project:
        query = query.where(TASKS.c.project_id == bindparam("project"))
    return query


@cache
def _candidate_statement(
    in_project: bool, restricted_hidden: bool, wait: bool, expert: bool = False
) -> Select[Any]:
    """The first open normal task in queue order with a free slot at ``now`` that the user has
    not answered, skipped or holds, locked (``wait``: waiting for a locked one; else passing
    over locked ones). Their own expired lease does not count: it may be renewed."""
    mine = exists().where(
        ASSIGNMENTS.c.task_id == TASKS.c.id,
        ASSIGNMENTS.c.user_id == bindparam("user"),
        or_(
            ASSIGNMENTS.c.state != const(AssignmentState.active),
            ASSIGNMENTS.c.lease_expires_at > bindparam("now"),
        ),
    )
    query = (
        select(*_TASK_COLUMNS)
        .where(
            TASKS.c.state == const(TaskState.open),
            # Written as "not one of the other kinds": without statistics (a new table) the
            # planner takes "kind = 'normal'" for a rare value and sorts every open task
            # instead of walking the queue index (7 ms at 3,000 tasks, 50 ms at 13,000).
            TASKS.c.kind.not_in(
                [const(TaskKind.gold), const(TaskKind.repeat), const(TaskKind.practice)]
            ),
            ~mine,
        )
        # Both descending, so the queue index on (priority, id) serves it read backwards.
        .order_by(TASKS.c.priority.desc(), TASKS.c.id.desc())
        .limit(literal_column("1"))
        .with_for_update(skip_locked=not wait)
    )
    if not expert:  # experts take no slot, so a full task is still open to them
        query = query.where(
            or_(TASKS.c.full_until.is_(None), TASKS.c.full_until <= bindparam("now"))
        )
    if in_project:
        query = query.where(TASKS.c.project_id == bindparam("project"))
    if restricted_hidden:
        # NOT IN (a hashed subplan, built once) keeps the walk along the queue index; NOT EXISTS
        # would become an anti-join over every open task.
        restricted = (
            select(SLICES.c.id)
            .select_from(SLICES.join(CASES, CASES.c.id == SLICES.c.case_id))
            .where(CASES.c.consent_scope == const(ConsentScope.restricted))
        )
        query = query.where(TASKS.c.slice_id.not_in(restricted))
    return query


@cache
def _lease_statement(dialect: str) -> Insert:
    """Insert the caller's lease, or renew their own expired one (same task, same rater)."""
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(ASSIGNMENTS).values(
        task_id=bindparam("lease_task"),
        user_id=bindparam("lease_user"),
        state=const(AssignmentState.active),
        leased_at=bindparam("lease_at"),
        lease_expires_at=bindparam("lease_until"),
        expert=bindparam("lease_expert"),
    )
    return statement.on_conflict_do_update(
        index_elements=[ASSIGNMENTS.c.task_id, ASSIGNMENTS.c.user_id],
        set_={
            "leased_at": statement.excluded.leased_at,
            "lease_expires_at": statement.excluded.lease_expires_at,
        },
    ).returning(ASSIGNMENTS.c.id)


@cache
def _slices_statement() -> Select[Any]:
    """A slice and its neighbours within NEIGHBOUR_REACH (same case and axis), in index order."""
    target = SLICES.alias("target")
    reach = NEIGHBOUR_REACH
    return (
        select(
            SLICES.c.id,
            SLICES.c.axis,
            SLICES.c.index,
            SLICES.c.crop_x0,
            SLICES.c.crop_y0,
            SLICES.c.crop_x1,
            SLICES.c.crop_y1,
            SLICES.c.image_keys,
        )
        .select_from(target)
        .join(
            SLICES,
            and_(
                SLICES.c.case_id == target.c.case_id,
                SLICES.c.axis == target.c.axis,
                SLICES.c.index.between(target.c.index - reach, target.c.index + reach),
            ),
        )
        .where(target.c.id == bindparam("slice"))
        .order_by(SLICES.c.index)
    )


def _load(session: Session, lease_id: int, task: LeasedTask, expires: datetime) -> Lease:
    """The lease's slice and its neighbouring slices, in one query."""
    rows = session.execute(_slices_statement(), {"slice": task.slice_id}).all()
    views = [SliceView(*row) for row in rows]
    return Lease(
        id=lease_id,
        task=task,
        slice=next(v for v in views if v.id == task.slice_id),
        neighbours=[v for v in views if v.id != task.slice_id],
        lease_expires_at=expires,
    )


def _task(row: Any) -> LeasedTask:
    return LeasedTask(row[0], row[1], row[2], TaskKind(row[3]), row[4])


class RaterSuspended(PermissionDenied):
    """The rater is suspended in the project: no more real tasks until an expert reinstates."""


def gold_rate(answered: int, schedule: Sequence[Sequence[float]], base_rate: float) -> float:
    """The share of gold for a volunteer's next task after ``answered`` answers: the rate of
    the first schedule step ``[below, rate]`` with ``answered < below``, else ``base_rate``."""
    for below, rate in schedule:
        if answered < below:
            return float(rate)
    return base_rate


@cache
def _personal_statement(in_project: bool, restricted_hidden: bool) -> Select[Any]:
    """One row about the caller: answers given and suspension (``rater_stats``), a random gold
    task on a slice they have never had (with its project's gold schedule), and their first
    repeat task (with the answer count it is due after)."""
    stats = select(
        func.coalesce(func.sum(RATER_STATS.c.answered), 0).label("answered"),
        func.max(
            case(
                (RATER_STATS.c.trust == const(TrustLevel.suspended), RATER_STATS.c.suspended_reason)
            )
        ).label("suspended"),
    ).where(RATER_STATS.c.user_id == bindparam("user"))
    seen_task, seen = TASKS.alias("seen_task"), ASSIGNMENTS.alias("seen")
    seen_slices = (
        select(seen_task.c.slice_id)
        .select_from(seen.join(seen_task, seen_task.c.id == seen.c.task_id))
        .where(seen.c.user_id == bindparam("user"))
    )
    gold = (
        select(
            TASKS.c.id.label("gold_task"),
            PROJECTS.c.gold_rate,
            PROJECTS.c.gold_schedule,
        )
        .select_from(TASKS.join(PROJECTS, PROJECTS.c.id == TASKS.c.project_id))
        .where(
            TASKS.c.kind == const(TaskKind.gold),
            TASKS.c.state == const(TaskState.open),
            TASKS.c.slice_id.not_in(seen_slices),
        )
        # A different gold task for each request, so concurrent volunteers do not queue on
        # one row: a cheap hash of the id with a random seed.
        .order_by((TASKS.c.id * 40503 + bindparam("seed")) % 65521)
        .limit(literal_column("1"))
    )
    repeat = (
        select(TASKS.c.id.label("repeat_task"), TASKS.c.due_after)
        .where(
            TASKS.c.kind == const(TaskKind.repeat),
            TASKS.c.state == const(TaskState.open),
            TASKS.c.for_user_id == bindparam("user"),
        )
        .order_by(TASKS.c.due_after, TASKS.c.id)
        .limit(literal_column("1"))
    )
    if in_project:
        stats = stats.where(RATER_STATS.c.project_id == bindparam("project"))
        gold = gold.where(TASKS.c.project_id == bindparam("project"))
        repeat = repeat.where(TASKS.c.project_id == bindparam("project"))
    if restricted_hidden:
        restricted = (
            select(SLICES.c.id)
            .select_from(SLICES.join(CASES, CASES.c.id == SLICES.c.case_id))
            .where(CASES.c.consent_scope == const(ConsentScope.restricted))
        )
        gold = gold.where(TASKS.c.slice_id.not_in(restricted))
    stats_row, gold_row, repeat_row = (
        stats.subquery("stats"),
        gold.subquery("gold"),
        repeat.subquery("rep"),
    )
    return select(stats_row, gold_row, repeat_row).select_from(
        stats_row.outerjoin(gold_row, true()).outerjoin(repeat_row, true())
    )


@cache
def _chosen_statement() -> Select[Any]:
    """Lock a gold or repeat task chosen for the caller, if it is still open and not the one
    they hold (a prefetch after a repeat task must not get it again)."""
    held = exists().where(
        ASSIGNMENTS.c.task_id == TASKS.c.id,
        ASSIGNMENTS.c.user_id == bindparam("user"),
        ASSIGNMENTS.c.state == const(AssignmentState.active),
        ASSIGNMENTS.c.lease_expires_at > bindparam("now"),
    )
    return (
        select(*_TASK_COLUMNS)
        .where(TASKS.c.id == bindparam("chosen"), TASKS.c.state == const(TaskState.open), ~held)
        .with_for_update()
    )


def next_task(
    *,
    session: Session,
    user: Rater,
    lease_seconds: int,
    project_id: int | None = None,
    after: int | None = None,
    now: datetime | None = None,
    draw: float | None = None,
) -> Lease | None:
    """Lease the caller one open task they have not labelled or skipped, or None when there is
    none.

    A caller who already holds an unexpired lease gets that task again (a page reload must
    not take a second slot). ``after``: the lease the caller is working on, for a prefetch of
    the task to show next; that lease is then passed over (its task too), so a volunteer holds
    at most two leases. Otherwise, in this order: a repeat task of theirs that is due; a
    gold task, with the probability their project's gold schedule gives for the answers they
    have given (never a slice they have had before, in any task); else the first normal task
    in queue order with a free slot, passing over tasks other transactions hold locked (None
    means no task has a free slot for this caller: when every free-looking task is locked, the
    first one is waited for, since its holder may leave a slot free).

    Each way takes the same statements (held lease, the caller's row, lock, lease, slot
    update, slices), so the time taken does not tell gold from normal. Suspended raters get
    ``RaterSuspended``. ``now`` fixes the clock and ``draw`` the gold draw, for tests.
    """
    assert user.id is not None
    serialize_writers(session)
    dialect = session.get_bind().dialect.name
    clock = now or utcnow()
    # Lease ids start at 1: 0 passes over none.
    params: dict[str, Any] = {"user": user.id, "now": clock, "after": after or 0}
    in_project = project_id is not None
    if in_project:
        params["project"] = project_id
    held = session.execute(_held_statement(in_project), params).first()
    if held is not None:
        return _load(session, held.lease, _task(held), held.lease_expires_at)
    is_expert = user.role in EXPERT_ROLES
    hide_restricted = not is_expert
    if is_expert:
        # Experts label crowd tasks as expert answers: no gold, repeats or slots for them.
        row = session.execute(
            _candidate_statement(in_project, False, False, expert=True), params
        ).first()
        return (
            None
            if row is None
            else _lease(session, dialect, user.id, _task(row), now, lease_seconds, is_expert)
        )
    me = session.execute(
        _personal_statement(in_project, hide_restricted),
        {**params, "seed": random.randrange(65521)},
    ).one()
    if me.suspended is not None:
        raise RaterSuspended(
            f"You are paused from labelling in this project: {me.suspended}. "
            "Please redo the tutorial; an expert can reinstate you."
        )
    chosen = None
    if me.repeat_task is not None and me.due_after <= me.answered:
        chosen = me.repeat_task
    elif me.gold_task is not None:
        rate = gold_rate(me.answered, me.gold_schedule or [], me.gold_rate)
        if (random.random() if draw is None else draw) < rate:
            chosen = me.gold_task
    row = None
    if chosen is not None:
        row = session.execute(_chosen_statement(), {**params, "chosen": chosen}).first()
    if row is None:
        row = session.execute(
            _candidate_statement(in_project, hide_restricted, False), params
        ).first()
    if row is None and dialect == "postgresql":
        # Every free-looking task is locked by a concurrent lease or submission (they take
        # milliseconds). Waiting is safe: each of them updates the task row, and PostgreSQL
        # checks the new row version against the filter again before handing it out.
        waiting = _candidate_statement(in_project, hide_restricted, True)
        row = session.execute(waiting, params).first()
    if row is None:
        return None
    return _lease(session, dialect, user.id, _task(row), now, lease_seconds, is_expert)


def _lease(
    session: Session,
    dialect: str,
    user_id: int,
    task: LeasedTask,
    now: datetime | None,
    lease_seconds: int,
    is_expert: bool,
) -> Lease:
    """Record the lease of a locked task, bring its slots up to date, and load its slices."""
    leased_at = now or utcnow()  # after the lock: a wait for it must not shorten the lease
    expires = leased_at + timedelta(seconds=lease_seconds)
    lease_id = session.execute(
        _lease_statement(dialect),
        {
            "lease_task": task.id,
            "lease_user": user_id,
            "lease_at": leased_at,
            "lease_until": expires,
            "lease_expert": is_expert,
        },
    ).scalar_one()
    refresh_slots(session, task.id)
    return _load(session, lease_id, task, expires)


@cache
def _lease_image_statement() -> Select[Any]:
    """The image keys of the caller's leased slice or of its neighbour at an offset."""
    target = SLICES.alias("target")
    return (
        select(SLICES.c.image_keys)
        .select_from(
            ASSIGNMENTS.join(TASKS, TASKS.c.id == ASSIGNMENTS.c.task_id)
            .join(target, target.c.id == TASKS.c.slice_id)
            .join(
                SLICES,
                and_(
                    SLICES.c.case_id == target.c.case_id,
                    SLICES.c.axis == target.c.axis,
                    SLICES.c.index == target.c.index + bindparam("offset"),
                ),
            )
        )
        .where(ASSIGNMENTS.c.id == bindparam("lease"), ASSIGNMENTS.c.user_id == bindparam("user"))
    )


def lease_image_key(
    *, session: Session, lease_id: int, user_id: int, offset: int, contrast: str
) -> str:
    """Storage key of a contrast image of the caller's leased slice, or of its neighbour at
    ``offset``; ``NotFound`` for a lease that is not theirs or an image that does not exist.
    Built once per process: every lease fetches up to 15 images."""
    row = session.execute(
        _lease_image_statement(), {"lease": lease_id, "user": user_id, "offset": offset}
    ).first()
    key = None if row is None else row.image_keys.get(contrast)
    if key is None:
        raise NotFound(f"No {contrast!r} image at offset {offset} of a lease {lease_id} of yours")
    return str(key)


@dataclass(frozen=True)
class Released:
    task_id: int
    slice_id: int


def release(
    *, session: Session, user_id: int, lease_id: int, now: datetime | None = None
) -> Released:
    """Give back the caller's lease ``lease_id`` now (Skip): its slot is free for someone else
    at once, and the task is not served to the caller again. ``NotFound`` for a lease that is
    not theirs; ``Conflict`` once it is answered."""
    serialize_writers(session)
    row = session.execute(
        select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.state, TASKS.c.id, TASKS.c.slice_id)
        .select_from(ASSIGNMENTS.join(TASKS, TASKS.c.id == ASSIGNMENTS.c.task_id))
        .where(ASSIGNMENTS.c.id == lease_id, ASSIGNMENTS.c.user_id == user_id)
        .with_for_update(of=TASKS)
    ).first()
    if row is None:
        raise NotFound(f"You have no lease {lease_id}")
    _lease, state, task_id, slice_id = row
    if state == AssignmentState.submitted:
        raise Conflict("You already labelled this task; it cannot be skipped")
    if state == AssignmentState.active:
        session.execute(
            update(ASSIGNMENTS)
            .where(ASSIGNMENTS.c.id == lease_id)
            .values(state=const(AssignmentState.skipped), lease_expires_at=now or utcnow())
        )
        refresh_slots(session, task_id)
    return Released(task_id=task_id, slice_id=slice_id)


def report_problem(
    *,
    session: Session,
    user_id: int,
    lease_id: int,
    reason: ReportReason,
    note: str,
    now: datetime | None = None,
) -> TaskReport:
    """Store the caller's problem report on the slice of their lease and release the lease
    (a reported slice is not theirs to label any more). A second report on the same lease is
    stored too: nothing is lost, experts see both."""
    released = release(session=session, user_id=user_id, lease_id=lease_id, now=now)
    report = TaskReport(
        task_id=released.task_id,
        slice_id=released.slice_id,
        user_id=user_id,
        reason=reason,
        note=note.strip(),
        created_at=now or utcnow(),
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
    reports, users = table_of(TaskReport), table_of(User)
    query = (
        select(
            reports.c.id,
            TASKS.c.project_id,
            CASES.c.public_id,
            SLICES.c.index,
            SLICES.c.axis,
            users.c.display_name,
        )
        .select_from(
            reports.join(TASKS, TASKS.c.id == reports.c.task_id)
            .join(SLICES, SLICES.c.id == reports.c.slice_id)
            .join(CASES, CASES.c.id == SLICES.c.case_id)
            .join(users, users.c.id == reports.c.user_id)
        )
        .order_by(reports.c.created_at.desc(), reports.c.id.desc())
        .limit(limit)
    )
    if project_id is not None:
        query = query.where(TASKS.c.project_id == project_id)
    if unresolved:
        query = query.where(reports.c.resolved_at.is_(None))
    if report_id is not None:
        query = query.where(reports.c.id == report_id)
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
