"""Quality control in the database: gold versions, scoring answers as they are submitted,
the raters' totals and trust, and the priors fusion takes from them."""

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import and_, bindparam, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from backend.annotations.masks import to_png
from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core.db import on_rollback, table_of
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality import metrics, scoring
from backend.quality.models import (
    GoldScore,
    GoldSource,
    GoldVersion,
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
    suspension_reasons,
    trust_level,
)
from backend.tasks.models import Assignment, Task, TaskKind, TaskState

RATER_STATS = table_of(RaterStats)
COUNTERS = tuple(f.name for f in fields(RaterTotals))
# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
HIT, MISS, FALSE_ALARM = (0, 158, 115), (230, 159, 0), (204, 121, 167)


def read_mask(storage: Storage, key: str) -> NDArray[np.bool_]:
    """A stored binary mask PNG as a boolean [H, W] array."""
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image.convert("L")) > 127


def _read_grey(storage: Storage, key: str) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image.convert("L"))


def brain_region(flair: NDArray[np.uint8]) -> NDArray[np.bool_] | None:
    """Pixels inside the brain of a skull-stripped FLAIR slice image (non-zero), or None when
    the image has no zero background to tell it by."""
    inside = flair > 0
    return inside if 0 < inside.sum() < inside.size else None


def overlay_png(
    flair: NDArray[np.uint8], gold: NDArray[np.bool_], answer: NDArray[np.bool_]
) -> bytes:
    """The feedback image: the FLAIR slice in grey with hits, misses and false alarms in
    colour (``HIT``, ``MISS``, ``FALSE_ALARM``)."""
    rgb = np.repeat((flair.astype(np.float32) * 0.7)[..., None], 3, axis=2)
    for where, colour in (
        (gold & answer, HIT),
        (gold & ~answer, MISS),
        (answer & ~gold, FALSE_ALARM),
    ):
        rgb[where] = colour
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --- gold versions ------------------------------------------------------------------------


def _slice_and_case(session: Session, slice_id: int) -> tuple[Slice, Case]:
    slice_ = session.get(Slice, slice_id)
    if slice_ is None:
        raise NotFound(f"Slice {slice_id} does not exist")
    case = session.get(Case, slice_.case_id)
    assert case is not None
    return slice_, case


def set_gold(
    *,
    session: Session,
    storage: Storage,
    slice_id: int,
    mask: NDArray[np.uint8],
    source: GoldSource,
    expert_id: int | None,
) -> GoldVersion:
    """Make ``mask`` the slice's gold: a new frozen version, served through the slice's gold
    task (created on first use; its earlier versions stay for the scores that used them).

    The slice's open normal task, if any, is retired: with an expert answer its crowd labels
    are not needed, and no volunteer may meet the same slice as normal and as gold.
    """
    slice_, case = _slice_and_case(session, slice_id)
    project = session.get(Project, case.project_id)
    if project is not None and case.public_id in project.holdout_cases:
        raise Conflict(
            f"Case {case.public_id} is held out for evaluating models: its slices cannot be gold"
        )
    if mask.shape != (slice_.height, slice_.width):
        raise InvalidInput(
            f"The gold mask must be {slice_.width} x {slice_.height} pixels, "
            f"not {mask.shape[1]} x {mask.shape[0]}"
        )
    previous = session.exec(
        orm_select(GoldVersion.version)
        .where(GoldVersion.slice_id == slice_id)
        .order_by(GoldVersion.version.desc())  # type: ignore[attr-defined]
    ).first()
    number = (previous or 0) + 1
    now = utcnow()
    for old in session.exec(
        orm_select(GoldVersion).where(
            GoldVersion.slice_id == slice_id,
            GoldVersion.retired_at.is_(None),  # type: ignore[union-attr]
        )
    ):
        old.retired_at = now
        session.add(old)
    key = f"gold/{slice_id}/v{number}.png"
    storage.put(key, to_png(mask.astype(np.uint8)))
    on_rollback(session, lambda: storage.delete(key))
    version = GoldVersion(
        slice_id=slice_id,
        version=number,
        source=source,
        mask_key=key,
        lesion_pixels=int(np.count_nonzero(mask)),
        created_by=expert_id,
        created_at=now,
    )
    session.add(version)
    session.flush()
    task = session.exec(
        orm_select(Task).where(Task.slice_id == slice_id, Task.kind == TaskKind.gold)
    ).first()
    if task is None:
        task = Task(
            project_id=case.project_id,
            slice_id=slice_id,
            kind=TaskKind.gold,
            required_labels=1,
        )
    task.gold_version_id = version.id
    task.state = TaskState.open
    session.add(task)
    for normal in session.exec(
        orm_select(Task).where(
            Task.slice_id == slice_id,
            Task.kind == TaskKind.normal,
            col(Task.state).in_([TaskState.open, TaskState.review]),
        )
    ):
        normal.state = TaskState.retired
        session.add(normal)
    session.flush()
    return version


