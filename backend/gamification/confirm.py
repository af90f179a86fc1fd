"""Points written after the request: a fused task's answers by agreement with its label, and
the reversal of a suspended rater's points.

``confirm_task`` runs in the job the fusion job sends (through the outbox) once a task's
fused label is committed: each answer of an eligible rater earns points by its agreement with
the fused label (``quality.consistency``'s scores, made in the fusion job), a bonus where the
slice was hard (its fusion asked for more labels or an expert), nothing for an answer under
the spam rule's time, and nothing for an answer whose mask the rater sent to many slices.
``rater_changed`` runs when quality control suspends, flags, reinstates or clears a rater: a
suspension or a flag (answer farming) reverses the points of the rater's answers in that
project (correction entries) and takes them off the boards; a reinstatement puts them back
on (their reversed points stay reversed).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from backend.annotations.models import Annotation
from backend.core.db import table_of
from backend.core.storage import Storage
from backend.fusion.models import FusionResult
from backend.gamification import ledger, rules
from backend.gamification.models import PointEntry, PointReason, PointTotal, RewardProfile
from backend.imaging.models import Slice
from backend.projects.models import Project
from backend.quality import metrics
from backend.quality.gold import read_mask
from backend.quality.models import ConsensusScore, RaterStats, excluded_rater
from backend.rounds.models import Round
from backend.tasks.models import Task, TaskKind

ANN = table_of(Annotation)
LEDGER = table_of(PointEntry)
TOTALS = table_of(PointTotal)
SCORES = table_of(ConsensusScore)
# The same non-empty mask on this many of a rater's answers is copying, not labelling.
DUPLICATE_MASKS = 3
HARD_DECISIONS = ("extend", "escalate")


# Rounds whose slices the model chose for its uncertainty (``rounds.selection``): a slice it
# was least sure of is a hard one.
UNCERTAINTY_STRATEGIES = ("entropy", "bald", "bald_diverse")


def _uncertain(session: Session, task: Task) -> bool:
    """Whether an uncertainty-driven round of the task's project chose its slice."""
    chosen = session.execute(
        select(col(Round.selected)).where(
            col(Round.project_id) == task.project_id,
            col(Round.selected_by).in_(UNCERTAINTY_STRATEGIES),
        )
    ).scalars()
    return any(task.slice_id in (selected or []) for selected in chosen)


def _ineligible(session: Session, project_id: int) -> set[int]:
    """Raters of the project whose answers earn nothing now: suspended or flagged."""
    rows = session.execute(
        select(col(RaterStats.user_id)).where(
            col(RaterStats.project_id) == project_id,
            excluded_rater(),
        )
    ).scalars()
    return set(rows)


def duplicated(session: Session, annotation_ids: list[int]) -> set[int]:
    """Of ``annotation_ids``, those whose non-empty mask their rater also sent to at least
    ``DUPLICATE_MASKS`` - 1 other tasks (the same bytes, by the mask's digest)."""
    if not annotation_ids:
        return set()
    mine = ANN.alias("mine")
    other = ANN.alias("other")
    rows = session.execute(
        select(mine.c.id)
        .join(
            other,
            and_(
                other.c.user_id == mine.c.user_id,
                other.c.mask_sha256 == mine.c.mask_sha256,
                other.c.task_id != mine.c.task_id,
            ),
        )
        .where(mine.c.id.in_(annotation_ids), mine.c.lesion_pixels > 0)
        .group_by(mine.c.id)
        .having(func.count(func.distinct(other.c.task_id)) >= DUPLICATE_MASKS - 1)
    ).scalars()
    return set(rows)


def _against_reference(
    session: Session, storage: Storage | None, task: Task, scores: list[Any]
) -> dict[int, float]:
    """Where the task's slice has an expert mask (imported with its case), each answer's
    agreement with it: a crowd that agrees on something the expert did not draw (colluding
    accounts sending the same junk) earns nothing for it. Empty without storage or mask."""
    slice_ = session.get(Slice, task.slice_id)
    if storage is None or slice_ is None or slice_.reference_key is None:
        return {}
    reference = read_mask(storage, slice_.reference_key)
    found = {}
    for s in scores:
        answer = read_mask(storage, s.mask_key)
        if answer.shape != reference.shape:
            continue
        found[int(s.annotation_id)] = rules.agreement(
            dice=metrics.dice(reference, answer),
            fused_has_lesions=bool(reference.any()),
            painted=bool(answer.any()),
        )
    return found


