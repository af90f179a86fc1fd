"""The statements of the lease queue, built once per process (see ``backend.tasks.service``
for why they are SQLAlchemy Core with bound parameters and constants written into the SQL)."""

from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Delete, Insert

from backend.auth.models import EXPERT_ROLES, User
from backend.auth.service import caller_statement
from backend.core.db import table_of
from backend.imaging.models import Case, Slice
from backend.imaging.sprite import NEIGHBOUR_REACH
from backend.projects.models import Project
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel
from backend.tasks.models import (
    Assignment,
    AssignmentState,
    Task,
    TaskKind,
    TaskState,
)
from backend.tasks.order import RANKED
from backend.tasks.slots import const
from backend.tutorials.models import TutorialSlice

TASKS = table_of(Task)


ASSIGNMENTS = table_of(Assignment)


SLICES = table_of(Slice)


CASES = table_of(Case)


PROJECTS = table_of(Project)


RATER_STATS = table_of(RaterStats)
TUTORIAL_SLICES = table_of(TutorialSlice)


TASK_COLUMNS = (
    TASKS.c.id,
    TASKS.c.project_id,
    TASKS.c.slice_id,
    TASKS.c.kind,
    TASKS.c.required_labels,
)


def _restricted_slices() -> Select[Any]:
    """Ids of slices in cases whose consent does not allow crowd viewing (volunteers never
    get them; such cases have no crowd tasks, but an expert may make gold on them)."""
    return (
        select(SLICES.c.id)
        .select_from(SLICES.join(CASES, CASES.c.id == SLICES.c.case_id))
        .where(CASES.c.consent_crowd_viewing == false())
    )