def approve_reference(
    *, session: Session, storage: Storage, slice_id: int, expert_id: int | None
) -> GoldVersion:
    """Make the slice's imported expert reference mask its gold."""
    slice_, _case = _slice_and_case(session, slice_id)
    if slice_.reference_key is None:
        raise Conflict(f"Slice {slice_id} has no imported reference mask to approve")
    mask = read_mask(storage, slice_.reference_key).astype(np.uint8)
    return set_gold(
        session=session,
        storage=storage,
        slice_id=slice_id,
        mask=mask,
        source=GoldSource.reference,
        expert_id=expert_id,
    )


def gold_candidates(
    *, session: Session, project_id: int, limit: int, offset: int
) -> list[tuple[Slice, Case]]:
    """Slices of a project with a reference mask and no current gold, most lesion pixels
    first (slices with lesions make the most informative gold)."""
    current = orm_select(GoldVersion.slice_id).where(GoldVersion.retired_at.is_(None))  # type: ignore[union-attr]
    rows = session.exec(
        orm_select(Slice, Case)
        .join(Case, Case.id == Slice.case_id)  # type: ignore[arg-type]
        .where(
            Case.project_id == project_id,
            Slice.reference_key.is_not(None),  # type: ignore[union-attr]
            Slice.id.not_in(current),  # type: ignore[union-attr]
        )
        .order_by(Slice.reference_pixels.desc(), Slice.id)  # type: ignore[union-attr,arg-type]
        .offset(offset)
        .limit(limit)
    ).all()
    return [(s, c) for s, c in rows]


def seed_gold(*, session: Session, storage: Storage, project_id: int, per_case: int) -> int:
    """Approve the reference masks of each case's ``per_case`` slices with the most lesion
    pixels as gold, in a project that has no gold yet (the demo's experts' work); returns how
    many slices became gold."""
    has_gold = session.exec(
        orm_select(Task.id).where(Task.project_id == project_id, Task.kind == TaskKind.gold)
    ).first()
    if has_gold is not None:
        return 0
    made = 0
    by_case: dict[int, int] = {}
    for slice_, case in gold_candidates(
        session=session, project_id=project_id, limit=1_000_000, offset=0
    ):
        if not slice_.reference_pixels or by_case.get(case.id or 0, 0) >= per_case:
            continue
        by_case[case.id or 0] = by_case.get(case.id or 0, 0) + 1
        approve_reference(session=session, storage=storage, slice_id=slice_.id or 0, expert_id=None)
        made += 1
    return made


def retire_gold(*, session: Session, slice_id: int) -> None:
    """Stop serving a slice as gold (its versions and scores stay)."""
    task = session.exec(
        orm_select(Task).where(
            Task.slice_id == slice_id, Task.kind == TaskKind.gold, Task.state == TaskState.open
        )
    ).first()
    if task is None:
        raise NotFound(f"Slice {slice_id} is not gold")
    task.state = TaskState.retired
    session.add(task)
    session.execute(
        update(table_of(GoldVersion))
        .where(table_of(GoldVersion).c.slice_id == slice_id)
        .where(table_of(GoldVersion).c.retired_at.is_(None))
        .values(retired_at=utcnow())
    )
    session.flush()


# --- scoring submissions ------------------------------------------------------------------


@dataclass(frozen=True)
class AnsweredTask:
    """What ``record_answer`` needs of the task answered (read under its lock)."""

    task_id: int
    kind: TaskKind
    project_id: int
    slice_id: int
    gold_version_id: int | None
    repeat_of_id: int | None
    flair_key: str | None
    limits: Thresholds
    repeat_rate: float
    repeat_gap: int


@dataclass(frozen=True)
class Feedback:
    """What a volunteer learns after answering a gold task."""

    annotation_id: int
    dice: float
    lesions_reference: int
    lesions_found: int
    lesions_missed: int
    false_alarms: int