def confirm_task(
    session: Session, task_id: int, now: datetime, storage: Storage | None = None
) -> int:
    """Award the fused task's answers; the ledger rows written (none twice: a task fused
    again awards nothing more). With ``storage``, an answer on a slice with an expert mask
    earns by the lower of its agreement with the fused label and with the expert's."""
    task = session.get(Task, task_id)
    if task is None or task.kind is not TaskKind.normal:
        return 0
    project = session.get(Project, task.project_id)
    if project is None:
        return 0
    scores = session.execute(
        select(
            SCORES.c.annotation_id,
            SCORES.c.user_id,
            SCORES.c.dice,
            SCORES.c.consensus_lesion,
            ANN.c.lesion_pixels,
            ANN.c.server_ms,
            ANN.c.mask_key,
        )
        .join(ANN, ANN.c.id == SCORES.c.annotation_id)
        .where(SCORES.c.task_id == task_id)
    ).all()
    if not scores:
        return 0
    disputed = session.execute(
        select(
            exists().where(
                col(FusionResult.task_id) == task_id,
                col(FusionResult.decision).in_(HARD_DECISIONS),
            )
        )
    ).scalar_one()
    hard = disputed or _uncertain(session, task)
    expert = _against_reference(session, storage, task, list(scores))
    skip = _ineligible(session, task.project_id)
    copied = duplicated(session, [int(s.annotation_id) for s in scores])
    rows = []
    for s in scores:
        if s.user_id in skip or s.annotation_id in copied:
            continue
        if rules.too_fast(s.server_ms, project.fast_ms):
            continue
        agreement = rules.agreement(
            dice=float(s.dice),
            fused_has_lesions=bool(s.consensus_lesion),
            painted=s.lesion_pixels > 0,
        )
        agreement = min(agreement, expert.get(int(s.annotation_id), agreement))
        common = {
            "user_id": s.user_id,
            "project_id": task.project_id,
            "annotation_id": s.annotation_id,
            "task_id": task_id,
            "quality": agreement,
            "now": now,
        }
        points = rules.scaled(agreement, rules.CONFIRMED_POINTS)
        if points:
            rows.append(ledger.entry(reason=PointReason.confirmed, points=points, **common))
        bonus = rules.scaled(agreement, rules.HARD_BONUS) if hard else 0
        if bonus:
            rows.append(
                ledger.entry(
                    reason=PointReason.hard_bonus, points=bonus, note="a disputed slice", **common
                )
            )
    ledger.write(session, rows)
    return len(rows)


def rater_changed(session: Session, project_id: int, user_id: int, now: datetime) -> int:
    """After a suspension or reinstatement in ``project_id``: reverse the rater's answer
    points there when suspended (each entry once), and set whether the boards show them.
    Returns the corrections written."""
    excluded = excluded_rater()
    suspended_here = session.execute(
        select(func.count())
        .select_from(RaterStats)
        .where(
            col(RaterStats.user_id) == user_id, col(RaterStats.project_id) == project_id, excluded
        )
    ).scalar_one()
    written = 0
    if suspended_here:
        corrected = LEDGER.alias("corrected")
        answers = LEDGER.c.reason.in_(
            [PointReason.gold.value, PointReason.confirmed.value, PointReason.hard_bonus.value]
        )
        # The badges' points too: the badges were won with the same answers (the badges
        # stay on record; a suspended rater is awarded none meanwhile).
        badge_points = LEDGER.c.reason == PointReason.badge.value
        earned = session.execute(
            select(LEDGER.c.id, LEDGER.c.points, LEDGER.c.annotation_id, LEDGER.c.week).where(
                LEDGER.c.user_id == user_id,
                (answers & (LEDGER.c.project_id == project_id)) | badge_points,
                LEDGER.c.points > 0,
                ~exists().where(corrected.c.corrects_id == LEDGER.c.id),
            )
        ).all()
        rows = [
            ledger.entry(
                user_id=user_id,
                reason=PointReason.correction,
                points=-int(e.points),
                now=now,
                project_id=project_id,
                corrects_id=int(e.id),
                note="reversed: suspended by quality control",
                week=e.week,
            )
            for e in earned
        ]
        ledger.write(session, rows)
        written = len(rows)
    anywhere = session.execute(
        select(func.count())
        .select_from(RaterStats)
        .where(col(RaterStats.user_id) == user_id, excluded)
    ).scalar_one()
    settings = session.get(RewardProfile, user_id)
    opted_out = settings is not None and not settings.leaderboard
    hidden = bool(anywhere) or opted_out
    # Made hidden when the rater has no points yet: the ledger's trigger keeps an existing
    # row's flag, so points earned later elsewhere never show an excluded rater.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(TOTALS)
        .values(
            user_id=user_id,
            total=0,
            week=ledger.week_of(now),
            week_points=0,
            entries=0,
            hidden=hidden,
            updated_at=now,
        )
        .on_conflict_do_update(index_elements=[TOTALS.c.user_id], set_={"hidden": hidden})
    )
    return written
