"""Quality control in the database: scoring answers as they are submitted, the raters' totals
and trust (suspension, reinstatement), and the priors fusion takes from them. Gold versions
live in ``quality.gold``, the review queue in ``quality.review``."""

import random
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import bindparam, func, update
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import Session
from sqlmodel import select as orm_select

from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core import outbox
from backend.core.db import on_rollback, table_of
from backend.core.errors import Conflict, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import REFUSE_RATER
from backend.gamification import RATER_CHANGED, ledger
from backend.projects.models import Project
from backend.quality import metrics, scoring
from backend.quality.gold import FROZEN, brain_region, overlay_png, read_mask, retire_gold
from backend.quality.models import (
    GoldScore,
    RaterAction,
    RaterActionKind,
    RaterStats,
    RepeatScore,
    totals_of,
)
from backend.quality.reliability import (
    Beta,
    RaterTotals,
    Thresholds,
    TrustLevel,
    reliability,
    since,
    suspension_reasons,
    trust_level,
)
from backend.tasks import service as tasks_service
from backend.tasks.models import Task, TaskKind

RATER_STATS = table_of(RaterStats)
# Approve the next gold candidate of a retired gold slice's stratum: args (project, slice).
REFILL_GOLD = "quality.refill_gold"
COUNTERS = tuple(f.name for f in fields(RaterTotals))
# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
HIT, MISS, FALSE_ALARM = (0, 158, 115), (230, 159, 0), (204, 121, 167)


# --- scoring submissions ------------------------------------------------------------------


@dataclass(frozen=True)
class AnsweredTask:
    """What ``record_answer`` needs of the task answered (read under its lock)."""

    task_id: int
    kind: TaskKind
    project_id: int
    slice_id: int
    gold_version_id: int | None
    gold_mask_key: str | None
    repeat_of_id: int | None
    flair_key: str | None
    limits: Thresholds
    repeat_rate: float
    repeat_gap: int
    gold_reveals: int = 1_000_000  # feedbacks shown before the gold slice is retired


@dataclass(frozen=True)
class Feedback:
    """What a volunteer learns after answering a gold task."""

    annotation_id: int
    dice: float
    lesions_reference: int
    lesions_found: int
    lesions_missed: int
    false_alarms: int
    points: int | None = None  # the answer's points (``gamification.ledger``); None: unknown
    # The overlay PNG when it was just made (a fresh answer), sent with the answer so the
    # studio needs no second request; None on a replay (it reads ``overlay_url``).
    overlay: bytes | None = None


@cache
def _bump_statement(dialect: str) -> ReturningInsert[Any]:
    """Add the deltas to a rater's totals in a project (creating the row), returning them."""
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = ("answered", "duration_ms_sum", *COUNTERS)
    # A dict, not keywords: a column is called "fn", which values() takes for itself.
    statement = upsert(RATER_STATS).values(
        {
            "user_id": bindparam("rater"),
            "project_id": bindparam("rater_project"),
            "updated_at": bindparam("at"),
            **{name: bindparam(f"d_{name}") for name in columns},
        }
    )
    return statement.on_conflict_do_update(
        index_elements=[RATER_STATS.c.user_id, RATER_STATS.c.project_id],
        set_={
            "updated_at": statement.excluded.updated_at,
            **{name: RATER_STATS.c[name] + statement.excluded[name] for name in columns},
        },
    ).returning(
        RATER_STATS.c.id,
        RATER_STATS.c.trust,
        RATER_STATS.c.override,
        RATER_STATS.c.rule_base,
        RATER_STATS.c.qualified_at,
        RATER_STATS.c.flagged_reason,
        *(RATER_STATS.c[name] for name in columns),
    )


