"""Writing to the points ledger: one INSERT per award (its trigger moves the user's totals in
the same transaction), never an UPDATE; replays and racing jobs insert nothing twice (the
ledger's unique indexes, ON CONFLICT DO NOTHING).

This module is what the hot path imports (quality's gold scoring): it depends on nothing but
the ledger's table and the pure rules.
"""

from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from backend.core.db import table_of
from backend.gamification import rules
from backend.gamification.models import PointEntry, PointReason

LEDGER = table_of(PointEntry)
COLUMNS = (
    "user_id",
    "project_id",
    "annotation_id",
    "task_id",
    "badge",
    "corrects_id",
    "reason",
    "points",
    "quality",
    "note",
    "week",
    "created_at",
)


def week_of(at: datetime) -> date:
    """The Monday (UTC) of ``at``'s week: the weekly board's week."""
    day = (at if at.tzinfo is None else at.astimezone(UTC)).date()
    return day - timedelta(days=day.weekday())


@cache
def _insert(dialect: str) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(LEDGER).values({name: bindparam(name) for name in COLUMNS}).on_conflict_do_nothing()
    )


def entry(
    *,
    user_id: int,
    reason: PointReason,
    points: int,
    now: datetime,
    project_id: int | None = None,
    annotation_id: int | None = None,
    task_id: int | None = None,
    badge: str | None = None,
    corrects_id: int | None = None,
    quality: float | None = None,
    note: str | None = None,
    week: date | None = None,
) -> dict[str, Any]:
    """The values of one ledger row."""
    return {
        "user_id": user_id,
        "project_id": project_id,
        "annotation_id": annotation_id,
        "task_id": task_id,
        "badge": badge,
        "corrects_id": corrects_id,
        "reason": reason.value,
        "points": points,
        "quality": None if quality is None else round(float(quality), 4),
        "note": note,
        "week": week or week_of(now),
        "created_at": now,
    }


def write(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ledger rows (one statement; rows already there are left as they are)."""
    if rows:
        session.execute(_insert(session.get_bind().dialect.name), rows)


def award_gold(
    session: Session,
    *,
    user_id: int,
    project_id: int,
    annotation_id: int,
    task_id: int,
    dice: float,
    lesion_f1: float,
    gold_has_lesions: bool,
    painted: bool,
    timing_ms: int | None,
    fast_ms: int,
    now: datetime,
) -> int:
    """The points of a check answer, written to the ledger at once (one statement; none when
    it earns nothing). Returns them."""
    if rules.too_fast(timing_ms, fast_ms):
        return 0
    quality = rules.gold_quality(
        dice=dice, lesion_f1=lesion_f1, gold_has_lesions=gold_has_lesions, painted=painted
    )
    points = rules.scaled(quality, rules.GOLD_POINTS)
    if points > 0:
        row = entry(
            user_id=user_id,
            reason=PointReason.gold,
            points=points,
            now=now,
            project_id=project_id,
            annotation_id=annotation_id,
            task_id=task_id,
            quality=quality,
        )
        write(session, [row])
    return points


def award_scored(
    session: Session,
    task: Any,
    user_id: int,
    annotation_id: int,
    result: Any,
    rater: Any,
    timing_ms: int | None,
    now: datetime,
) -> int:
    """A scored check answer's points (``quality.record_answer``: its task, its
    ``scoring.GoldScore`` and the rater's stats row just updated). A suspended or flagged
    rater earns nothing."""
    trust = getattr(rater.trust, "value", rater.trust)
    if rater.flagged_reason is not None or trust == "suspended":
        return 0
    return award_gold(
        session,
        user_id=user_id,
        project_id=task.project_id,
        annotation_id=annotation_id,
        task_id=task.task_id,
        dice=result.dice,
        lesion_f1=result.detection.f1,
        gold_has_lesions=result.report.reference_lesions > 0,
        painted=result.painted > 0,
        timing_ms=timing_ms,
        fast_ms=task.limits.fast_ms,
        now=now,
    )


def points_of(session: Session, annotation_id: int) -> int:
    """The points an answer earned so far, corrections left out (a replay's answer)."""
    found = session.execute(
        select(func.coalesce(func.sum(LEDGER.c.points), 0)).where(
            LEDGER.c.annotation_id == annotation_id
        )
    ).scalar_one()
    return int(found)
