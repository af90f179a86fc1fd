"""Labelling tasks: one slice to be labelled by a number of volunteers."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type


class TaskKind(StrEnum):
    normal = "normal"
    gold = "gold"  # has an expert reference; scores the rater
    repeat = "repeat"  # shown again to the same rater; measures self-consistency
    practice = "practice"  # tutorial material with instant feedback


class TaskState(StrEnum):
    open = "open"
    complete = "complete"
    retired = "retired"


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (sa.CheckConstraint("required_labels >= 1", name="required_labels_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    kind: TaskKind = Field(default=TaskKind.normal, sa_type=enum_type(TaskKind))
    required_labels: int = 3
    state: TaskState = Field(
        default=TaskState.open,
        sa_type=enum_type(TaskState),
        index=True,
    )
    created_at: datetime = created_at_field()