def record_answer(
    *,
    session: Session,
    storage: Storage,
    task: AnsweredTask,
    user_id: int,
    annotation_id: int,
    mask: NDArray[np.uint8],
    duration_ms: int | None,
    now: datetime,
    server_ms: int | None = None,
    draw: Callable[[], float] = random.random,
) -> Feedback | None:
    """Score an answer in its submission's transaction: gold answers against their gold
    version, repeats against the rater's first answer; every answer adds to the rater's totals
    (answers, response times), which may change their trust level. A normal answer may be
    scheduled to come back to the rater as a repeat. Returns the feedback of a gold answer.

    ``server_ms``: the time the server saw the rater on the task (from the later of the lease
    and their previous answer to this one); the speed rule reads it, since a client can leave
    out or fake its own ``duration_ms`` (kept with the answer as information only)."""
    answer = mask.astype(bool)
    timing = server_ms if server_ms is not None else duration_ms
    delta = scoring.add_answer(RaterTotals(), timing, task.limits)
    feedback, result = None, None
    if task.kind is TaskKind.gold and task.gold_version_id and task.gold_mask_key:
        result, feedback = _score_gold(session, storage, task, user_id, annotation_id, answer, now)
        delta = scoring.add_gold(delta, result, None, task.limits)
    elif task.kind is TaskKind.repeat and task.repeat_of_id is not None:
        dice = _score_repeat(session, storage, task, user_id, annotation_id, answer, now)
        if dice is not None:
            delta = scoring.add_repeat(delta, dice)
    row = session.execute(
        _bump_statement(session.get_bind().dialect.name),
        {
            "rater": user_id,
            "rater_project": task.project_id,
            "at": now,
            "d_answered": 1,
            "d_duration_ms_sum": max(0, timing or 0),
            **{f"d_{name}": getattr(delta, name) for name in COUNTERS},
        },
    ).one()
    totals = totals_of(row)
    if result is not None and feedback is not None:  # one ledger row (its trigger: totals)
        points = ledger.award_scored(
            session, task, user_id, annotation_id, result, row, timing, now
        )
        feedback = replace(feedback, points=points)
    _update_trust(session, row, totals, task, user_id, now)
    if task.kind is TaskKind.normal and draw() < task.repeat_rate:
        session.add(
            Task(
                project_id=task.project_id,
                slice_id=task.slice_id,
                kind=TaskKind.repeat,
                required_labels=1,
                for_user_id=user_id,
                repeat_of_id=annotation_id,
                due_after=int(row.answered) + task.repeat_gap,
            )
        )
        session.flush()
    return feedback


def _score_gold(
    session: Session,
    storage: Storage,
    task: AnsweredTask,
    user_id: int,
    annotation_id: int,
    answer: NDArray[np.bool_],
    now: datetime,
) -> tuple[scoring.GoldScore, Feedback]:
    assert task.gold_version_id is not None
    assert task.gold_mask_key is not None
    gold = FROZEN.get(storage, task.gold_mask_key, mask=True)
    flair = (
        FROZEN.get(storage, task.flair_key, mask=False)
        if task.flair_key
        else np.zeros(gold.shape, dtype=np.uint8)
    )
    result = scoring.score(gold, answer, brain_region(flair))
    key = f"feedback/{annotation_id}.png"
    overlay = overlay_png(flair, gold, answer)
    storage.put(key, overlay)
    on_rollback(session, lambda: storage.delete(key))
    c, report = result.confusion, result.report
    stored = GoldScore(
        annotation_id=annotation_id,
        user_id=user_id,
        project_id=task.project_id,
        gold_version_id=task.gold_version_id,
        tp=c.tp,
        fp=c.fp,
        fn=c.fn,
        tn=c.tn,
        dice=result.dice,
        lesions_reference=report.reference_lesions,
        lesions_found=report.found,
        lesions_predicted=report.prediction_lesions,
        false_alarms=report.false_alarms,
        scribble=result.scribble,
        overlay_key=key,
        created_at=now,
    )
    # Core, not the unit of work: no flush of the whole session before the reveal count.
    session.execute(sa_insert(table_of(GoldScore)), [stored.model_dump(exclude={"id"})])
    _rest_revealed(session, task)
    return result, replace(feedback_of(stored), overlay=overlay)


