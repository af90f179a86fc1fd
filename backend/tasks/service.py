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
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

from sqlalchemy import (
    select,
    update,
)
from sqlmodel import Session

from backend.auth.models import EXPERT_ROLES, UserRole
from backend.core.db import serialize_writers
from backend.core.errors import Conflict, NotFound, PermissionDenied
from backend.core.timeutil import utcnow
from backend.imaging.models import CropSize, SliceAxis
from backend.quality.reliability import public_reason
from backend.tasks.models import (
    AssignmentState,
    TaskKind,
)
from backend.tasks.queue import (
    ASSIGNMENTS,
    TASKS,
    candidate_statement,
    chosen_statement,
    drop_expired_statement,
    held_statement,
    lease_image_statement,
    lease_statement,
    personal_statement,
    renew_statement,
    slices_statement,
)
from backend.tasks.slots import const, refresh_slots

# A rater must have the project's min_gold gold answers within this many times as many
# answers; after that they are served gold until they have (see ``next_task``).
QUALIFY_WITHIN = 2


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


@dataclass(frozen=True)
class SliceWithNeighbours:
    slice: SliceView
    neighbours: list[SliceView]  # same case and axis, within NEIGHBOUR_REACH, in index order

    @property
    def index(self) -> int:
        return self.slice.index

    @property
    def image_keys(self) -> dict[str, str]:
        return self.slice.image_keys


def leased_slice(session: Session, slice_id: int) -> SliceWithNeighbours:
    """A slice and its neighbouring slices, in one query."""
    rows = session.execute(slices_statement(), {"slice": slice_id}).all()
    views = [SliceView(*row) for row in rows]
    return SliceWithNeighbours(
        slice=next(v for v in views if v.id == slice_id),
        neighbours=[v for v in views if v.id != slice_id],
    )


def _load(session: Session, lease_id: int, task: LeasedTask, expires: datetime) -> Lease:
    """The lease's slice and its neighbouring slices, in one query."""
    found = leased_slice(session, task.slice_id)
    return Lease(
        id=lease_id,
        task=task,
        slice=found.slice,
        neighbours=found.neighbours,
        lease_expires_at=expires,
    )


def _task(row: Any) -> LeasedTask:
    return LeasedTask(row[0], row[1], row[2], TaskKind(row[3]), row[4])


class RaterSuspended(PermissionDenied):
    """The rater is suspended in the project: no more real tasks until an expert reinstates."""


class QualificationRequired(PermissionDenied):
    """The volunteer has not passed the project's qualification test yet."""


def tutorial_url(project: str) -> str:
    """The studio's tutorial page for a project (lessons, then its qualification test)."""
    return f"/tutorials?project={quote(project)}"


def paused_message(reason: str) -> str:
    """What a suspended volunteer reads: why (the kind of problem, not the thresholds), and
    what they can do."""
    return (
        f"Your labelling is paused in this project: {public_reason(reason)}. Your answers are "
        "kept out of the results until an expert has looked at them; the expert can reinstate "
        "you."
    )


