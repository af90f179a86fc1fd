"""Gamification: the points ledger (append-only), each volunteer's maintained totals, badges
awarded, and the profile settings rewards depend on (time zone, leaderboard opt-out).

The ledger is the truth: ``point_totals`` is its sum per user, kept by database triggers on
insert (``backend.gamification.triggers``), so a submit adds one statement (the ledger row)
and pages never sum the ledger. Other triggers refuse any UPDATE or DELETE of a ledger row:
a correction is a new entry with negative points that names the entry it corrects.
"""

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import UTCDateTime, created_at_field, enum_type


class PointReason(StrEnum):
    gold = "gold"  # a check answer, scored against gold at once
    confirmed = "confirmed"  # a normal answer, by agreement with its task's fused label
    hard_bonus = "hard_bonus"  # a disputed or uncertain slice answered well
    badge = "badge"  # the points a badge carries
    correction = "correction"  # a reversal (a suspension's flagged answers), never an edit


class PointEntry(SQLModel, table=True):
    """One award of points with its source row. Rows are never updated or deleted."""

    __tablename__ = "points_ledger"
    __table_args__ = (
        # One award per reason and answer; one correction per corrected entry; one badge's
        # points per user and badge: replays and racing jobs insert nothing twice.
        sa.Index(
            "uq_points_answer",
            "reason",
            "annotation_id",
            unique=True,
            postgresql_where=sa.text("annotation_id IS NOT NULL"),
            sqlite_where=sa.text("annotation_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_points_correction",
            "corrects_id",
            unique=True,
            postgresql_where=sa.text("corrects_id IS NOT NULL"),
            sqlite_where=sa.text("corrects_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_points_badge",
            "user_id",
            "badge",
            unique=True,
            postgresql_where=sa.text("badge IS NOT NULL"),
            sqlite_where=sa.text("badge IS NOT NULL"),
        ),
        sa.Index("ix_points_user_time", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    # The source rows, as plain ids (no foreign keys: a ledger row outlives a withdrawn case's
    # answers and is never changed): the project, the answer scored or confirmed, its task,
    # the badge awarded, the entry a correction reverses.
    project_id: int | None = None
    annotation_id: int | None = None
    task_id: int | None = None
    badge: str | None = Field(default=None, max_length=64)
    corrects_id: int | None = None
    reason: PointReason = Field(sa_type=enum_type(PointReason))
    points: int
    # The quality behind the points (Dice or agreement, 0..1); None for badges.
    quality: float | None = None
    note: str | None = Field(default=None, max_length=200)
    # The week the points count for on the weekly board: its Monday (UTC).
    week: date
    created_at: datetime = created_at_field()


class PointTotal(SQLModel, table=True):
    """A volunteer's points: all time and this week, kept by the ledger's insert trigger.
    ``hidden``: off the leaderboards (opted out in their profile)."""

    __tablename__ = "point_totals"
    __table_args__ = (
        # The boards read these backwards: most points first, ties by the newer account.
        sa.Index(
            "ix_point_totals_board",
            "total",
            "user_id",
            postgresql_where=sa.text("NOT hidden"),
            sqlite_where=sa.text("NOT hidden"),
        ),
        sa.Index(
            "ix_point_totals_week_board",
            "week",
            "week_points",
            "user_id",
            postgresql_where=sa.text("NOT hidden"),
            sqlite_where=sa.text("NOT hidden"),
        ),
    )

    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    total: int = 0
    week: date  # the Monday (UTC) of ``week_points``' week
    week_points: int = 0
    entries: int = 0
    hidden: bool = False
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BadgeAward(SQLModel, table=True):
    """A badge a volunteer earned: once, whatever races (the primary key)."""

    __tablename__ = "badge_awards"

    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    badge: str = Field(max_length=64, primary_key=True)
    awarded_at: datetime = created_at_field()
    seen: bool = False  # shown to the volunteer as a notice


class RewardProfile(SQLModel, table=True):
    """A volunteer's reward settings: the time zone their days (streaks) are counted in,
    whether they appear on leaderboards, and whether they are hidden from them (suspended)."""

    __tablename__ = "reward_profiles"

    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    time_zone: str = Field(default="UTC", max_length=64)
    leaderboard: bool = True  # False: opted out (``point_totals.hidden``)
    level_seen: int = 0  # the highest level shown to them in a notice
    # The last ledger entry whose fusion-time points (confirmed, bonus, corrections) were
    # shown to them ("since your last visit").
    ledger_seen: int = 0
    # When the time zone last changed: once a week at most (a streak is counted in it, so a
    # change of zone must not stretch past days into a longer streak at will).
    zone_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