def _rest_revealed(session: Session, task: AnsweredTask) -> None:
    """Retire a gold slice once ``gold_reveals`` volunteers have seen its feedback (which
    shows the expert's outline), and have the pool refilled from the candidates once this
    transaction commits: feedback teaches, but must not become a shared answer key."""
    shown = session.execute(
        sa_select(func.count())
        .select_from(table_of(GoldScore))
        .where(table_of(GoldScore).c.gold_version_id == task.gold_version_id)
    ).scalar_one()
    if shown < task.gold_reveals:
        return
    retire_gold(session=session, slice_id=task.slice_id)
    outbox.defer(session, REFILL_GOLD, task.project_id, task.slice_id)


def _score_repeat(
    session: Session,
    storage: Storage,
    task: AnsweredTask,
    user_id: int,
    annotation_id: int,
    answer: NDArray[np.bool_],
    now: datetime,
) -> float | None:
    first = session.get(Annotation, task.repeat_of_id)
    if first is None:
        return None  # the first answer was deleted with its task
    dice = metrics.dice(read_mask(storage, first.mask_key), answer)
    session.add(
        RepeatScore(
            annotation_id=annotation_id,
            first_annotation_id=first.id or 0,
            user_id=user_id,
            project_id=task.project_id,
            dice=dice,
            created_at=now,
        )
    )
    return dice


def _update_trust(
    session: Session,
    row: Any,
    totals: RaterTotals,
    task: AnsweredTask,
    user_id: int,
    now: datetime,
) -> None:
    """Store the trust level the totals earn. An expert's suspension stands; after an expert's
    reinstatement the rules judge the answers given since (``rule_base``): a fresh window of
    evidence, not immunity."""
    stored, override = TrustLevel(row.trust), row.override
    if override == RaterActionKind.suspended.value:
        return
    reasons = suspension_reasons(since(totals, row.rule_base), task.limits)
    passed = row.qualified_at is not None
    earned = (
        TrustLevel.suspended
        if reasons
        else trust_level(totals, task.limits, suspend=False, passed_test=passed)
    )
    if earned is stored:
        return
    values: dict[str, Any] = {"trust": earned, "suspended_reason": None}
    if earned is TrustLevel.suspended:
        values["suspended_reason"] = "; ".join(reasons)
        session.add(
            RaterAction(
                user_id=user_id,
                project_id=task.project_id,
                action=RaterActionKind.suspended,
                reason=values["suspended_reason"],
                created_at=now,
            )
        )
        exclude(session, project_id=task.project_id, user_id=user_id, now=now)
    session.execute(update(RATER_STATS).where(RATER_STATS.c.id == row.id).values(**values))


def exclude(session: Session, *, project_id: int, user_id: int, now: datetime) -> None:
    """What follows a rater's exclusion (suspended or flagged), in its transaction: every
    lease they hold in the project ends now (held or prefetched tasks are not served or
    accepted), and once committed every task they answered is fused again without them."""
    tasks_service.release_all(session=session, user_id=user_id, project_id=project_id, now=now)
    outbox.defer(session, REFUSE_RATER, project_id, user_id)
    outbox.defer(session, RATER_CHANGED, project_id, user_id)  # points reversed, off the boards


def gold_score_of(session: Session, annotation_id: int) -> GoldScore | None:
    return session.exec(
        orm_select(GoldScore).where(GoldScore.annotation_id == annotation_id)
    ).first()


def feedback_of(score: GoldScore) -> Feedback:
    return Feedback(
        annotation_id=score.annotation_id,
        dice=score.dice,
        lesions_reference=score.lesions_reference,
        lesions_found=score.lesions_found,
        lesions_missed=score.lesions_reference - score.lesions_found,
        false_alarms=score.false_alarms,
    )


# --- for fusion ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterPrior:
    """Beta priors of a rater's pixel sensitivity and specificity, from their gold answers on
    the population prior (``quality.reliability``); ``excluded`` for suspended raters, whose
    labels fusion leaves out."""

    sensitivity: Beta
    specificity: Beta
    trust: TrustLevel
    gold: int
    flagged: bool = False  # held out by the consistency check until an expert clears it

    @property
    def excluded(self) -> bool:
        return self.trust is TrustLevel.suspended or self.flagged