@cache
def _bump_statement(dialect: str) -> ReturningInsert[Any]:
    """Add the deltas to a rater's totals in a project (creating the row), returning them."""
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = ("answered", *COUNTERS)
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
    draw: Callable[[], float] = random.random,
) -> Feedback | None:
    """Score an answer in its submission's transaction: gold answers against their gold
    version, repeats against the rater's first answer; every answer adds to the rater's totals
    (answers, response times), which may change their trust level. A normal answer may be
    scheduled to come back to the rater as a repeat. Returns the feedback of a gold answer."""
    answer = mask.astype(bool)
    delta = scoring.add_answer(RaterTotals(), duration_ms, task.limits)
    feedback = None
    if task.kind is TaskKind.gold and task.gold_version_id is not None:
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
            **{f"d_{name}": getattr(delta, name) for name in COUNTERS},
        },
    ).one()
    totals = totals_of(row)
    _update_trust(session, row.id, TrustLevel(row.trust), row.override, totals, task, user_id, now)
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
    version = session.get(GoldVersion, task.gold_version_id)
    assert version is not None
    gold = read_mask(storage, version.mask_key)
    flair = (
        _read_grey(storage, task.flair_key)
        if task.flair_key
        else np.zeros(gold.shape, dtype=np.uint8)
    )
    result = scoring.score(gold, answer, brain_region(flair))
    key = f"feedback/{annotation_id}.png"
    storage.put(key, overlay_png(flair, gold, answer))
    on_rollback(session, lambda: storage.delete(key))
    c, report = result.confusion, result.report
    stored = GoldScore(
        annotation_id=annotation_id,
        user_id=user_id,
        project_id=task.project_id,
        gold_version_id=version.id or 0,
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
    session.add(stored)
    return result, feedback_of(stored)


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
    stats_id: int,
    stored: TrustLevel,
    override: str | None,
    totals: RaterTotals,
    task: AnsweredTask,
    user_id: int,
    now: datetime,
) -> None:
    """Store the trust level the totals earn. An expert's suspension stands; after an expert's
    reinstatement the rules no longer suspend, but the rater still moves up the levels."""
    if override == RaterActionKind.suspended.value:
        return
    reinstated = override == RaterActionKind.reinstated.value
    reasons = [] if reinstated else suspension_reasons(totals, task.limits)
    earned = TrustLevel.suspended if reasons else trust_level(totals, task.limits, suspend=False)
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
    session.execute(update(RATER_STATS).where(RATER_STATS.c.id == stats_id).values(**values))


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

    @property
    def excluded(self) -> bool:
        return self.trust is TrustLevel.suspended


def rater_priors(session: Session, project_id: int) -> dict[int, RaterPrior]:
    """Every rater with totals in the project, by user id, with the Beta priors fusion takes
    for them (MAP-EM in the STAPLE sense: gold-proven raters weigh more from the start)."""
    rows = session.exec(orm_select(RaterStats).where(RaterStats.project_id == project_id)).all()
    priors = {}
    for row in rows:
        rel = reliability(row.totals())
        priors[row.user_id] = RaterPrior(rel.sensitivity, rel.specificity, row.trust, row.gold)
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
    else:
        if stats.trust is not TrustLevel.suspended:
            raise Conflict(f"User {user_id} is not suspended in project {project_id}")
        stats.trust = trust_level(stats.totals(), _limits(session, project_id), suspend=False)
        stats.suspended_reason = None
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


def _own_assignment() -> Any:
    """Join condition: the assignment an annotation answered."""
    return and_(
        col(Assignment.task_id) == col(Annotation.task_id),
        col(Assignment.user_id) == col(Annotation.user_id),
    )


def expert_answers(*, session: Session, project_id: int, limit: int, offset: int) -> list[Any]:
    """Experts' answers in a project, newest first, with whether their slice is gold now."""
    current = orm_select(GoldVersion.slice_id).where(GoldVersion.retired_at.is_(None))  # type: ignore[union-attr]
    rows = session.exec(
        orm_select(Annotation, Task.slice_id, User.display_name, Task.slice_id.in_(current))  # type: ignore[attr-defined]
        .join(Task, Task.id == Annotation.task_id)  # type: ignore[arg-type]
        .join(Assignment, _own_assignment())
        .join(User, User.id == Annotation.user_id)  # type: ignore[arg-type]
        .where(Task.project_id == project_id, Assignment.expert)
        .order_by(Annotation.id.desc())  # type: ignore[union-attr]
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows)


