"""A volunteer's rewards: the facts badges are judged on, badges awarded (once, whatever
races), the reward profile (time zone, leaderboard opt-out), the streak, and what is new since
they last looked (badges, a level).

Nothing here runs in a submit: badges are judged when the volunteer asks for their rewards
(the studio does after a check answer and every few answers), so a submit stays at one
statement for gamification (``ledger``).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from backend.annotations.models import Annotation
from backend.core.db import table_of
from backend.core.errors import Conflict, InvalidInput
from backend.core.timeutil import utcnow
from backend.gamification import badges, ledger, rules, streaks
from backend.gamification.models import (
    BadgeAward,
    PointEntry,
    PointReason,
    PointTotal,
    RewardProfile,
)
from backend.imaging.models import Slice
from backend.quality.models import GoldScore, RaterStats, excluded_rater
from backend.rounds.models import ModelStatus, ModelVersion
from backend.tasks.models import Task

ANN = table_of(Annotation)
GOLD = table_of(GoldScore)
LEDGER = table_of(PointEntry)
TOTALS = table_of(PointTotal)
AWARDS = table_of(BadgeAward)
PROFILES = table_of(RewardProfile)
# How far back a streak is read (a longer streak is counted from its last 400 days).
STREAK_DAYS = 400


class UnknownTimeZone(InvalidInput):
    """Not an IANA time zone name."""

    code = "unknown_time_zone"


def profile(session: Session, user_id: int) -> RewardProfile:
    """The user's reward profile (defaults when they never set one)."""
    found = session.get(RewardProfile, user_id)
    return found if found is not None else RewardProfile(user_id=user_id)


ZONE_CHANGE_EVERY = timedelta(days=7)


def set_profile(
    session: Session,
    user_id: int,
    *,
    time_zone: str | None,
    leaderboard: bool | None,
    now: datetime | None = None,
) -> RewardProfile:
    """Change the time zone (an IANA name; once a week after the first setting, else
    ``Conflict``) or the leaderboard opt-out; the boards hide or show the user at once."""
    now = now or utcnow()
    current = profile(session, user_id)
    if time_zone is not None and time_zone != current.time_zone:
        try:
            streaks.zone(time_zone)
        except streaks.UnknownTimeZone as error:
            raise UnknownTimeZone(str(error)) from None
        last = current.zone_changed_at
        if last is not None and now - last < ZONE_CHANGE_EVERY:
            again = (last + ZONE_CHANGE_EVERY).date().isoformat()
            raise Conflict(
                f"Your time zone changed on {last.date().isoformat()}; it can change again from "
                f"{again} (your streak is counted in it)",
                code="time_zone_recently_changed",
            )
        current.time_zone = time_zone
        current.zone_changed_at = now
    if leaderboard is not None:
        current.leaderboard = leaderboard
    session.merge(current)
    # Flagged too, as ``confirm.rater_changed`` hides them: a settings change must not bring
    # a flagged rater back onto the boards.
    suspended = excluded(session, user_id)
    session.execute(
        TOTALS.update()
        .where(TOTALS.c.user_id == user_id)
        .values(hidden=(not current.leaderboard) or suspended)
    )
    session.flush()
    return current


def totals(session: Session, user_id: int, now: datetime) -> tuple[int, int]:
    """(all-time points, this week's points) from the maintained totals."""
    row = session.execute(
        select(TOTALS.c.total, TOTALS.c.week, TOTALS.c.week_points).where(
            TOTALS.c.user_id == user_id
        )
    ).first()
    if row is None:
        return 0, 0
    this_week = row.week == ledger.week_of(now)
    return int(row.total), int(row.week_points) if this_week else 0


def streak_of(session: Session, user_id: int, time_zone: str, now: datetime) -> streaks.Streak:
    """The user's streak in their time zone, from their answers' times."""
    tz = streaks.zone(time_zone)
    since = now - timedelta(days=STREAK_DAYS)
    times = session.execute(
        select(ANN.c.created_at).where(ANN.c.user_id == user_id, ANN.c.created_at >= since)
    ).scalars()
    return streaks.streak(streaks.local_days(times, tz), now.astimezone(tz).date())