def rater_priors(session: Session, project_id: int) -> dict[int, RaterPrior]:
    """Every rater with totals in the project, by user id, with the Beta priors fusion takes
    for them (MAP-EM in the STAPLE sense: gold-proven raters weigh more from the start)."""
    rows = session.exec(orm_select(RaterStats).where(RaterStats.project_id == project_id)).all()
    priors = {}
    for row in rows:
        rel = reliability(row.totals())
        priors[row.user_id] = RaterPrior(
            rel.sensitivity, rel.specificity, row.trust, row.gold, row.flagged_reason is not None
        )
    return priors


# --- the expert's rater table -------------------------------------------------------------


@dataclass(frozen=True)
class RaterRow:
    stats: RaterStats
    display_name: str
    totals: RaterTotals

    @property
    def reliability(self) -> Any:
        return reliability(self.totals)


def rater_table(*, session: Session, project_id: int) -> list[RaterRow]:
    """Every rater with totals in the project, least reliable first (suspended at the top)."""
    rows = session.exec(
        orm_select(RaterStats, User.display_name)
        .join(User, User.id == RaterStats.user_id)  # type: ignore[arg-type]
        .where(RaterStats.project_id == project_id)
    ).all()
    table = [RaterRow(stats, name, stats.totals()) for stats, name in rows]
    return sorted(
        table,
        key=lambda r: (r.stats.trust is not TrustLevel.suspended, reliability(r.totals).quality),
    )


def rater_history(*, session: Session, project_id: int, user_id: int) -> list[GoldScore]:
    """A rater's gold scores in a project, oldest first."""
    return list(
        session.exec(
            orm_select(GoldScore)
            .where(GoldScore.project_id == project_id, GoldScore.user_id == user_id)
            .order_by(GoldScore.id)  # type: ignore[arg-type]
        ).all()
    )


def set_suspension(
    *,
    session: Session,
    project_id: int,
    user_id: int,
    suspend: bool,
    reason: str,
    expert_id: int,
    now: datetime | None = None,
) -> RaterStats:
    """An expert suspends or reinstates a rater in a project; the decision stands over the
    automatic rules until the next expert decision, and is recorded with who, when and why."""
    stats = session.exec(
        orm_select(RaterStats)
        .where(RaterStats.user_id == user_id, RaterStats.project_id == project_id)
        .with_for_update()
    ).first()
    if stats is None:
        raise NotFound(f"User {user_id} has not labelled in project {project_id}")
    now = now or utcnow()
    action = RaterActionKind.suspended if suspend else RaterActionKind.reinstated
    if suspend:
        stats.trust, stats.suspended_reason = TrustLevel.suspended, reason
        exclude(session, project_id=project_id, user_id=user_id, now=now)
    else:
        if stats.trust is not TrustLevel.suspended:
            raise Conflict(f"User {user_id} is not suspended in project {project_id}")
        stats.trust = trust_level(
            stats.totals(),
            _limits(session, project_id),
            suspend=False,
            passed_test=stats.qualified_at is not None,
        )
        stats.suspended_reason = None
        # The rules start a new window of evidence from here.
        stats.rule_base = {
            **(stats.rule_base or {}),
            **{name: getattr(stats, name) for name in COUNTERS},
        }
        outbox.defer(session, REFUSE_RATER, project_id, user_id)
        outbox.defer(session, RATER_CHANGED, project_id, user_id)
    stats.override, stats.updated_at = action.value, now
    session.add(stats)
    session.add(
        RaterAction(
            user_id=user_id,
            project_id=project_id,
            action=action,
            reason=reason,
            by_user_id=expert_id,
            created_at=now,
        )
    )
    session.flush()
    return stats


def rater_actions(*, session: Session, project_id: int, user_id: int) -> list[RaterAction]:
    return list(
        session.exec(
            orm_select(RaterAction)
            .where(RaterAction.project_id == project_id, RaterAction.user_id == user_id)
            .order_by(RaterAction.id)  # type: ignore[arg-type]
        ).all()
    )


def _limits(session: Session, project_id: int) -> Thresholds:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    return Thresholds.of(project)
