"""Quality control tables: frozen gold masks, scores of gold and repeat answers, and each
rater's running totals and trust level per project (with who changed it and when)."""

from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from backend.core.columns import created_at_field, enum_type, timestamp_field
from backend.quality.reliability import RaterTotals, TrustLevel


class GoldSource(StrEnum):
    reference = "reference"  # the imported expert reference mask, approved by an expert
    expert = "expert"  # painted by an expert in the workspace


class GoldVersion(SQLModel, table=True):
    """A frozen expert mask of a slice. Editing gold makes a new version; scores keep theirs."""

    __tablename__ = "gold_versions"
    __table_args__ = (sa.UniqueConstraint("slice_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    version: int = Field(ge=1)
    source: GoldSource = Field(sa_type=enum_type(GoldSource))
    # Storage key of the frozen mask (8-bit PNG, 0 or 255, at the cropped slice size).
    mask_key: str = Field(max_length=255)
    lesion_pixels: int = Field(ge=0)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = created_at_field()
    retired_at: datetime | None = timestamp_field(nullable=True)


class GoldScore(SQLModel, table=True):
    """A volunteer's answer to a gold task scored against the gold version it was served."""

    __tablename__ = "gold_scores"

    id: int | None = Field(default=None, primary_key=True)
    annotation_id: int = Field(foreign_key="annotations.id", ondelete="CASCADE", unique=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    gold_version_id: int = Field(foreign_key="gold_versions.id", ondelete="CASCADE", index=True)
    tp: int
    fp: int
    fn: int
    tn: int
    dice: float
    lesions_reference: int
    lesions_found: int
    lesions_predicted: int
    false_alarms: int
    scribble: bool = False
    # Storage key of the feedback overlay (hits, misses and false alarms in colour).
    overlay_key: str = Field(max_length=255)
    created_at: datetime = created_at_field()


class RepeatScore(SQLModel, table=True):
    """Intra-rater agreement: the Dice between a rater's two answers to the same slice."""

    __tablename__ = "repeat_scores"

    id: int | None = Field(default=None, primary_key=True)
    annotation_id: int = Field(foreign_key="annotations.id", ondelete="CASCADE", unique=True)
    first_annotation_id: int = Field(foreign_key="annotations.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    dice: float
    created_at: datetime = created_at_field()


class RaterStats(SQLModel, table=True):
    """A rater's running totals in a project (``reliability.RaterTotals``) and trust level,
    updated in the transaction of each of their submissions."""

    __tablename__ = "rater_stats"
    __table_args__ = (sa.UniqueConstraint("user_id", "project_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    answered: int = 0  # submissions of any kind: the gold schedule's clock
    gold: int = 0
    tp: int = Field(default=0, sa_type=sa.BigInteger)
    fp: int = Field(default=0, sa_type=sa.BigInteger)
    fn: int = Field(default=0, sa_type=sa.BigInteger)
    tn: int = Field(default=0, sa_type=sa.BigInteger)
    lesions_reference: int = 0
    lesions_found: int = 0
    lesions_predicted: int = 0
    lesions_true: int = 0
    gold_with_lesions: int = 0
    empty_on_lesions: int = 0
    scribbles: int = 0
    timed: int = 0
    fast: int = 0
    duration_ms_sum: int = Field(default=0, sa_type=sa.BigInteger)
    repeats: int = 0
    repeat_dice_sum: float = 0.0
    trust: TrustLevel = Field(default=TrustLevel.new, sa_type=enum_type(TrustLevel), index=True)
    # Why the rater is suspended, in words shown to them; None when not suspended.
    suspended_reason: str | None = Field(default=None, max_length=1000)
    # An expert's decision stands until the next one: 'suspended' or 'reinstated', else None.
    override: str | None = Field(default=None, max_length=16)
    # Counters at the last reinstatement: the automatic rules judge only what came after
    # (a fresh evidence window, not immunity). None: the whole record.
    rule_base: dict[str, float] | None = Field(default=None, sa_type=sa.JSON)
    # Why the rater's labels are held out of fusion until an expert clears them (gold far
    # better than their agreement with the crowd: answer farming). None when not flagged.
    flagged_reason: str | None = Field(default=None, max_length=1000)
    # When they passed the project's qualification test (``tutorials.qualification``): from
    # then on at least ``qualified`` until the rules or an expert say otherwise.
    qualified_at: datetime | None = timestamp_field(nullable=True)
    updated_at: datetime = created_at_field()

    def totals(self) -> RaterTotals:
        """The running totals as the reliability rules take them."""
        return totals_of(self)


def totals_of(row: Any) -> RaterTotals:
    """``RaterTotals`` from anything with its counters as attributes (a row, a result row)."""
    return RaterTotals(**{f.name: getattr(row, f.name) for f in fields(RaterTotals)})


class RaterActionKind(StrEnum):
    suspended = "suspended"  # by the rules (by_user_id None) or by an expert
    reinstated = "reinstated"
    flagged = "flagged"  # by the consistency check: labels held out until cleared
    cleared = "cleared"  # an expert lifted the flag
    qualified = "qualified"  # passed the project's qualification test
    requalify = "requalify"  # an expert let a suspended rater take the test again


class RaterAction(SQLModel, table=True):
    """Who suspended or reinstated a rater, when and why."""

    __tablename__ = "rater_actions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    action: RaterActionKind = Field(sa_type=enum_type(RaterActionKind))
    reason: str = Field(max_length=1000)
    by_user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = created_at_field()


class ConsensusScore(SQLModel, table=True):
    """A volunteer's answer to a normal task against the task's fused label (without them):
    agreement with the crowd, the check that gold alone cannot be farmed. Rewritten when the
    task is fused again."""

    __tablename__ = "consensus_scores"

    id: int | None = Field(default=None, primary_key=True)
    annotation_id: int = Field(foreign_key="annotations.id", ondelete="CASCADE", unique=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    dice: float
    # Whether the consensus (the others' fused label) has lesion pixels on this slice.
    consensus_lesion: bool
    created_at: datetime = created_at_field()


class RejectionKind(StrEnum):
    candidate = "candidate"  # a gold candidate set aside: never offered or approved again
    gold = "gold"  # a gold slice an expert retired
    review = "review"  # a disputed slice dismissed from the review queue


class SliceRejection(SQLModel, table=True):
    """An expert set a slice aside in the workspace, and why: a rejected candidate leaves the
    gold pool (``gold_pool.pool_state``), a rejected gold slice is retired, a rejected review
    item leaves the review queue."""

    __tablename__ = "slice_rejections"

    id: int | None = Field(default=None, primary_key=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    kind: RejectionKind = Field(sa_type=enum_type(RejectionKind))
    reason: str = Field(max_length=1000)
    by_user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = created_at_field()


def excluded_rater() -> sa.ColumnElement[bool]:
    """SQL: a ``rater_stats`` row of a rater excluded in its project (suspended or flagged):
    their answers earn nothing, their labels leave fusion, the boards hide them."""
    return (col(RaterStats.trust) == TrustLevel.suspended.value) | col(
        RaterStats.flagged_reason
    ).is_not(None)