def _crowd_viewable(slice_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether the slice's case lets volunteers see it (a correlated check, for the few rows
    of one caller's leases)."""
    return exists().where(
        SLICES.c.id == slice_id,
        CASES.c.id == SLICES.c.case_id,
        CASES.c.consent_crowd_viewing == true(),
    )


def suspended_in(project: ColumnElement[Any]) -> Any:
    """The caller's suspension reason in a project (NULL when not suspended): a scalar
    subquery, so every way to a task checks it in the statement that finds the task."""
    return (
        select(RATER_STATS.c.suspended_reason)
        .where(
            RATER_STATS.c.user_id == bindparam("user"),
            RATER_STATS.c.project_id == project,
            RATER_STATS.c.trust == const(TrustLevel.suspended),
        )
        .scalar_subquery()
    )


@cache
def held_statement(in_project: bool) -> Select[Any]:
    """The caller's lease on an open task that is still theirs: unexpired, or expired but
    renewable (a gold or repeat task, or a normal one with a slot free at ``now``); live
    leases first, then the oldest. With whether the caller is suspended in its project."""
    live = ASSIGNMENTS.c.lease_expires_at > bindparam("now")
    query = (
        select(
            *TASK_COLUMNS,
            ASSIGNMENTS.c.lease_expires_at,
            ASSIGNMENTS.c.id.label("lease"),
            suspended_in(TASKS.c.project_id).label("suspended"),
        )
        .select_from(ASSIGNMENTS.join(TASKS, TASKS.c.id == ASSIGNMENTS.c.task_id))
        .where(
            ASSIGNMENTS.c.user_id == bindparam("user"),
            ASSIGNMENTS.c.state == const(AssignmentState.active),
            TASKS.c.state == const(TaskState.open),
            ASSIGNMENTS.c.id != bindparam("after"),
            or_(
                live,
                ASSIGNMENTS.c.expert == literal_column("true"),
                TASKS.c.kind != const(TaskKind.normal),
                TASKS.c.full_until.is_(None),
                TASKS.c.full_until <= bindparam("now"),
            ),
            # Not on a case whose consent was taken back from the crowd (experts keep theirs).
            or_(ASSIGNMENTS.c.expert == true(), _crowd_viewable(TASKS.c.slice_id)),
        )
        .order_by(live.desc(), ASSIGNMENTS.c.leased_at)
        .limit(literal_column("1"))
    )
    if in_project:
        query = query.where(TASKS.c.project_id == bindparam("project"))
    return query


@cache
def candidate_statement(
    in_project: bool, restricted_hidden: bool, wait: bool, expert: bool = False
) -> Select[Any]:
    """The first open normal task in queue order with a free slot at ``now`` that the user has
    never had (answered, skipped or leased: their own expired lease is renewed through
    ``held_statement``), locked (``wait``: waiting for a locked one; else passing over locked
    ones)."""
    mine = exists().where(
        ASSIGNMENTS.c.task_id == TASKS.c.id,
        ASSIGNMENTS.c.user_id == bindparam("user"),
    )
    query = (
        select(*TASK_COLUMNS)
        .where(
            # False when a gold or repeat task was chosen: the statement still runs (every way
            # to a task runs the same statements) but PostgreSQL stops at this one-time filter.
            bindparam("want", type_=Boolean),
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
        query = query.where(TASKS.c.slice_id.not_in(_restricted_slices()))
    if not expert:
        # Mixing: pass over the case of the caller's previous task (``last_case``, 0 for
        # none), so consecutive tasks show different brains. The same hashed NOT IN as above:
        # the walk stays on the queue index and skips that case's rows, which the queue's
        # spread order (``backend.tasks.order``) keeps few in a row.
        # A round's chosen slices (priority RANKED and up) are never passed over.
        same_case = select(SLICES.c.id).where(SLICES.c.case_id == bindparam("last_case"))
        query = query.where(
            or_(
                TASKS.c.slice_id.not_in(same_case), TASKS.c.priority >= literal_column(repr(RANKED))
            )
        )
    return query


@cache
def renew_statement() -> Select[Any]:
    """Lock the task of the caller's expired lease if it is still theirs to renew (see
    ``held_statement``), re-checked under the lock."""
    return (
        select(*TASK_COLUMNS)
        .where(
            TASKS.c.id == bindparam("renew"),
            TASKS.c.state == const(TaskState.open),
            or_(
                bindparam("any_slot"),  # experts take no slot
                TASKS.c.kind != const(TaskKind.normal),
                TASKS.c.full_until.is_(None),
                TASKS.c.full_until <= bindparam("now"),
            ),
        )
        .with_for_update()
    )


@cache
def drop_expired_statement() -> Delete:
    """Remove the caller's own expired lease of a task before leasing it again: the renewed
    lease gets a new id."""
    return delete(ASSIGNMENTS).where(
        ASSIGNMENTS.c.task_id == bindparam("lease_task"),
        ASSIGNMENTS.c.user_id == bindparam("user"),
        ASSIGNMENTS.c.state == const(AssignmentState.active),
    )


@cache
def lease_statement(dialect: str) -> Insert:
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
def slices_statement() -> Select[Any]:
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


@cache
def personal_statement(in_project: bool, restricted_hidden: bool) -> Select[Any]:
    """One row about the caller: answers given and suspension (``rater_stats``), a random gold
    task on a slice they have never had (with its project's gold schedule), their first
    repeat task (with the answer count it is due after), and the case of their latest lease."""
    stats = select(
        func.coalesce(func.sum(RATER_STATS.c.answered), 0).label("answered"),
        func.coalesce(func.sum(RATER_STATS.c.gold), 0).label("gold_answered"),
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
    # The case of the caller's latest lease: the queue passes over it (mixing), and so does
    # the gold draw where it can, or gold from the same case as the last task would stand out.
    last_task, last_lease = TASKS.alias("last_task"), ASSIGNMENTS.alias("last_lease")
    last_slice, same_slice = SLICES.alias("last_slice"), SLICES.alias("same_slice")
    last = (
        select(last_slice.c.case_id.label("last_case"))
        .select_from(
            last_lease.join(last_task, last_task.c.id == last_lease.c.task_id).join(
                last_slice, last_slice.c.id == last_task.c.slice_id
            )
        )
        .where(last_lease.c.user_id == bindparam("user"))
        .order_by(last_lease.c.id.desc())
        .limit(literal_column("1"))
    )
    same_case = select(same_slice.c.id).where(same_slice.c.case_id == last.scalar_subquery())
    gold = (
        select(
            TASKS.c.id.label("gold_task"),
            PROJECTS.c.gold_rate,
            PROJECTS.c.gold_schedule,
            PROJECTS.c.min_gold,
        )
        .select_from(TASKS.join(PROJECTS, PROJECTS.c.id == TASKS.c.project_id))
        .where(
            TASKS.c.kind == const(TaskKind.gold),
            TASKS.c.state == const(TaskState.open),
            TASKS.c.slice_id.not_in(seen_slices),
        )
        # Gold of another case than the last task's first, as the queue mixes (its case
        # only when no other has gold left, as the queue falls back too); then a different
        # gold task for each request, so concurrent volunteers do not queue on one row: a
        # cheap hash of the id with a random seed.
        .order_by(TASKS.c.slice_id.in_(same_case), (TASKS.c.id * 40503 + bindparam("seed")) % 65521)
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
    gate = _gate()
    if in_project:
        stats = stats.where(RATER_STATS.c.project_id == bindparam("project"))
        gold = gold.where(TASKS.c.project_id == bindparam("project"))
        repeat = repeat.where(TASKS.c.project_id == bindparam("project"))
        gate = gate.where(PROJECTS.c.id == bindparam("project"))
    if restricted_hidden:
        gold = gold.where(TASKS.c.slice_id.not_in(_restricted_slices()))
        repeat = repeat.where(TASKS.c.slice_id.not_in(_restricted_slices()))
    stats_row, gold_row, repeat_row, last_row, gate_row = (
        stats.subquery("stats"),
        gold.subquery("gold"),
        repeat.subquery("rep"),
        last.subquery("last"),
        gate.subquery("gate"),
    )
    return select(stats_row, gold_row, repeat_row, last_row, gate_row).select_from(
        stats_row.outerjoin(gold_row, true())
        .outerjoin(repeat_row, true())
        .outerjoin(last_row, true())
        .outerjoin(gate_row, true())
    )


def _gate() -> Select[Any]:
    """The qualification gate (``tutorials.qualification``): the name of a project with crowd
    work open that asks for its test and that the caller has not passed (no row: none)."""
    passed = exists().where(
        RATER_STATS.c.user_id == bindparam("user"),
        RATER_STATS.c.project_id == PROJECTS.c.id,
        RATER_STATS.c.qualified_at.is_not(None),
    )
    open_work = exists().where(
        TASKS.c.project_id == PROJECTS.c.id,
        TASKS.c.state == const(TaskState.open),
        TASKS.c.kind != const(TaskKind.practice),
    )
    # No tutorial material, no test to pass: the gate opens rather than lock everyone out
    # (the admin's project page says so).
    material = exists().where(TUTORIAL_SLICES.c.kind.is_not(None))
    return (
        select(PROJECTS.c.name.label("must_qualify"))
        .where(PROJECTS.c.qualification_required == true(), ~passed, open_work, material)
        .order_by(PROJECTS.c.id)
        .limit(literal_column("1"))
    )


@cache
def chosen_statement() -> Select[Any]:
    """Lock a gold or repeat task chosen for the caller, if it is still open and not the one
    they hold (a prefetch after a repeat task must not get it again)."""
    held = exists().where(
        ASSIGNMENTS.c.task_id == TASKS.c.id,
        ASSIGNMENTS.c.user_id == bindparam("user"),
        ASSIGNMENTS.c.state == const(AssignmentState.active),
        ASSIGNMENTS.c.lease_expires_at > bindparam("now"),
    )
    return (
        select(*TASK_COLUMNS)
        .where(TASKS.c.id == bindparam("chosen"), TASKS.c.state == const(TaskState.open), ~held)
        .with_for_update()
    )


def _lease_image_keys(user: ColumnElement[Any], column: str = "image_keys") -> Select[Any]:
    """The image keys (or another ``column``) of ``user``'s leased slice or of its neighbour
    at an offset."""
    target = SLICES.alias("target")
    staff = table_of(User).alias("staff")  # the caller, as they are now
    return (
        select(SLICES.c[column])
        .select_from(
            ASSIGNMENTS.join(TASKS, TASKS.c.id == ASSIGNMENTS.c.task_id)
            .join(target, target.c.id == TASKS.c.slice_id)
            .join(CASES, CASES.c.id == target.c.case_id)
            .join(
                SLICES,
                and_(
                    SLICES.c.case_id == target.c.case_id,
                    SLICES.c.axis == target.c.axis,
                    SLICES.c.index == target.c.index + bindparam("offset"),
                ),
            )
        )
        .where(
            ASSIGNMENTS.c.id == bindparam("lease"),
            ASSIGNMENTS.c.user_id == user,
            # A case whose consent no longer allows crowd viewing: its images are no longer a
            # volunteer's to fetch, even on a lease they still hold.
            or_(CASES.c.consent_crowd_viewing == true(), ASSIGNMENTS.c.expert == true()),
            # Readable while the lease lives (experts: their answered tasks too, while they
            # are experts): a skipped, answered or lapsed lease's images are no longer the
            # volunteer's to fetch.
            or_(
                and_(
                    ASSIGNMENTS.c.state == const(AssignmentState.active),
                    ASSIGNMENTS.c.lease_expires_at > bindparam("now"),
                ),
                and_(
                    ASSIGNMENTS.c.expert == literal_column("true"),
                    exists().where(
                        staff.c.id == user, staff.c.role.in_([r.value for r in EXPERT_ROLES])
                    ),
                ),
            ),
        )
    )


@cache
def lease_image_statement() -> Select[Any]:
    """The image keys of the caller's (``user``) leased slice or of its neighbour."""
    return _lease_image_keys(bindparam("user"))


@cache
def caller_image_statement() -> Select[Any]:
    """``caller_statement`` (the caller by their credential) with the image keys of their
    leased slice or its neighbour (``image_keys``, NULL when there is none): the lease image
    route's one statement."""
    keys = _lease_image_keys(table_of(User).c.id).scalar_subquery()
    return caller_statement().add_columns(keys.label("image_keys"))


@cache
def caller_sprite_statement() -> Select[Any]:
    """``caller_statement`` with the id and image keys of the caller's live leased slice
    (``slice_id`` and ``image_keys``, NULL when there is none; ``offset`` 0): the sprite
    route's statement."""
    user = table_of(User).c.id
    return caller_statement().add_columns(
        _lease_image_keys(user, "id").scalar_subquery().label("slice_id"),
        _lease_image_keys(user).scalar_subquery().label("image_keys"),
    )