def facts(session: Session, user_id: int, now: datetime, longest_streak: int) -> badges.Facts:
    """What the badge rules read about ``user_id``: a handful of aggregate queries."""
    answers = session.execute(
        select(func.count()).select_from(ANN).where(ANN.c.user_id == user_id)
    ).scalar_one()
    lesion = GOLD.c.lesions_reference > 0
    gold = session.execute(
        select(
            func.max(case((lesion, GOLD.c.dice))),
            func.sum(case((lesion, 1), else_=0)),
            func.sum(case((lesion, GOLD.c.lesions_found), else_=0)),
            func.sum(case((lesion, GOLD.c.lesions_reference), else_=0)),
            func.sum(case((lesion, GOLD.c.lesions_predicted), else_=0)),
            func.sum(case((lesion, GOLD.c.false_alarms), else_=0)),
            func.sum(case((~lesion & (GOLD.c.lesions_predicted == 0), 1), else_=0)),
        ).where(GOLD.c.user_id == user_id)
    ).one()
    found, reference, predicted, false_alarms = (int(x or 0) for x in gold[2:6])
    sensitivity = found / reference if reference else 0.0
    ppv = (predicted - false_alarms) / predicted if predicted else 0.0
    f1 = 2 * sensitivity * ppv / (sensitivity + ppv) if sensitivity + ppv else 0.0
    cases = session.execute(
        select(func.count(func.distinct(col(Slice.case_id))))
        .select_from(ANN)
        .join(Task, col(Task.id) == ANN.c.task_id)
        .join(Slice, col(Slice.id) == col(Task.slice_id))
        .where(ANN.c.user_id == user_id)
    ).scalar_one()
    qualified = session.execute(
        select(func.count())
        .select_from(RaterStats)
        .where(col(RaterStats.user_id) == user_id, col(RaterStats.qualified_at).is_not(None))
    ).scalar_one()
    confirmed = session.execute(
        select(func.count())
        .select_from(LEDGER)
        .where(LEDGER.c.user_id == user_id, LEDGER.c.reason == PointReason.confirmed.value)
    ).scalar_one()
    return badges.Facts(
        answers=int(answers),
        best_gold_dice=float(gold[0] or 0.0),
        gold_with_lesions=int(gold[1] or 0),
        lesion_f1=f1,
        rare_finds=rare_finds(session, user_id),
        clean_gold=int(gold[6] or 0),
        longest_streak=longest_streak,
        qualified=bool(qualified),
        cases=int(cases),
        trained_models=trained_models(session, user_id),
        confirmed=int(confirmed),
    )


def rare_finds(session: Session, user_id: int, others: int = 3) -> int:
    """Check slices with lesions where the user found every lesion while most of at least
    ``others`` other volunteers missed some."""
    mine = GOLD.alias("mine")
    other = GOLD.alias("other")
    found_all = case((other.c.lesions_found >= other.c.lesions_reference, 1), else_=0)
    rows = session.execute(
        select(mine.c.id)
        .join(
            other,
            (other.c.gold_version_id == mine.c.gold_version_id)
            & (other.c.user_id != mine.c.user_id),
        )
        .where(
            mine.c.user_id == user_id,
            mine.c.lesions_reference > 0,
            mine.c.lesions_found >= mine.c.lesions_reference,
        )
        .group_by(mine.c.id)
        .having(func.count() >= others, func.sum(found_all) * 2 < func.count())
    ).all()
    return len(rows)


def trained_models(session: Session, user_id: int) -> int:
    """Promoted models trained on crowd labels after an answer of the user's in their
    project was fused (their labels were in its training data)."""
    fused_at = (
        select(func.min(LEDGER.c.created_at))
        .where(
            LEDGER.c.user_id == user_id,
            LEDGER.c.reason == PointReason.confirmed.value,
            LEDGER.c.project_id == col(ModelVersion.project_id),
        )
        .scalar_subquery()
    )
    return int(
        session.execute(
            select(func.count())
            .select_from(ModelVersion)
            .where(
                col(ModelVersion.status) == ModelStatus.promoted,
                col(ModelVersion.labels) != "reference",
                col(ModelVersion.created_at) > fused_at,
            )
        ).scalar_one()
    )


def excluded(session: Session, user_id: int) -> bool:
    """Suspended or flagged by quality control in some project: no badges meanwhile."""
    return bool(
        session.execute(
            select(func.count())
            .select_from(RaterStats)
            .where(col(RaterStats.user_id) == user_id, excluded_rater())
        ).scalar_one()
    )


def award_badges(session: Session, user_id: int, found: badges.Facts, now: datetime) -> list[str]:
    """Award every badge ``found`` earns that the user lacks, with its points; the badges
    awarded now. Two racing calls award each badge once (the primary key decides)."""
    have = set(session.execute(select(AWARDS.c.badge).where(AWARDS.c.user_id == user_id)).scalars())
    new = [b for b in badges.catalog().badges if b.id not in have and badges.earned(b.rule, found)]
    if not new:
        return []
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    won = list(
        session.execute(
            insert(AWARDS)
            .values(
                [{"user_id": user_id, "badge": b.id, "awarded_at": now, "seen": False} for b in new]
            )
            .on_conflict_do_nothing()
            .returning(AWARDS.c.badge)
        ).scalars()
    )
    points = {b.id: b.points for b in new}
    ledger.write(
        session,
        [
            ledger.entry(
                user_id=user_id,
                reason=PointReason.badge,
                points=points[badge],
                badge=badge,
                now=now,
            )
            for badge in won
            if points[badge] > 0
        ],
    )
    return won


