"""Labelling tasks (a slice for several raters) and the leases that hand them out."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class TaskKind(StrEnum):
    normal = "normal"
    gold = "gold"  # has an expert reference; scores the rater
    repeat = "repeat"  # shown again to the same rater; measures self-consistency
    practice = "practice"  # tutorial material with instant feedback


class TaskState(StrEnum):
    open = "open"
    complete = "complete"  # enough labels, fused label confident (or not yet fused)
    review = "review"  # still uncertain at the project's max_labels: for an expert
    retired = "retired"


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.CheckConstraint("required_labels >= 1", name="required_labels_positive"),
        # The queue order of GET /api/tasks/next, over open tasks only: the planner walks it and
        # stops at the first task with a free slot instead of counting slots for every task.
        sa.Index(
            "ix_tasks_open_queue",
            "priority",
            "id",
            postgresql_where=sa.text("state = 'open'"),
            sqlite_where=sa.text("state = 'open'"),
        ),
        # The open gold tasks, which every lease looks at for the gold schedule: a few hundred
        # rows to read instead of every task of every project.
        sa.Index(
            "ix_tasks_open_gold",
            "project_id",
            "id",
            postgresql_where=sa.text("kind = 'gold' AND state = 'open'"),
            sqlite_where=sa.text("kind = 'gold' AND state = 'open'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    kind: TaskKind = Field(default=TaskKind.normal, sa_type=enum_type(TaskKind))
    required_labels: int = 3
    # Higher first; active learning raises the priority of the slices the model is unsure about.
    priority: float = 0.0
    state: TaskState = Field(default=TaskState.open, sa_type=enum_type(TaskState), index=True)
    created_at: datetime = created_at_field()
    # Slot bookkeeping, derived from the task's assignments by ``tasks.slots.refresh_slots``
    # in every transaction that changes them (under the task's row lock), so the queue can
    # tell a free task by its own row: answers stored so far, and the time until which
    # unexpired leases hold every remaining slot (None or past: a slot is free now).
    submitted_labels: int = 0
    full_until: datetime | None = timestamp_field(nullable=True)
    # Gold tasks: the frozen expert mask answers are scored against (the current version).
    gold_version_id: int | None = Field(
        default=None, foreign_key="gold_versions.id", ondelete="RESTRICT", index=True
    )
    # Repeat tasks: the one rater it is for, the answer it repeats, and the number of answers
    # that rater must have given in the project before it is served.
    for_user_id: int | None = Field(
        default=None, foreign_key="users.id", ondelete="CASCADE", index=True
    )
    # No foreign key: annotations already reference tasks, and a cycle would leave no order to
    # create or drop the two tables in. A repeat whose first answer is gone is not scored.
    repeat_of_id: int | None = None
    due_after: int | None = None


class AssignmentState(StrEnum):
    active = "active"  # leased to the rater until lease_expires_at
    submitted = "submitted"  # the rater's annotation is stored
    skipped = "skipped"  # released by the rater (skip or problem report): not served to them again


class Assignment(SQLModel, table=True):
    """A rater's lease on a task. An expired active lease frees its slot for someone else."""

    __tablename__ = "assignments"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "user_id"),
        sa.UniqueConstraint("user_id", "idempotency_key"),
        # Lease ids are never reused (SQLite would hand a deleted top id out again): a lapsed
        # lease renewed under its old id would tell which tasks come back.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    state: AssignmentState = Field(
        default=AssignmentState.active, sa_type=enum_type(AssignmentState)
    )
    leased_at: datetime = created_at_field()
    lease_expires_at: datetime = timestamp_field(index=True)
    # The client's key for the submission; a retry with the same key gets the same answer.
    idempotency_key: str | None = Field(default=None, max_length=64)
    # SHA-256 of the submitted request: a replayed key must come with the same request.
    request_sha256: str | None = Field(default=None, max_length=64)
    submitted_at: datetime | None = timestamp_field(nullable=True)
    # An expert's or admin's lease: their answer is an expert answer (a gold candidate), so it
    # takes no crowd slot and is never counted as a volunteer label.
    expert: bool = False


class ReportReason(StrEnum):
    bad_image = "bad_image"  # unreadable: wrong contrast, cut off, blank
    artefact = "artefact"  # motion, ringing, bias field, a foreign object
    unsure = "unsure"  # the volunteer cannot tell: a case for an expert
    other = "other"


class TaskReport(SQLModel, table=True):
    """A volunteer's "Report a problem" on a leased slice, for experts to look at."""

    __tablename__ = "task_reports"
    # One report per task and volunteer: a skipped task could otherwise be reported forever.
    __table_args__ = (sa.UniqueConstraint("task_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    reason: ReportReason = Field(sa_type=enum_type(ReportReason))
    note: str = Field(default="", max_length=500)
    created_at: datetime = created_at_field()
    # An expert's look at it (None: not yet).
    resolved_at: datetime | None = timestamp_field(nullable=True)