def gold_rate(answered: int, schedule: Sequence[Sequence[float]], base_rate: float) -> float:
    """The share of gold for a volunteer's next task after ``answered`` answers: the rate of
    the first schedule step ``[below, rate]`` with ``answered < below``, else ``base_rate``."""
    for below, rate in schedule:
        if answered < below:
            return float(rate)
    return base_rate


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
    is_expert = user.role in EXPERT_ROLES
    held = session.execute(held_statement(in_project), params).first()
    if held is not None and held.suspended is not None and not is_expert:
        raise RaterSuspended(paused_message(held.suspended))
    if held is not None and held.lease_expires_at > clock:
        return _load(session, held.lease, _task(held), held.lease_expires_at)
    if held is not None:
        # Their own lease ran out: it comes back to them first, whatever its kind, under a
        # new id (an id that came back would tell which tasks may return, and so gold).
        row = session.execute(
            renew_statement(), {**params, "renew": held.id, "any_slot": is_expert}
        ).first()
        if row is not None:
            session.execute(drop_expired_statement(), {"lease_task": held.id, "user": user.id})
            return _lease(session, dialect, user.id, _task(row), now, lease_seconds, is_expert)
    hide_restricted = not is_expert
    if is_expert:
        # Experts label crowd tasks as expert answers: no gold, repeats or slots for them.
        row = session.execute(
            candidate_statement(in_project, False, False, expert=True), {**params, "want": True}
        ).first()
        return (
            None
            if row is None
            else _lease(session, dialect, user.id, _task(row), now, lease_seconds, is_expert)
        )
    me = session.execute(
        personal_statement(in_project, hide_restricted),
        {**params, "seed": random.randrange(65521)},
    ).one()
    if me.suspended is not None:
        raise RaterSuspended(paused_message(me.suspended))
    if me.must_qualify is not None:
        raise QualificationRequired(
            f"Project {me.must_qualify!r} asks new volunteers to take its short tutorial and "
            "pass a short test first (a few slices, no time limit): it shows what lesions "
            "look like and what to leave alone.",
            href=tutorial_url(me.must_qualify),
        )
    chosen = None
    if me.repeat_task is not None and me.due_after <= me.answered:
        chosen = me.repeat_task
    elif me.gold_task is not None:
        rate = gold_rate(me.answered, me.gold_schedule or [], me.gold_rate)
        if me.answered >= QUALIFY_WITHIN * me.min_gold and me.gold_answered < me.min_gold:
            # The trust gate: a rater still "new" (too few gold answers to be judged) after
            # this many answers gets only gold until judged: no unqualified rater gives the
            # crowd many labels.
            rate = 1.0
        if (random.random() if draw is None else draw) < rate:
            chosen = me.gold_task
    # The same three statements whatever was chosen, so neither the statements nor their
    # number tell gold from normal (tests/backend/quality/test_hidden_gold.py): the chosen
    # task (id 0 when none: no row), then the queue passing over the caller's last case, then
    # the queue with it, for when no other case has a free task (each a one-time false
    # filter when not wanted).
    row = session.execute(chosen_statement(), {**params, "chosen": chosen or 0}).first()
    queue = candidate_statement(in_project, hide_restricted, False)
    for last_case in (me.last_case or 0, 0):
        queued = session.execute(
            queue, {**params, "last_case": last_case, "want": row is None}
        ).first()
        row = row or queued
    if row is None and dialect == "postgresql":
        # Every free-looking task is locked by a concurrent lease or submission (they take
        # milliseconds). Waiting is safe: each of them updates the task row, and PostgreSQL
        # checks the new row version against the filter again before handing it out.
        waiting = candidate_statement(in_project, hide_restricted, True)
        row = session.execute(waiting, {**params, "want": True, "last_case": 0}).first()
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
        lease_statement(dialect),
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


def lease_image_key(
    *,
    session: Session,
    lease_id: int,
    user_id: int,
    offset: int,
    contrast: str,
    now: datetime | None = None,
) -> str:
    """Storage key of a contrast image of the caller's live lease's slice, or of its neighbour
    at ``offset``; ``NotFound`` for a lease that is not theirs or no longer live, or an image
    that does not exist."""
    row = session.execute(
        lease_image_statement(),
        {"lease": lease_id, "user": user_id, "offset": offset, "now": now or utcnow()},
    ).first()
    return image_key_of(None if row is None else row.image_keys, lease_id, offset, contrast)


def image_key_of(
    image_keys: dict[str, str] | None, lease_id: int, offset: int, contrast: str
) -> str:
    """The key of ``contrast`` among a leased slice's ``image_keys`` (None: no such live lease
    or neighbour); ``NotFound`` when absent, in the same words whatever the reason."""
    key = None if image_keys is None else image_keys.get(contrast)
    if key is None:
        raise NotFound(
            f"No {contrast!r} image at offset {offset} of a live lease {lease_id} of yours"
        )
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


def release_all(*, session: Session, user_id: int, project_id: int, now: datetime) -> int:
    """End every active lease of a rater in a project now (on suspension): their slots are
    free at once and the tasks are not served to them again. Locks the tasks in id order, so
    two such calls cannot deadlock. Returns how many leases ended."""
    held = (
        select(ASSIGNMENTS.c.task_id)
        .select_from(ASSIGNMENTS.join(TASKS, TASKS.c.id == ASSIGNMENTS.c.task_id))
        .where(
            ASSIGNMENTS.c.user_id == user_id,
            ASSIGNMENTS.c.state == const(AssignmentState.active),
            TASKS.c.project_id == project_id,
        )
    )
    task_ids = list(
        session.execute(
            select(TASKS.c.id).where(TASKS.c.id.in_(held)).order_by(TASKS.c.id).with_for_update()
        ).scalars()
    )
    if not task_ids:
        return 0
    session.execute(
        update(ASSIGNMENTS)
        .where(
            ASSIGNMENTS.c.user_id == user_id,
            ASSIGNMENTS.c.state == const(AssignmentState.active),
            ASSIGNMENTS.c.task_id.in_(task_ids),
        )
        .values(state=const(AssignmentState.skipped), lease_expires_at=now)
    )
    for task_id in task_ids:
        refresh_slots(session, task_id)
    return len(task_ids)