@dataclass
class Rewards:
    """A volunteer's rewards as pages show them."""

    total: int
    week_points: int
    level: rules.Level
    streak: streaks.Streak
    time_zone: str
    leaderboard: bool
    earned: list[tuple[badges.Badge, datetime]]
    next_badges: list[tuple[badges.Badge, float]]
    new_badges: list[badges.Badge] = field(default_factory=list)
    level_up: bool = False
    since: "Since" = field(default_factory=lambda: Since(0, 0, 0))


@dataclass(frozen=True)
class Since:
    """Points the fusion job wrote since the volunteer last saw a notice: confirmed answers,
    bonuses and corrections (``answers``: the confirmed ones), through ledger entry ``through``."""

    points: int
    answers: int
    through: int


@dataclass(frozen=True)
class Seen:
    """What a notice showed: badges, the level, the ledger entries through ``through``
    (None: everything new now). Only what was shown is marked, so a badge won meanwhile is
    still new the next time."""

    badges: frozenset[str] | None = None
    level: int | None = None
    through: int | None = None


LATER = (PointReason.confirmed.value, PointReason.hard_bonus.value, PointReason.correction.value)


def since_seen(session: Session, user_id: int, after: int) -> Since:
    """Fusion-time points of the user after ledger entry ``after``."""
    row = session.execute(
        select(
            func.coalesce(func.sum(LEDGER.c.points), 0),
            func.sum(case((LEDGER.c.reason == PointReason.confirmed.value, 1), else_=0)),
            func.coalesce(func.max(LEDGER.c.id), after),
        ).where(
            LEDGER.c.user_id == user_id,
            LEDGER.c.id > after,
            LEDGER.c.reason.in_(LATER),
        )
    ).one()
    return Since(points=int(row[0]), answers=int(row[1] or 0), through=int(row[2]))


def rewards(
    session: Session, user_id: int, now: datetime, *, mark_seen: Seen | None = None
) -> Rewards:
    """Judge the badges, then the user's rewards; ``mark_seen``: what a notice showed now,
    so it is not new the next time."""
    settings = profile(session, user_id)
    streak = streak_of(session, user_id, settings.time_zone, now)
    found = facts(session, user_id, now, streak.longest)
    if not excluded(session, user_id):
        award_badges(session, user_id, found, now)
    total, week_points = totals(session, user_id, now)
    level = rules.level_of(total)
    rows = session.execute(
        select(AWARDS.c.badge, AWARDS.c.awarded_at, AWARDS.c.seen)
        .where(AWARDS.c.user_id == user_id)
        .order_by(AWARDS.c.awarded_at, AWARDS.c.badge)
    ).all()
    catalog = {b.id: b for b in badges.catalog().badges}
    earned = [(catalog[r.badge], r.awarded_at) for r in rows if r.badge in catalog]
    new = [catalog[r.badge] for r in rows if not r.seen and r.badge in catalog]
    have = {r.badge for r in rows}
    upcoming = sorted(
        ((b, badges.progress(b.rule, found)) for b in catalog.values() if b.id not in have),
        key=lambda pair: -pair[1],
    )
    level_up = level.number > max(settings.level_seen, 1)
    since = since_seen(session, user_id, settings.ledger_seen)
    if mark_seen is not None:
        mark(session, settings, mark_seen, new, level.number, since.through)
    return Rewards(
        total=total,
        week_points=week_points,
        level=level,
        streak=streak,
        time_zone=settings.time_zone,
        leaderboard=settings.leaderboard,
        earned=earned,
        next_badges=upcoming[:3],
        new_badges=new,
        level_up=level_up,
        since=since,
    )


def mark(
    session: Session,
    settings: RewardProfile,
    seen: Seen,
    new: list[badges.Badge],
    level: int,
    through: int,
) -> None:
    """Mark what a notice showed as seen (never beyond what is there now)."""
    shown = [b.id for b in new if seen.badges is None or b.id in seen.badges]
    if shown:
        session.execute(
            AWARDS.update()
            .where(AWARDS.c.user_id == settings.user_id, AWARDS.c.badge.in_(shown))
            .values(seen=True)
        )
    level_seen = level if seen.level is None else min(seen.level, level)
    ledger_seen = through if seen.through is None else min(seen.through, through)
    if level_seen > settings.level_seen or ledger_seen > settings.ledger_seen:
        settings.level_seen = max(settings.level_seen, level_seen)
        settings.ledger_seen = max(settings.ledger_seen, ledger_seen)
        session.merge(settings)


def history(session: Session, user_id: int, days: int, now: datetime) -> list[dict[str, Any]]:
    """Points and mean quality per UTC day over the last ``days`` (the profile's chart)."""
    since = now - timedelta(days=days)
    day = func.date(LEDGER.c.created_at)
    rows = session.execute(
        select(day, func.sum(LEDGER.c.points), func.avg(LEDGER.c.quality))
        .where(LEDGER.c.user_id == user_id, LEDGER.c.created_at >= since)
        .group_by(day)
        .order_by(day)
    ).all()
    return [
        {"day": str(d), "points": int(p or 0), "quality": None if q is None else round(float(q), 3)}
        for d, p, q in rows
    ]
