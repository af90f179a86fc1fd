"""Fusion results, versioned: each fusion of a slice is a new version; old ones stay for
provenance and releases."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class FusionScope(StrEnum):
    project = "project"  # rates estimated jointly over every slice of the project
    task = "task"  # one slice fused with the rates of the project's latest run


class FusionRun(SQLModel, table=True):
    """One fusion: of a whole project (rates fitted) or of one task (rates reused)."""

    __tablename__ = "fusion_runs"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    scope: FusionScope = Field(sa_type=enum_type(FusionScope))
    method: str = Field(max_length=32)  # "crowd_staple/<outline rule>"
    prior: float
    iterations: int
    converged: bool
    slices: int
    # {user id: [sensitivity, specificity]} used for every slice of the run.
    rater_rates: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Raters left out (excluded, ``quality.service.RaterPrior.excluded``, when it started).
    excluded: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    # Project runs: each outline rule's mean Dice against the gold slices it was chosen on
    # ({} when the project had too few: the default rule).
    outline_scores: dict[str, float] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field(nullable=True)


class FusionResult(SQLModel, table=True):
    """A slice's fused label, one version per fusion; or a withdrawn version, which says the
    task has no fused label any more (see ``withdrawn``)."""

    __tablename__ = "fusion_results"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "version"),
        # A withdrawn version has no label; every other version has one.
        sa.CheckConstraint(
            "(withdrawn AND soft_key IS NULL AND uncertainty IS NULL) OR "
            "(NOT withdrawn AND soft_key IS NOT NULL AND uncertainty IS NOT NULL)",
            name="withdrawn_has_no_label",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="fusion_runs.id", ondelete="CASCADE", index=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    version: int = Field(ge=1)
    # True: the task's label is withdrawn. Raters were excluded (suspended, flagged) and
    # fewer usable answers than a label needs remain (``service.usable_minimum``): no soft
    # label is stored or served, training and exports skip the task, and the task collects
    # answers again. A later fusion with enough answers makes a new, normal version.
    withdrawn: bool = False
    # Storage key of the soft label: an 8-bit PNG of round(255 * P(lesion)); None: withdrawn.
    soft_key: str | None = Field(default=None, max_length=255)
    hard_pixels: int = Field(default=0, ge=0)  # pixels with P(lesion) >= 0.5
    # The answers fused (annotation ids) and their raters, in the same order (none when
    # withdrawn: the run's ``excluded`` says whose answers were left out).
    annotation_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    raters: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    # Bits: the least certain lesion candidate (redundancy.uncertainty); None: withdrawn.
    uncertainty: float | None = None
    # The adaptive-redundancy decision this version led to (``redundancy.Decision``): only
    # versions fused once the task was complete decide; None for the others.
    decision: str | None = Field(default=None, max_length=16)
    created_at: datetime = created_at_field()