def promote_answer(
    *, session: Session, storage: Storage, annotation_id: int, expert_id: int
) -> GoldVersion:
    """Make an expert's answer the gold of its slice."""
    row = session.exec(
        orm_select(Annotation, Task.slice_id, Assignment.expert)
        .join(Task, Task.id == Annotation.task_id)  # type: ignore[arg-type]
        .join(Assignment, _own_assignment())
        .where(Annotation.id == annotation_id)
    ).first()
    if row is None:
        raise NotFound(f"Answer {annotation_id} does not exist")
    annotation, slice_id, by_expert = row
    if not by_expert:
        raise Conflict(
            "Only an expert's answer can become gold; paint one or approve the reference"
        )
    return set_gold(
        session=session,
        storage=storage,
        slice_id=slice_id,
        mask=read_mask(storage, annotation.mask_key).astype(np.uint8),
        source=GoldSource.expert,
        expert_id=expert_id,
    )


# --- the review queue ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    """A crowd task whose volunteers disagree: pairwise Dice of their answers."""

    task_id: int
    slice_id: int
    annotation_ids: list[int]
    mean_dice: float
    min_dice: float
    max_dice: float
    escalated: bool  # still uncertain after the project's max_labels (fusion's decision)


def pairwise_dice(masks: list[NDArray[np.bool_]]) -> list[float]:
    """Dice of every pair of masks (in order (0,1), (0,2), ..., (1,2), ...)."""
    return [
        metrics.dice(masks[i], masks[j])
        for i in range(len(masks))
        for j in range(i + 1, len(masks))
    ]


def review_queue(
    *, session: Session, storage: Storage, project_id: int, limit: int, scan: int = 500
) -> list[ReviewItem]:
    """Crowd tasks for an expert: first those fusion escalated (still uncertain after the
    project's ``max_labels``, state ``review``), then, among the ``scan`` most recent tasks
    with two or more volunteer answers, those whose answers agree least (lowest mean pairwise
    Dice, then widest spread). Slices that are gold already are left out.
    """
    gold = orm_select(GoldVersion.slice_id).where(GoldVersion.retired_at.is_(None))  # type: ignore[union-attr]
    escalated = Task.state == TaskState.review
    tasks_ = session.exec(
        orm_select(Task.id, Task.slice_id, escalated)
        .where(
            Task.project_id == project_id,
            Task.kind == TaskKind.normal,
            Task.submitted_labels >= 2,
            col(Task.slice_id).not_in(gold),
        )
        .order_by(escalated.desc(), col(Task.id).desc())  # type: ignore[attr-defined]
        .limit(scan)
    ).all()
    if not tasks_:
        return []
    answers: dict[int, list[Annotation]] = {}
    for annotation in session.exec(
        orm_select(Annotation)
        .join(Assignment, _own_assignment())
        .where(col(Annotation.task_id).in_([row[0] for row in tasks_]), Assignment.expert == False)  # noqa: E712
        .order_by(col(Annotation.id))
    ):
        answers.setdefault(annotation.task_id, []).append(annotation)
    items = []
    for task_id, slice_id, is_escalated in tasks_:
        assert task_id is not None
        given = answers.get(task_id, [])
        if len(given) < 2:
            continue
        scores = pairwise_dice([read_mask(storage, a.mask_key) for a in given])
        items.append(
            ReviewItem(
                task_id=task_id,
                slice_id=slice_id,
                annotation_ids=[a.id or 0 for a in given],
                mean_dice=float(np.mean(scores)),
                min_dice=min(scores),
                max_dice=max(scores),
                escalated=bool(is_escalated),
            )
        )
    items.sort(key=lambda item: (not item.escalated, item.mean_dice, item.min_dice - item.max_dice))
    return items[:limit]


def current_gold_versions(
    *, session: Session, project_id: int, limit: int, offset: int
) -> list[tuple[GoldVersion, Slice, Case]]:
    """The project's gold slices (their current versions), newest first."""
    rows = session.exec(
        orm_select(GoldVersion, Slice, Case)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(Case.project_id == project_id, col(GoldVersion.retired_at).is_(None))
        .order_by(col(GoldVersion.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [(v, s, c) for v, s, c in rows]
