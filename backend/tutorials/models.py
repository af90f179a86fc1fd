"""Tutorials: slices set aside as teaching material, lesson completions, practice and
qualification items (leased like tasks, answered apart from the crowd's labels) and
qualification attempts."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class MaterialKind(StrEnum):
    """What a tutorial slice shows: lesions to paint, nothing to paint, or a mimic (something
    bright or odd that is not a lesion, to leave unpainted)."""

    lesion = "lesion"
    empty = "empty"
    mimic = "mimic"


class LesionLoad(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


class TutorialSlice(SQLModel, table=True):
    """A slice of a case marked as tutorial material, with what it shows (from the case's
    expert reference; mimics from the demo generator or an expert's tag)."""

    __tablename__ = "tutorial_slices"

    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", primary_key=True)
    case_id: int = Field(foreign_key="cases.id", ondelete="CASCADE", index=True)
    kind: MaterialKind = Field(sa_type=enum_type(MaterialKind))
    load: LesionLoad | None = Field(default=None, sa_type=enum_type(LesionLoad))
    # A mimic's kind (``imaging.mimics.MimicKind`` values, or an expert's tag).
    mimic: str | None = Field(default=None, max_length=32)
    lesions: int = Field(default=0, ge=0)  # lesions of the reference on the slice
    reference_pixels: int = Field(default=0, ge=0)


class LessonCompletion(SQLModel, table=True):
    """A volunteer finished a lesson at a version (a new version is a new record)."""

    __tablename__ = "lesson_completions"
    __table_args__ = (sa.UniqueConstraint("user_id", "lesson_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    lesson_id: str = Field(max_length=64)
    version: int = Field(ge=1)
    language: str = Field(max_length=16)
    completed_at: datetime = created_at_field()


class ItemPurpose(StrEnum):
    practice = "practice"  # an exercise of a lesson: feedback at once
    qualification = "qualification"  # an item of a qualification attempt


class QualificationAttempt(SQLModel, table=True):
    """One sitting of a project's qualification test: its items are drawn when it starts; it
    is scored once, when its last item is answered, and kept whole (passed or not)."""

    __tablename__ = "qualification_attempts"
    __table_args__ = (
        # One open attempt per volunteer and project, however many requests race to start one.
        sa.Index(
            "uq_qualification_attempts_open",
            "user_id",
            "project_id",
            unique=True,
            postgresql_where=sa.text("finished_at IS NULL"),
            sqlite_where=sa.text("finished_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    started_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field(nullable=True)
    passed: bool | None = None
    # The scores and the feedback the volunteer saw (``qualification.Result``), once finished.
    result: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class TutorialItem(SQLModel, table=True):
    """A tutorial slice leased to one volunteer, for practice or for a qualification attempt,
    and their answer with its scores. Never a crowd label: it enters no fusion, reliability
    or leaderboard."""

    __tablename__ = "tutorial_items"
    __table_args__ = (sa.UniqueConstraint("attempt_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    purpose: ItemPurpose = Field(sa_type=enum_type(ItemPurpose))
    # Practice: the lesson (at its version) and exercise it belongs to.
    lesson_id: str | None = Field(default=None, max_length=64)
    lesson_version: int | None = None
    exercise_id: str | None = Field(default=None, max_length=64)
    # Qualification: the attempt and the item's place in it (0-based).
    attempt_id: int | None = Field(
        default=None, foreign_key="qualification_attempts.id", ondelete="CASCADE", index=True
    )
    position: int | None = Field(default=None, ge=0)
    created_at: datetime = created_at_field()
    answered_at: datetime | None = timestamp_field(nullable=True)
    # The answer, run-length encoded as the studio sends it, and its scores.
    mask_counts: list[int] | None = Field(default=None, sa_type=sa.JSON)
    painted: int | None = None
    dice: float | None = None
    lesion_f1: float | None = None
    lesions_reference: int | None = None
    lesions_found: int | None = None
    false_alarms: int | None = None
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None
